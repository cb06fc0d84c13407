//! Summary statistics of tensors, computed plainly in f64.

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
}
