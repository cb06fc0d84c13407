//! Histograms: how the values of a tensor are spread (weights at init and after training, gradients,
//! activations), one tensor per figure or many as a grid of panels, each noting count, mean and std.

use super::axes::{y_ticks_width, Axes};
use super::scale::{format_value, widen, Scale};
use super::svg::{no_data, truncate, Anchor, Svg, Text};

/// What a histogram shows and how.
#[derive(Clone, Debug)]
pub struct HistogramOptions {
    pub title: String,
    /// What the values are, written under the x axis.
    pub x_label: String,
    /// How many equal-width bins span the smallest to the largest value.
    pub bins: usize,
    /// Log10 count axis, so the sparse tails of a distribution stay visible.
    pub log_count: bool,
}

impl Default for HistogramOptions {
    fn default() -> Self {
        HistogramOptions {
            title: String::new(),
            x_label: "value".into(),
            bins: 50,
            log_count: false,
        }
    }
}

/// A grid of histograms, one per named tensor, each on its own ranges.
#[derive(Clone, Debug)]
pub struct HistogramGridOptions {
    pub title: String,
    pub bins: usize,
    pub log_count: bool,
    /// Panels per row.
    pub columns: usize,
}

impl Default for HistogramGridOptions {
    fn default() -> Self {
        HistogramGridOptions {
            title: String::new(),
            bins: 40,
            log_count: false,
            columns: 4,
        }
    }
}

/// The finite `values` counted into bins, their count, mean and standard deviation in a line under
/// the title (and how many non-finite values were left out, if any).
pub fn histogram(values: &[f32], options: &HistogramOptions) -> String {
    let summary = Summary::of(values);
    if summary.count == 0 {
        return no_data(&options.title);
    }
    let (width, height) = (720.0, 460.0);
    let mut svg = Svg::new(width, height);
    let title_style = Text::new(Anchor::Middle, 16.0).bold();
    svg.text(width / 2.0, 28.0, &options.title, title_style);
    let summary_style = Text::new(Anchor::Middle, 12.0);
    svg.text(width / 2.0, 48.0, &summary.describe(), summary_style);
    let panel = Panel {
        values,
        summary: &summary,
        bins: options.bins,
        log_count: options.log_count,
        font: 11.0,
    };
    let names = (options.x_label.as_str(), count_name(options.log_count));
    panel.draw(&mut svg, (16.0, 64.0, width - 36.0, height - 72.0), names);
    svg.finish()
}

/// One panel per `(name, values)` pair, titled with the name and its count, mean and std, each
/// with its own value and count ranges (tensors differ by orders of magnitude).
pub fn histogram_grid<S: AsRef<str>, V: AsRef<[f32]>>(
    tensors: &[(S, V)],
    options: &HistogramGridOptions,
) -> String {
    if tensors.is_empty() {
        return no_data(&options.title);
    }
    let columns = options.columns.clamp(1, tensors.len());
    let grid_rows = tensors.len().div_ceil(columns);
    let (panel_w, panel_h) = (300.0, 210.0);
    let (left, top) = (10.0, 66.0);
    let width = left + columns as f64 * panel_w + 10.0;
    let height = top + grid_rows as f64 * panel_h + 10.0;
    let mut svg = Svg::new(width, height);
    let title_style = Text::new(Anchor::Middle, 16.0).bold();
    svg.text(width / 2.0, 28.0, &options.title, title_style);
    let axes_note = format!("x: value, y: {} per bin", count_name(options.log_count));
    svg.text(
        width / 2.0,
        48.0,
        &axes_note,
        Text::new(Anchor::Middle, 11.0),
    );
    for (index, (name, values)) in tensors.iter().enumerate() {
        let x = left + (index % columns) as f64 * panel_w;
        let y = top + (index / columns) as f64 * panel_h;
        let centre = x + panel_w / 2.0;
        let name = truncate(name.as_ref(), 44);
        svg.text(
            centre,
            y + 12.0,
            &name,
            Text::new(Anchor::Middle, 11.0).bold(),
        );
        let summary = Summary::of(values.as_ref());
        svg.text(
            centre,
            y + 26.0,
            &summary.describe(),
            Text::new(Anchor::Middle, 9.5),
        );
        if summary.count == 0 {
            svg.text(
                centre,
                y + panel_h / 2.0,
                "no data",
                Text::new(Anchor::Middle, 11.0),
            );
            continue;
        }
        let panel = Panel {
            values: values.as_ref(),
            summary: &summary,
            bins: options.bins,
            log_count: options.log_count,
            font: 9.0,
        };
        panel.draw(
            &mut svg,
            (x, y + 34.0, panel_w - 16.0, panel_h - 40.0),
            ("", ""),
        );
    }
    svg.finish()
}

fn count_name(log: bool) -> &'static str {
    if log {
        "count (log)"
    } else {
        "count"
    }
}

/// Count, mean and standard deviation of the finite values (in f64), and how many were not finite.
struct Summary {
    count: usize,
    non_finite: usize,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn of(values: &[f32]) -> Self {
        let finite = || {
            values
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| f64::from(v))
        };
        let count = finite().count();
        let n = count.max(1) as f64;
        let mean = finite().sum::<f64>() / n;
        let variance = finite().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Summary {
            count,
            non_finite: values.len() - count,
            mean,
            std: variance.sqrt(),
            min: finite().fold(f64::INFINITY, f64::min),
            max: finite().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    fn describe(&self) -> String {
        if self.count == 0 {
            return format!("n = 0 of {} values", self.non_finite);
        }
        let mut line = format!(
            "n = {}, mean = {}, std = {}",
            self.count,
            format_value(self.mean),
            format_value(self.std)
        );
        if self.non_finite > 0 {
            line += &format!(", {} non-finite left out", self.non_finite);
        }
        line
    }
}

/// One histogram's bars and axes, shared by the single figure and the grid.
struct Panel<'a> {
    values: &'a [f32],
    summary: &'a Summary,
    bins: usize,
    log_count: bool,
    font: f64,
}

impl Panel<'_> {
    /// Draws into the box (x, y, width, height), axis names included when not empty.
    fn draw(
        &self,
        svg: &mut Svg,
        (x, y, width, height): (f64, f64, f64, f64),
        names: (&str, &str),
    ) {
        let Bins { lo, hi, counts } = Bins::over(self.values, self.summary, self.bins);
        let most = counts.iter().copied().max().unwrap_or(0) as f64;
        let counts_scale = if self.log_count {
            // From half a count, so that bins holding a single value still show.
            Scale::log(0.5, most.max(1.0))
        } else {
            // At least 0..5: counts are whole numbers, so ticks should be too.
            Scale::nice(0.0, most.max(5.0), 4)
        };
        let name_room = |name: &str| {
            if name.is_empty() {
                0.0
            } else {
                2.0 * self.font
            }
        };
        let left = x + y_ticks_width(&counts_scale, self.font) + 4.0 + name_room(names.1);
        let bottom_room = 2.0 * self.font + 8.0 + name_room(names.0);
        let axes = Axes {
            left,
            top: y,
            width: x + width - left,
            height: height - bottom_room,
            // The bins span the axis exactly; ticks fall at nice values inside it.
            x: Scale::exact(lo, hi, 6),
            y: counts_scale,
        };
        axes.draw_x(svg, names.0, self.font);
        axes.draw_y(svg, names.1, self.font);
        let bin_width = (hi - lo) / counts.len() as f64;
        let base = axes.py(counts_scale.lo);
        for (i, &count) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            let x0 = axes.px(lo + i as f64 * bin_width);
            let x1 = axes.px(lo + (i + 1) as f64 * bin_width);
            let top = axes.py(count as f64);
            svg.classed_rect("bin", (x0, top, x1 - x0, base - top), "#4c78a8");
        }
        axes.draw_frame(svg);
    }
}

/// What a histogram counts: the finite values in equal-width bins spanning `lo..=hi`, their range
/// (a constant's widened so the bins have width), the largest value in the last bin.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
}

impl Bins {
    /// The counts the histograms draw, for callers that also want the numbers.
    pub fn of(values: &[f32], bins: usize) -> Bins {
        Bins::over(values, &Summary::of(values), bins)
    }

    fn over(values: &[f32], summary: &Summary, bins: usize) -> Bins {
        let (lo, hi) = widen(summary.min, summary.max);
        let bins = bins.max(1);
        let mut counts = vec![0u64; bins];
        for v in values.iter().filter(|v| v.is_finite()) {
            let t = (f64::from(*v) - lo) / (hi - lo);
            counts[((t * bins as f64) as usize).min(bins - 1)] += 1;
        }
        Bins { lo, hi, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::svg::assert_well_formed;

    #[test]
    fn counts_every_finite_value_and_notes_the_rest() {
        let values = [0.0f32, 1.0, 1.0, 2.0, f32::NAN, f32::INFINITY];
        let options = HistogramOptions {
            bins: 4,
            ..Default::default()
        };
        let svg = histogram(&values, &options);
        assert_well_formed(&svg);
        assert_eq!(
            svg.matches("class=\"bin\"").count(),
            3,
            "the empty bin draws nothing"
        );
        assert!(svg.contains("n = 4, mean = 1.00, std = 0.707, 2 non-finite left out"));
    }

    #[test]
    fn single_values_and_empty_tensors_do_not_panic() {
        let options = HistogramOptions {
            log_count: true,
            ..Default::default()
        };
        let single = histogram(&[3.5], &options);
        assert_well_formed(&single);
        assert_eq!(single.matches("class=\"bin\"").count(), 1);
        assert!(histogram(&[], &options).contains("no data"));
        let tensors: [(&str, &[f32]); 3] = [
            ("wte", &[0.1, -0.2, 0.3]),
            ("ln.bias", &[0.0; 8]),
            ("empty", &[]),
        ];
        let grid = histogram_grid(&tensors, &Default::default());
        assert_well_formed(&grid);
        assert!(grid.contains(">wte<") && grid.contains("n = 8, mean = 0, std = 0"));
        assert!(grid.contains(">no data<") && grid.contains("n = 0 of 0 values"));
    }
}
