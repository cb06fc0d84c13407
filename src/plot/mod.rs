//! Figures as standalone SVG text, with no dependencies: heatmaps of attention patterns and
//! embeddings (alone or as a grid of panels), line charts over training steps or over a model's depth,
//! histograms of tensor values, and horizontal bar charts of top-k next tokens.
//!
//! Each figure is one function taking the data and an options struct (plain fields, `Default`), and
//! returns the SVG document as a `String` to write to a `.svg` file. Every figure has a title, axis
//! names, tick labels and a legend or colour bar; token labels are drawn with their whitespace made
//! visible (␣ space, ↵ newline, ⇥ tab) and everything is escaped for XML, so `<|endoftext|>` shows as
//! itself. Inputs with nothing to draw give a small figure that says "no data".
//!
//! ```
//! use wgpt::plot::{heatmap, ColorScale, HeatmapOptions, Matrix};
//!
//! // Causal attention over three tokens: NaN above the diagonal is drawn as masked (grey).
//! let nan = f32::NAN;
//! let weights = [1.0, nan, nan, 0.3, 0.7, nan, 0.2, 0.2, 0.6];
//! let options = HeatmapOptions {
//!     title: "layer 0 head 0".into(),
//!     row_axis: "query".into(),
//!     col_axis: "key".into(),
//!     row_labels: vec!["<|endoftext|>".into(), "To".into(), " be".into()],
//!     col_labels: vec!["<|endoftext|>".into(), "To".into(), " be".into()],
//!     colors: ColorScale::probabilities(),
//! };
//! let svg = heatmap(&Matrix::new(3, 3, &weights)?, &options)?;
//! assert!(svg.contains("&lt;|endoftext|&gt;") && svg.contains("␣be"));
//! # Ok::<(), wgpt::Error>(())
//! ```
//!
//! Inside: `svg` writes the document and escapes text, `scale` picks nice ticks, `axes` draws numeric
//! axes and rows of category labels, `color` holds the colour maps; the figure modules only lay out.

mod axes;
mod bar;
mod color;
mod heatmap;
mod histogram;
mod line;
mod scale;
mod svg;

pub use bar::{bar_chart, BarChartOptions};
pub use color::ColorScale;
pub use heatmap::{heatmap, heatmap_grid, HeatmapGridOptions, HeatmapOptions, Matrix};
pub use histogram::{histogram, histogram_grid, Bins, HistogramGridOptions, HistogramOptions};
pub use line::{line_chart, LineChartOptions, Series};
