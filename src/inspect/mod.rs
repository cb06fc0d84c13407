//! A look inside a model: what `wgpt inspect` and the anatomy example draw.

mod capture;
pub mod stats;

pub use capture::{capture, Captured, Stage};
pub use stats::{Histogram, Stats};
