//! Learning-rate schedules, as nanoGPT's `get_lr`: linear warmup, then constant or cosine decay to
//! `min_lr` at the last step.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Cosine,
}

/// The learning rate of step `it` (0-based) of `steps`.
pub fn learning_rate(
    schedule: Schedule,
    it: u32,
    steps: u32,
    warmup: u32,
    lr: f64,
    min_lr: f64,
) -> f64 {
    if it < warmup {
        return lr * (it + 1) as f64 / (warmup + 1) as f64;
    }
    match schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => {
            if it >= steps || steps <= warmup {
                return min_lr;
            }
            let ratio = (it - warmup) as f64 / (steps - warmup) as f64;
            let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
            min_lr + coeff * (lr - min_lr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_min_lr_at_the_end() {
        let at = |it| learning_rate(Schedule::Cosine, it, 2000, 100, 1e-3, 1e-4);
        assert!((at(0) - 1e-3 / 101.0).abs() < 1e-12);
        assert!((at(99) - 1e-3 * 100.0 / 101.0).abs() < 1e-12);
        assert!((at(100) - 1e-3).abs() < 1e-12);
        assert!((at(1050) - 5.5e-4).abs() < 1e-12);
        assert!((at(2000) - 1e-4).abs() < 1e-12);
        assert_eq!(
            learning_rate(Schedule::Constant, 500, 2000, 100, 1e-3, 1e-4),
            1e-3
        );
    }
}
