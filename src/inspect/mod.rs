//! A look inside a model: what `wgpt inspect` and the anatomy example draw.

mod anatomy;
mod capture;
pub mod stats;

pub use anatomy::{Anatomy, Depth, Matrix, TensorSummary, Token};
pub use capture::{capture, Captured, Stage};
pub use stats::{Histogram, Stats};
