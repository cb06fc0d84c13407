//! A look inside a model: what `wgpt inspect` and the anatomy example draw.

mod anatomy;
mod capture;
mod figures;
pub mod stats;

pub use anatomy::{Anatomy, Depth, Matrix, TensorSummary, Token};
pub use capture::{capture, Captured, Stage};
pub use figures::figures;
pub use stats::Stats;
