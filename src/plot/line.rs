//! Line charts: named series of (x, y) points over a numeric x (training steps) or over named
//! categories (the depth of a model: "embedding", "layer 0 attn", "layer 0 mlp", ...).

use super::axes::{y_ticks_width, Axes, Categories, Side};
use super::color::series_color;
use super::scale::Scale;
use super::svg::{no_data, text_width, truncate, Anchor, Svg, Text};

/// One named line. Points are joined in the order given; a non-finite point (or, on a log axis, a
/// point at or below zero) leaves a gap.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// An SVG colour (`#rrggbb`); `None` takes the next colour of the palette.
    pub color: Option<String>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            color: None,
        }
    }

    /// The series drawn in `color` (e.g. a pale one for a noisy curve behind smoother ones).
    pub fn with_color(self, color: impl Into<String>) -> Self {
        Series {
            color: Some(color.into()),
            ..self
        }
    }

    /// A series over categories: `values[i]` belongs to category `i`.
    pub fn over_categories(name: impl Into<String>, values: &[f64]) -> Self {
        let points = values.iter().enumerate().map(|(i, &v)| (i as f64, v));
        Series::new(name, points.collect())
    }
}

/// What a line chart shows and how.
#[derive(Clone, Debug, Default)]
pub struct LineChartOptions {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Names for x = 0, 1, 2, ... (then x is categorical, use [`Series::over_categories`]); empty
    /// for a numeric x axis.
    pub categories: Vec<String>,
    /// Log10 y axis, for quantities that span orders of magnitude (gradient norms, activation scales).
    pub log_y: bool,
    /// A dot at every point (for few points; leave off for thousands of steps).
    pub markers: bool,
}

const HEIGHT: f64 = 480.0;
const PLOT_WIDTH: f64 = 620.0;
const FONT: f64 = 11.0;
const LEGEND_FONT: f64 = 12.0;

/// `series` drawn as coloured lines with a legend on the right. Without any plottable point the
/// figure says "no data".
pub fn line_chart(series: &[Series], options: &LineChartOptions) -> String {
    let shown =
        |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!options.log_y || y > 0.0);
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| shown(p)))
    };
    let Some(((x_lo, x_hi), (y_lo, y_hi))) = extent(points()) else {
        return no_data(&options.title);
    };

    let y = if options.log_y {
        Scale::log(y_lo, y_hi)
    } else {
        Scale::nice(y_lo, y_hi, 6)
    };
    let categories = (!options.categories.is_empty()).then(|| {
        let labels = options.categories.iter().map(|c| truncate(c, 24)).collect();
        let n = options.categories.len();
        let plot_width = PLOT_WIDTH.max(n as f64 * 14.0);
        (
            Categories::new(labels, Side::Bottom, plot_width / n as f64),
            n,
            plot_width,
        )
    });
    let (x, plot_width, below) = match &categories {
        Some((labels, n, plot_width)) => {
            let scale = Scale::exact(-0.5, *n as f64 - 0.5, 5);
            (scale, *plot_width, labels.extent() + 2.0 * FONT + 12.0)
        }
        None => (Scale::nice(x_lo, x_hi, 8), PLOT_WIDTH, 2.0 * FONT + 24.0),
    };
    let names = series.iter().map(|s| truncate(&s.name, 32));
    let names: Vec<String> = names.collect();
    let legend_w = names
        .iter()
        .map(|n| text_width(n, LEGEND_FONT))
        .fold(0.0, f64::max)
        + 40.0;
    let left = 20.0 + y_ticks_width(&y, FONT) + 2.0 * FONT;
    let axes = Axes {
        left,
        top: 50.0,
        width: plot_width,
        height: HEIGHT - 50.0 - 60.0,
        x,
        y,
    };
    let width = left + plot_width + 20.0 + legend_w;
    let height = axes.bottom() + below + 10.0;

    let mut svg = Svg::new(width, height);
    let title_style = Text::new(Anchor::Middle, 16.0).bold();
    svg.text(width / 2.0, 28.0, &options.title, title_style);
    match &categories {
        Some((labels, ..)) => {
            labels.draw(&mut svg, axes.left, axes.bottom());
            let y = axes.bottom() + labels.extent() + FONT + 8.0;
            let style = Text::new(Anchor::Middle, FONT + 1.0);
            svg.text(axes.left + axes.width / 2.0, y, &options.x_label, style);
        }
        None => axes.draw_x(&mut svg, &options.x_label, FONT),
    }
    axes.draw_y(&mut svg, &options.y_label, FONT);

    for (i, s) in series.iter().enumerate() {
        let color = s.color.as_deref().unwrap_or(series_color(i));
        svg.open_group("class=\"series\"");
        // Split at unplottable points; a lone point between gaps still gets a dot.
        for run in s.points.split(|p| !shown(p)).filter(|run| !run.is_empty()) {
            let pixels: Vec<(f64, f64)> =
                run.iter().map(|&(x, y)| (axes.px(x), axes.py(y))).collect();
            if pixels.len() > 1 {
                svg.polyline(&pixels, color, 2.0);
            }
            if options.markers || pixels.len() == 1 {
                for &p in &pixels {
                    svg.circle(p, 3.0, color);
                }
            }
        }
        svg.close_group();
        let ly = axes.top + 8.0 + 20.0 * i as f64;
        let lx = axes.left + axes.width + 20.0;
        svg.rect(lx, ly - 1.5, 24.0, 3.0, color);
        let style = Text::new(Anchor::Start, LEGEND_FONT);
        svg.text(lx + 30.0, ly + LEGEND_FONT * 0.35, &names[i], style);
    }
    axes.draw_frame(&mut svg);
    svg.finish()
}

/// The x and y ranges of `points`, or `None` when there are none.
fn extent<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> Option<((f64, f64), (f64, f64))> {
    points.fold(None, |acc, &(x, y)| {
        let ((x0, x1), (y0, y1)) = acc.unwrap_or(((x, x), (y, y)));
        Some(((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::svg::assert_well_formed;

    #[test]
    fn categorical_series_get_lines_markers_and_a_legend() {
        let depth = ["embedding", "layer 0 attn", "layer 0 mlp"].map(String::from);
        let series = [
            Series::over_categories("rms", &[1.0, 2.0, 4.0]),
            Series::over_categories("max |x|", &[3.0, 9.0, 20.0]),
        ];
        let options = LineChartOptions {
            title: "residual stream".into(),
            categories: depth.to_vec(),
            log_y: true,
            markers: true,
            ..Default::default()
        };
        let svg = line_chart(&series, &options);
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains(">layer 0 mlp<") && svg.contains(">max |x|<"));
    }

    #[test]
    fn gaps_and_empty_series_do_not_break_the_chart() {
        let gappy = Series::new(
            "a",
            vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)],
        );
        let svg = line_chart(&[gappy, Series::new("b", vec![])], &Default::default());
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "the lone point before the gap"
        );
        let flat = Series::new("flat", vec![(5.0, 2.0), (5.0, 2.0)]);
        assert_well_formed(&line_chart(&[flat], &Default::default()));
        let none = line_chart(&[Series::new("empty", vec![])], &Default::default());
        assert!(none.contains("no data"));
        let negative_on_log = Series::new("neg", vec![(0.0, -1.0)]);
        let options = LineChartOptions {
            log_y: true,
            ..Default::default()
        };
        assert!(line_chart(&[negative_on_log], &options).contains("no data"));
    }
}
