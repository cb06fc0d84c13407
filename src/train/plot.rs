//! The loss curves of a run as a standalone SVG: the logged training loss, and the train and
//! validation losses of each evaluation, against the step.

use crate::train::Event;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const MARGIN: (f64, f64, f64, f64) = (70.0, 20.0, 50.0, 50.0); // left, right, top, bottom

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
    let all: Vec<(f64, f64)> = logged.iter().chain(&train).chain(&val).copied().collect();
    let max_step = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = all
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        (lo.floor().min(hi - 0.5), hi.ceil())
    };
    let (left, right, top, bottom) = MARGIN;
    let x = |s: f64| left + s / max_step * (WIDTH - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (HEIGHT - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    // Axes, ticks and grid.
    let (x0, x1, y0, y1) = (left, WIDTH - right, top, HEIGHT - bottom);
    svg += &format!("<path d=\"M{x0} {y0} V{y1} H{x1}\" stroke=\"black\" fill=\"none\"/>\n");
    for i in 0..=5 {
        let s = max_step * i as f64 / 5.0;
        svg += &format!(
            "<line x1=\"{0}\" y1=\"{y0}\" x2=\"{0}\" y2=\"{y1}\" stroke=\"#eee\"/><text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">{2:.0}</text>\n",
            x(s),
            y1 + 16.0,
            s
        );
        let v = lo + (hi - lo) * i as f64 / 5.0;
        svg += &format!(
            "<line x1=\"{x0}\" y1=\"{0}\" x2=\"{x1}\" y2=\"{0}\" stroke=\"#eee\"/><text x=\"{1}\" y=\"{2}\" text-anchor=\"end\">{v:.2}</text>\n",
            y(v),
            x0 - 6.0,
            y(v) + 4.0
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">loss (nats per token)</text>\n",
        (x0 + x1) / 2.0,
        HEIGHT - 12.0,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    let series = [
        (&logged, "#9ecae1", "training batch"),
        (&train, "#08519c", "train (eval)"),
        (&val, "#e6550d", "val (eval)"),
    ];
    for (i, (points, color, label)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v.clamp(lo, hi))))
            .collect();
        svg += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            path.join(" ")
        );
        let ly = y0 + 10.0 + 18.0 * i as f64;
        svg += &format!(
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{2}\" y=\"{3}\">{label}</text>\n",
            x1 - 150.0,
            x1 - 126.0,
            x1 - 120.0,
            ly + 4.0
        );
    }
    svg + "</svg>\n"
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("val (eval)") && svg.contains("a &lt;run&gt;"));
    }
}
