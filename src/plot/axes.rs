//! Axes shared by the charts: a numeric plot rectangle with ticks, grid lines and axis names, and
//! rows of category labels (tokens, depth names) that thin out or turn sideways to stay legible.

use super::scale::Scale;
use super::svg::{text_width, Anchor, Svg, Text};

const GRID: &str = "#e6e6e6";
const INK: &str = "#333";

/// A plot rectangle in pixels and the scales that map data into it.
pub(crate) struct Axes {
    pub(crate) left: f64,
    pub(crate) top: f64,
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) x: Scale,
    pub(crate) y: Scale,
}

impl Axes {
    pub(crate) fn px(&self, x: f64) -> f64 {
        self.left + self.x.fraction(x) * self.width
    }

    pub(crate) fn py(&self, y: f64) -> f64 {
        self.top + (1.0 - self.y.fraction(y)) * self.height
    }

    pub(crate) fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// Vertical grid lines and labelled ticks for a numeric x, its `name` centred below.
    pub(crate) fn draw_x(&self, svg: &mut Svg, name: &str, font: f64) {
        for (v, label) in self.x.ticks() {
            let x = self.px(v);
            svg.line((x, self.top), (x, self.bottom()), GRID);
            svg.line((x, self.bottom()), (x, self.bottom() + 4.0), INK);
            let style = Text::new(Anchor::Middle, font);
            svg.text(x, self.bottom() + 6.0 + font, &label, style);
        }
        let style = Text::new(Anchor::Middle, font + 1.0);
        let y = self.bottom() + 2.0 * font + 16.0;
        svg.text(self.left + self.width / 2.0, y, name, style);
    }

    /// Horizontal grid lines and labelled ticks for a numeric y, its `name` turned up the left side.
    pub(crate) fn draw_y(&self, svg: &mut Svg, name: &str, font: f64) {
        for (v, label) in self.y.ticks() {
            let y = self.py(v);
            svg.line((self.left, y), (self.left + self.width, y), GRID);
            svg.line((self.left - 4.0, y), (self.left, y), INK);
            let style = Text::new(Anchor::End, font);
            svg.text(self.left - 6.0, y + font * 0.35, &label, style);
        }
        let x = self.left - y_ticks_width(&self.y, font) - 10.0 - font;
        let y = self.top + self.height / 2.0;
        let style = Text::new(Anchor::Middle, font + 1.0).rotated(-90.0);
        svg.text(x, y, name, style);
    }

    /// The left and bottom axis lines, drawn over whatever the plot holds.
    pub(crate) fn draw_frame(&self, svg: &mut Svg) {
        svg.line((self.left, self.top), (self.left, self.bottom()), INK);
        let right = self.left + self.width;
        svg.line((self.left, self.bottom()), (right, self.bottom()), INK);
    }
}

/// How much room the tick labels of a y scale take left of the axis.
pub(crate) fn y_ticks_width(scale: &Scale, font: f64) -> f64 {
    scale
        .ticks()
        .iter()
        .map(|t| text_width(&t.1, font))
        .fold(0.0, f64::max)
        + 6.0
}

/// Which edge of a plot a row of category labels runs along.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Side {
    Left,
    Bottom,
}

/// Labels for slots of `pitch` px along one edge (a heatmap's tokens, a line chart's depths, a bar
/// chart's bars). When slots are shorter than the text is tall only every `stride`-th label is shown;
/// bottom labels wider than their slot are turned to read upwards.
pub(crate) struct Categories {
    labels: Vec<String>,
    side: Side,
    pitch: f64,
    pub(crate) font: f64,
    stride: usize,
    rotated: bool,
}

impl Categories {
    pub(crate) fn new(labels: Vec<String>, side: Side, pitch: f64) -> Self {
        let font = (pitch * 0.85).clamp(7.0, 11.0);
        let stride = ((font + 1.0) / pitch).ceil().max(1.0) as usize;
        let widest = labels
            .iter()
            .map(|l| text_width(l, font))
            .fold(0.0, f64::max);
        let rotated = side == Side::Bottom && widest > pitch - 2.0;
        let stride = if side == Side::Bottom && !rotated {
            1
        } else {
            stride
        };
        Categories {
            labels,
            side,
            pitch,
            font,
            stride,
            rotated,
        }
    }

    /// How far the labels reach out from the edge.
    pub(crate) fn extent(&self) -> f64 {
        if self.labels.is_empty() {
            return 0.0;
        }
        let widest = self.labels.iter().map(|l| text_width(l, self.font));
        let widest = widest.fold(0.0, f64::max);
        match (self.side, self.rotated) {
            (Side::Left, _) | (Side::Bottom, true) => widest + 6.0,
            (Side::Bottom, false) => self.font + 6.0,
        }
    }

    /// Draws the labels against the edge at `edge` (an x for `Left`, a y for `Bottom`), the first
    /// slot starting at `start` along it.
    pub(crate) fn draw(&self, svg: &mut Svg, start: f64, edge: f64) {
        for (i, label) in self.labels.iter().enumerate().step_by(self.stride) {
            let centre = start + (i as f64 + 0.5) * self.pitch;
            let baseline_shift = self.font * 0.35;
            match (self.side, self.rotated) {
                (Side::Left, _) => {
                    let style = Text::new(Anchor::End, self.font);
                    svg.text(edge - 4.0, centre + baseline_shift, label, style);
                }
                (Side::Bottom, false) => {
                    let style = Text::new(Anchor::Middle, self.font);
                    svg.text(centre, edge + 3.0 + self.font, label, style);
                }
                (Side::Bottom, true) => {
                    let style = Text::new(Anchor::End, self.font).rotated(-90.0);
                    svg.text(centre + baseline_shift, edge + 4.0, label, style);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(categories: &Categories) -> String {
        let mut svg = Svg::new(100.0, 100.0);
        categories.draw(&mut svg, 0.0, 50.0);
        svg.finish()
    }

    #[test]
    fn crowded_labels_are_thinned_so_they_do_not_overlap() {
        let labels: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        let crowded = Categories::new(labels, Side::Left, 2.0);
        let shown = drawn(&crowded).matches("<text").count();
        assert!(shown < 200 && shown >= 200 / crowded.stride);
        assert!(
            crowded.stride as f64 * 2.0 >= crowded.font,
            "labels one font height apart"
        );
    }

    #[test]
    fn bottom_labels_turn_sideways_only_when_wider_than_their_slot() {
        let short = Categories::new(vec!["a".into(), "b".into()], Side::Bottom, 30.0);
        assert!(!drawn(&short).contains("rotate"));
        let long = Categories::new(vec!["layer 0 attn".into()], Side::Bottom, 30.0);
        assert!(drawn(&long).contains("rotate(-90"));
        assert!(long.extent() > short.extent());
    }
}
