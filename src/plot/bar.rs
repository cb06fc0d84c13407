//! Horizontal bar charts: labelled values top to bottom, each value written at its bar's end (the
//! top-k next tokens and their probabilities).

use super::axes::{Axes, Categories, Side};
use super::scale::{format_value, Scale};
use super::svg::{no_data, text_width, token_label, Anchor, Svg, Text};

/// What a bar chart shows.
#[derive(Clone, Debug, Default)]
pub struct BarChartOptions {
    pub title: String,
    /// What the values are, written under the x axis (e.g. "probability").
    pub x_label: String,
}

const SLOT: f64 = 22.0;
const PLOT_WIDTH: f64 = 480.0;
const FONT: f64 = 11.0;

/// One bar per `(label, value)`, in the order given, from zero to the value (leftwards for negative
/// values). Labels are tokens: whitespace is drawn visibly (␣ ↵ ⇥). Non-finite values get no bar
/// but their value is still written.
pub fn bar_chart<S: AsRef<str>>(bars: &[(S, f32)], options: &BarChartOptions) -> String {
    if bars.is_empty() {
        return no_data(&options.title);
    }
    let values = || {
        bars.iter()
            .map(|b| f64::from(b.1))
            .filter(|v| v.is_finite())
    };
    let lo = values().fold(0.0, f64::min);
    let hi = values().fold(0.0, f64::max);
    let labels = bars.iter().map(|b| token_label(b.0.as_ref(), 24)).collect();
    let labels = Categories::new(labels, Side::Left, SLOT);
    let texts: Vec<String> = bars.iter().map(|b| format_value(b.1.into())).collect();
    let text_room = texts
        .iter()
        .map(|t| text_width(t, FONT))
        .fold(0.0, f64::max)
        + 8.0;

    let left = 16.0 + labels.extent();
    let axes = Axes {
        left: left + if lo < 0.0 { text_room } else { 0.0 },
        top: 50.0,
        width: PLOT_WIDTH,
        height: SLOT * bars.len() as f64,
        x: Scale::nice(lo, hi, 5),
        y: Scale::exact(0.0, bars.len() as f64, 1),
    };
    let width = axes.left + PLOT_WIDTH + text_room + 16.0;
    let height = axes.bottom() + 2.0 * FONT + 36.0;

    let mut svg = Svg::new(width, height);
    let title_style = Text::new(Anchor::Middle, 16.0).bold();
    svg.text(width / 2.0, 28.0, &options.title, title_style);
    axes.draw_x(&mut svg, &options.x_label, FONT);
    labels.draw(&mut svg, axes.top, left);
    let zero = axes.px(0.0);
    for (i, (bar, text)) in bars.iter().zip(&texts).enumerate() {
        let top = axes.top + i as f64 * SLOT;
        let end = if bar.1.is_finite() {
            axes.px(bar.1.into())
        } else {
            zero
        };
        let (x0, x1) = (zero.min(end), zero.max(end));
        svg.classed_rect("bar", (x0, top + 3.0, x1 - x0, SLOT - 6.0), "#4c78a8");
        let baseline = top + SLOT / 2.0 + FONT * 0.35;
        if bar.1 < 0.0 {
            svg.text(x0 - 4.0, baseline, text, Text::new(Anchor::End, FONT));
        } else {
            svg.text(x1 + 4.0, baseline, text, Text::new(Anchor::Start, FONT));
        }
    }
    svg.line((zero, axes.top), (zero, axes.bottom()), "#333");
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::svg::assert_well_formed;

    #[test]
    fn writes_each_value_at_its_bar_and_shows_token_whitespace() {
        let bars = [
            (" the", 0.52f32),
            ("\n", 0.21),
            ("<|endoftext|>", 0.013),
            ("&", 0.0),
        ];
        let options = BarChartOptions {
            title: "next token after \"To be\"".into(),
            x_label: "probability".into(),
        };
        let svg = bar_chart(&bars, &options);
        assert_well_formed(&svg);
        assert_eq!(svg.matches("class=\"bar\"").count(), 4);
        for text in [
            ">0.520<", ">0.210<", ">0.0130<", ">0<", ">␣the<", ">↵<", ">&amp;<",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.contains("&lt;|endoftext|&gt;"));
    }

    #[test]
    fn negative_nan_and_no_bars_are_handled() {
        let svg = bar_chart(
            &[("a", -2.0f32), ("b", f32::NAN), ("c", 1.0)],
            &Default::default(),
        );
        assert_well_formed(&svg);
        assert!(svg.contains(">-2.00<") && svg.contains(">NaN<"));
        let none: [(&str, f32); 0] = [];
        assert!(bar_chart(&none, &Default::default()).contains("no data"));
    }
}
