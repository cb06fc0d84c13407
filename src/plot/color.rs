//! Colour: the maps that turn a matrix value into a cell colour, the colour bar that states the
//! mapping, and the palette that tells line series apart.

use super::scale::{format_value, widen, Scale};
use super::svg::{text_width, Anchor, Svg, Text};

/// Viridis (matplotlib's default): perceptually even, readable in grey and by colour-blind readers.
const VIRIDIS: [[u8; 3]; 9] = [
    [0x44, 0x01, 0x54],
    [0x47, 0x2d, 0x7b],
    [0x3b, 0x52, 0x8b],
    [0x2c, 0x72, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x28, 0xae, 0x80],
    [0x5e, 0xc9, 0x62],
    [0xad, 0xdc, 0x30],
    [0xfd, 0xe7, 0x25],
];

/// Blue through white to red (ColorBrewer RdBu, reversed so negative is blue).
const BLUE_WHITE_RED: [[u8; 3]; 9] = [
    [0x21, 0x66, 0xac],
    [0x43, 0x93, 0xc3],
    [0x92, 0xc5, 0xde],
    [0xd1, 0xe5, 0xf0],
    [0xf7, 0xf7, 0xf7],
    [0xfd, 0xdb, 0xc7],
    [0xf4, 0xa5, 0x82],
    [0xd6, 0x60, 0x4d],
    [0xb2, 0x18, 0x2b],
];

/// Cells with no value (NaN), such as attention to future positions under the causal mask.
pub(crate) const MASKED: &str = "#b0b0b0";

/// Distinct colours for line series, in order (matplotlib's "tab10").
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of the `index`-th series (the palette repeats after ten).
pub(crate) fn series_color(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// How heatmap values become colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColorScale {
    /// Dark purple (low) through green to yellow (high), viridis: for values with one direction,
    /// like probabilities. `range` fixes the ends (0..1 for probabilities); `None` takes the data's
    /// smallest and largest value.
    Sequential { range: Option<(f32, f32)> },
    /// Blue below zero, white at zero, red above, symmetric about zero: for signed values like
    /// embeddings or activations. `limit` is the magnitude drawn darkest; `None` takes the data's
    /// largest magnitude.
    Diverging { limit: Option<f32> },
}

impl Default for ColorScale {
    fn default() -> Self {
        ColorScale::Sequential { range: None }
    }
}

impl ColorScale {
    /// Sequential over 0..1, for probabilities such as attention weights.
    pub fn probabilities() -> Self {
        ColorScale::Sequential {
            range: Some((0.0, 1.0)),
        }
    }
}

/// A colour scale fitted to data: the value range its two ends stand for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColorMap {
    lo: f64,
    hi: f64,
    anchors: &'static [[u8; 3]],
}

impl ColorMap {
    /// `scale` with its open ends taken from the finite `values`.
    pub(crate) fn fit(scale: ColorScale, values: impl Iterator<Item = f32>) -> Self {
        let (mut lo, mut hi, mut largest) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for v in values.filter(|v| v.is_finite()).map(f64::from) {
            lo = lo.min(v);
            hi = hi.max(v);
            largest = largest.max(v.abs());
        }
        let (lo, hi, anchors) = match scale {
            ColorScale::Sequential { range } => {
                let (lo, hi) = range.map_or((lo, hi), |(a, b)| (a.into(), b.into()));
                let (lo, hi) = widen(lo, hi);
                (lo, hi, &VIRIDIS[..])
            }
            ColorScale::Diverging { limit } => {
                let limit = limit.map_or(largest, f64::from).abs();
                let limit = if limit > 0.0 && limit.is_finite() {
                    limit
                } else {
                    1.0
                };
                (-limit, limit, &BLUE_WHITE_RED[..])
            }
        };
        ColorMap { lo, hi, anchors }
    }

    /// The colour of `v` as `#rrggbb`: grey for NaN, the end colours beyond the range.
    pub(crate) fn color(&self, v: f32) -> String {
        if v.is_nan() {
            return MASKED.into();
        }
        let t = ((f64::from(v) - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        let position = t * (self.anchors.len() - 1) as f64;
        let i = (position.floor() as usize).min(self.anchors.len() - 2);
        let f = position - i as f64;
        let (a, b) = (self.anchors[i], self.anchors[i + 1]);
        let mix = |k: usize| (f64::from(a[k]) + (f64::from(b[k]) - f64::from(a[k])) * f).round();
        format!(
            "#{:02x}{:02x}{:02x}",
            mix(0) as u8,
            mix(1) as u8,
            mix(2) as u8
        )
    }

    /// How wide `draw_bar` draws, labels included.
    pub(crate) fn bar_width(&self, font: f64) -> f64 {
        let ticks = self.bar_ticks();
        let widest = ticks.iter().map(|t| text_width(&t.1, font));
        let widest = widest.fold(text_width("masked", font), f64::max);
        (BAR_WIDTH + 6.0 + widest).max(text_width(&self.range_text(), font))
    }

    /// A vertical colour bar at (x, y), `height` tall, low values at the bottom, labelled with nice
    /// ticks; below it the exact range, and a grey swatch when some cells are `masked`.
    pub(crate) fn draw_bar(&self, svg: &mut Svg, (x, y): (f64, f64), height: f64, masked: bool) {
        let stops: Vec<(f64, String)> = (0..self.anchors.len())
            .map(|i| {
                let t = i as f64 / (self.anchors.len() - 1) as f64;
                (t, self.color((self.lo + t * (self.hi - self.lo)) as f32))
            })
            .collect();
        svg.vertical_gradient("colorbar", &stops);
        svg.rect(x, y, BAR_WIDTH, height, "url(#colorbar)");
        svg.outline(x, y, BAR_WIDTH, height, "#666");
        let font = 10.0;
        let scale = Scale::exact(self.lo, self.hi, 5);
        for (v, label) in self.bar_ticks() {
            let ty = y + (1.0 - scale.fraction(v)) * height;
            svg.line((x + BAR_WIDTH, ty), (x + BAR_WIDTH + 3.0, ty), "#666");
            svg.text(
                x + BAR_WIDTH + 5.0,
                ty + font * 0.35,
                &label,
                Text::new(Anchor::Start, font),
            );
        }
        let mut below = y + height + 14.0;
        svg.text(x, below, &self.range_text(), Text::new(Anchor::Start, font));
        if masked {
            below += 8.0;
            svg.rect(x, below, BAR_WIDTH, 10.0, MASKED);
            svg.text(
                x + BAR_WIDTH + 5.0,
                below + 9.0,
                "masked",
                Text::new(Anchor::Start, font),
            );
        }
    }

    /// The exact ends of the scale, which the nice ticks may not reach.
    fn range_text(&self) -> String {
        format!("{} … {}", format_value(self.lo), format_value(self.hi))
    }

    fn bar_ticks(&self) -> Vec<(f64, String)> {
        Scale::exact(self.lo, self.hi, 5).ticks()
    }
}

const BAR_WIDTH: f64 = 14.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_run_from_end_to_end_and_grey_out_nan() {
        let seq = ColorMap::fit(ColorScale::probabilities(), [0.5f32].into_iter());
        assert_eq!(seq.color(0.0), "#440154");
        assert_eq!(seq.color(1.0), "#fde725");
        assert_eq!(seq.color(7.0), "#fde725");
        assert_eq!(seq.color(f32::NAN), MASKED);
        let div = ColorMap::fit(
            ColorScale::Diverging { limit: None },
            [-2.0f32, 1.0].into_iter(),
        );
        assert_eq!(div.color(0.0), "#f7f7f7");
        assert_eq!(div.color(-2.0), "#2166ac");
        assert_eq!(div.color(2.0), "#b2182b");
    }

    #[test]
    fn constant_or_empty_data_still_gives_a_range() {
        let constant = ColorMap::fit(ColorScale::default(), [3.0f32; 4].into_iter());
        assert!(constant.lo < 3.0 && constant.hi > 3.0);
        let empty = ColorMap::fit(
            ColorScale::Diverging { limit: None },
            [f32::NAN].into_iter(),
        );
        assert_eq!((empty.lo, empty.hi), (-1.0, 1.0));
    }
}
