//! The loss curves of a run as a standalone SVG: the logged training loss, and the train and
//! validation losses of each evaluation, against the step.

use crate::plot::{line_chart, LineChartOptions, Series};
use crate::train::Event;

/// An SVG plot of `events` titled `title`.
pub fn loss_curves_svg(events: &[Event], title: &str) -> String {
    let mut logged = Vec::new();
    let mut train = Vec::new();
    let mut val = Vec::new();
    for e in events {
        match *e {
            Event::Step { step, loss, .. } => logged.push((step as f64, loss as f64)),
            Event::Eval {
                step,
                train_loss,
                val_loss,
            } => {
                train.push((step as f64, train_loss as f64));
                val.push((step as f64, val_loss as f64));
            }
        }
    }
    // The noisy per-batch loss in a pale colour behind the two evaluation curves.
    let series = [
        Series::new("training batch", logged).with_color("#9ecae1"),
        Series::new("train (eval)", train).with_color("#08519c"),
        Series::new("val (eval)", val).with_color("#e6550d"),
    ];
    let options = LineChartOptions {
        title: title.into(),
        x_label: "step".into(),
        y_label: "loss (nats per token)".into(),
        ..Default::default()
    };
    line_chart(&series, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_every_series_with_a_legend() {
        let events = [
            Event::Step {
                step: 1,
                loss: 4.2,
                lr: 1e-3,
                tokens_per_s: 1.0,
            },
            Event::Step {
                step: 10,
                loss: 3.0,
                lr: 1e-3,
                tokens_per_s: 1.0,
            },
            Event::Eval {
                step: 10,
                train_loss: 3.1,
                val_loss: 3.2,
            },
        ];
        let svg = loss_curves_svg(&events, "a <run>");
        assert_eq!(svg.matches("class=\"series\"").count(), 3);
        assert!(svg.contains("val (eval)") && svg.contains("a &lt;run&gt;"));
    }
}
