//! Axis scales: where a value lands along an axis, and "nice" ticks, steps of 1, 2 or 5 × 10^k, so
//! tick labels are round numbers a reader can interpolate between. Also the two number formats:
//! tick labels (as many decimals as the step needs) and annotations (three significant digits).

/// A step of 1, 2 or 5 × 10^k that cuts `span` into about `target` pieces.
pub(crate) fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let mantissa = raw / magnitude; // in [1, 10)
    let nice = if mantissa < 1.5 {
        1.0
    } else if mantissa < 3.0 {
        2.0
    } else if mantissa < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// The multiples of `nice_step(hi - lo, target)` that lie in [lo, hi].
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let step = nice_step(hi - lo, target);
    // A hair of slack so that ends sitting exactly on a multiple survive rounding.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// [lo, hi] made usable as an axis range: non-finite ends become 0..1, and an empty range (all
/// values equal) is widened around the value so it still sits mid-axis.
pub(crate) fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi > lo {
        return (lo, hi);
    }
    let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - pad, hi + pad)
}

/// A value range mapped onto [0, 1] of an axis, linearly or by log10.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scale {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    log: bool,
    /// About how many ticks to label.
    target: usize,
}

impl Scale {
    /// A linear scale covering [lo, hi], its ends pushed out to whole steps so the axis ends on ticks.
    pub(crate) fn nice(lo: f64, hi: f64, target: usize) -> Self {
        let (lo, hi) = widen(lo, hi);
        let step = nice_step(hi - lo, target);
        Scale {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            log: false,
            target,
        }
    }

    /// A linear scale over exactly [lo, hi] (colour bars, categorical slots).
    pub(crate) fn exact(lo: f64, hi: f64, target: usize) -> Self {
        let (lo, hi) = widen(lo, hi);
        Scale {
            lo,
            hi,
            log: false,
            target,
        }
    }

    /// A log10 scale covering [lo, hi] (both > 0), its ends pushed out to 1, 2 or 5 × 10^k.
    pub(crate) fn log(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if lo > 0.0 && hi >= lo && hi.is_finite() {
            (lo, hi)
        } else {
            (1.0, 10.0)
        };
        let (lo, hi) = (round_125(lo, false), round_125(hi, true));
        let hi = if hi > lo { hi } else { lo * 10.0 };
        Scale {
            lo,
            hi,
            log: true,
            target: 5,
        }
    }

    /// Where `v` falls: 0 at `lo`, 1 at `hi`.
    pub(crate) fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// The labelled ticks inside the range, with their labels.
    pub(crate) fn ticks(&self) -> Vec<(f64, String)> {
        if !self.log {
            let step = nice_step(self.hi - self.lo, self.target);
            return nice_ticks(self.lo, self.hi, self.target)
                .into_iter()
                .map(|v| (v, format_tick(v, step)))
                .collect();
        }
        // Powers of ten; over fewer than three decades also 2 and 5 × 10^k, so some tick shows.
        let decades = (self.hi / self.lo).log10();
        let mantissas: &[f64] = if decades < 3.0 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let first = self.lo.log10().floor() as i32;
        let last = self.hi.log10().ceil() as i32;
        let inside = |v: f64| v >= self.lo * (1.0 - 1e-9) && v <= self.hi * (1.0 + 1e-9);
        (first..=last)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|&v| inside(v))
            .map(|v| (v, format_tick(v, v)))
            .collect()
    }
}

/// `v` rounded down (or `up`) to the nearest 1, 2 or 5 × 10^k.
fn round_125(v: f64, up: bool) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    let mantissa = v / magnitude; // in [1, 10)
    let candidates = [1.0, 2.0, 5.0, 10.0];
    let pick = if up {
        candidates.iter().find(|&&c| c >= mantissa * (1.0 - 1e-9))
    } else {
        candidates
            .iter()
            .rev()
            .find(|&&c| c <= mantissa * (1.0 + 1e-9))
    };
    pick.copied().unwrap_or(1.0) * magnitude
}

/// A tick label for `v` on an axis stepping by `step`: as many decimals as the step needs, or
/// scientific notation for very large values and very small steps.
pub(crate) fn format_tick(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e5 || step < 1e-4) {
        let digits = (v.abs().log10().floor() - step.log10().floor()).clamp(0.0, 6.0) as usize;
        return format!("{v:.digits$e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// A value written next to a mark (bar ends, means): three significant digits.
pub(crate) fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor();
    if (-3.0..5.0).contains(&magnitude) {
        let decimals = (2.0 - magnitude).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(7.3, 5), 1.0);
        assert_eq!(nice_step(3.2e-3, 5), 5e-4);
        assert_eq!(nice_step(4200.0, 5), 1000.0);
        assert_eq!(nice_step(0.0, 5), 1.0);
    }

    #[test]
    fn nice_ticks_cover_the_range_with_round_labels() {
        let labels: Vec<String> = Scale::nice(0.13, 0.87, 4)
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let ticks = nice_ticks(-3.0, 3.0, 6);
        assert_eq!(ticks, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_constant_range_is_widened_not_divided_by_zero() {
        let scale = Scale::nice(2.5, 2.5, 5);
        assert!(scale.lo < 2.5 && scale.hi > 2.5);
        assert!((scale.fraction(2.5) - 0.5).abs() < 0.2);
        let zero = Scale::exact(0.0, 0.0, 5);
        assert_eq!((zero.lo, zero.hi), (-1.0, 1.0));
    }

    #[test]
    fn log_scales_tick_at_powers_of_ten() {
        let scale = Scale::log(0.003, 870.0);
        assert_eq!((scale.lo, scale.hi), (0.002, 1000.0));
        let labels: Vec<String> = scale.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1000"]);
        let narrow: Vec<String> = Scale::log(1.0, 30.0)
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(narrow, ["1", "2", "5", "10", "20", "50"]);
    }

    #[test]
    fn numbers_are_formatted_to_their_precision() {
        assert_eq!(format_tick(0.30000000000000004, 0.1), "0.3");
        assert_eq!(format_tick(-1e-17, 0.5), "0.0");
        assert_eq!(format_tick(2000.0, 500.0), "2000");
        assert_eq!(format_tick(3e-5, 1e-5), "3e-5");
        assert_eq!(format_tick(250000.0, 50000.0), "2.5e5");
        assert_eq!(format_value(0.52345), "0.523");
        assert_eq!(format_value(-12.345), "-12.3");
        assert_eq!(format_value(1.5e-6), "1.50e-6");
    }
}
