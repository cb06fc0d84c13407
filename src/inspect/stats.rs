//! Summary statistics and histograms of tensors, computed plainly in f64.

use serde::Serialize;

/// |x| below this counts as "near zero" (activations and weights here are O(0.01 .. 10)).
pub const NEAR_ZERO: f64 = 1e-2;

/// Mean, standard deviation, largest magnitude and fraction near zero of some values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub max_abs: f64,
    /// Fraction of values with |x| < [`NEAR_ZERO`].
    pub near_zero: f64,
}

impl Stats {
    pub fn of(values: &[f32]) -> Stats {
        let n = values.len();
        if n == 0 {
            return Stats::default();
        }
        let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = values
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let max_abs = values.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
        let near = values
            .iter()
            .filter(|&&x| (x as f64).abs() < NEAR_ZERO)
            .count();
        Stats {
            count: n,
            mean,
            std: var.sqrt(),
            max_abs,
            near_zero: near as f64 / n as f64,
        }
    }
}

/// Counts of values in `bins` equal-width bins over [min, max] (the last bin closed), with their edges.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

impl Histogram {
    pub fn of(values: &[f32], bins: usize) -> Histogram {
        let bins = bins.max(1);
        let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x as f64), hi.max(x as f64))
        });
        let mut counts = vec![0u64; bins];
        if values.is_empty() {
            return Histogram {
                min: 0.0,
                max: 0.0,
                counts,
            };
        }
        let width = (max - min) / bins as f64;
        for &x in values {
            let bin = if width > 0.0 {
                (((x as f64 - min) / width) as usize).min(bins - 1)
            } else {
                0
            };
            counts[bin] += 1;
        }
        Histogram { min, max, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_values() {
        let s = Stats::of(&[-2.0, 0.0, 0.005, 2.0]);
        assert_eq!(s.count, 4);
        assert!((s.mean - 0.00125).abs() < 1e-9);
        assert!((s.std - (8.000025f64 / 4.0 - 0.00125f64.powi(2)).sqrt()).abs() < 1e-9);
        assert_eq!(s.max_abs, 2.0);
        assert_eq!(s.near_zero, 0.5);
        assert_eq!(Stats::of(&[]), Stats::default());
    }

    #[test]
    fn histogram_puts_the_maximum_in_the_last_bin_and_handles_constants() {
        let h = Histogram::of(&[0.0, 0.25, 0.5, 1.0], 2);
        assert_eq!((h.min, h.max, h.counts.clone()), (0.0, 1.0, vec![2, 2]));
        assert_eq!(Histogram::of(&[3.0; 5], 4).counts, vec![5, 0, 0, 0]);
        assert_eq!(Histogram::of(&[], 3).counts, vec![0, 0, 0]);
    }
}
