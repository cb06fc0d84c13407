//! The figures of an [`Anatomy`], as `(file name, SVG)` pairs.

use crate::error::Result;
use crate::inspect::anatomy::{Anatomy, Matrix as Labelled, TensorSummary};
use crate::plot::{
    bar_chart, heatmap, heatmap_grid, histogram_grid, line_chart, BarChartOptions, ColorScale,
    HeatmapGridOptions, HeatmapOptions, HistogramGridOptions, LineChartOptions, Matrix, Series,
};

/// Every figure; `model` names the model in titles.
pub fn figures(anatomy: &Anatomy, model: &str) -> Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("attention.svg", attention(anatomy, model)?),
        ("activations.svg", activation_scales(anatomy, model)),
        (
            "activations_near_zero.svg",
            activation_shapes(anatomy, model),
        ),
        ("embedding.svg", embedding(&anatomy.embedding, model)?),
        ("embedding_cosine.svg", cosine(&anatomy.cosine, model)?),
        (
            "parameters.svg",
            histograms(&anatomy.parameters, &format!("{model}: parameter values")),
        ),
        (
            "gradients.svg",
            histograms(
                &anatomy.gradients,
                &format!(
                    "{model}: gradients of one training step on the prompt (loss {})",
                    anatomy
                        .gradient_loss
                        .map_or("-".into(), |l| format!("{l:.3}"))
                ),
            ),
        ),
        ("next_token.svg", next_token(anatomy, model)),
    ])
}

/// Every layer's heads as a grid (a row per layer), query positions down, keys across, the masked
/// future grey.
fn attention(anatomy: &Anatomy, model: &str) -> Result<String> {
    let labels: Vec<String> = anatomy.prompt.iter().map(|t| t.text.clone()).collect();
    let t = labels.len();
    let masked: Vec<Vec<Vec<f32>>> = anatomy
        .attention
        .iter()
        .map(|layer| {
            layer
                .iter()
                .map(|head| {
                    head.iter()
                        .enumerate()
                        .map(|(i, &p)| if i % t > i / t { f32::NAN } else { p })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut panels = Vec::new();
    for (l, layer) in masked.iter().enumerate() {
        for (h, head) in layer.iter().enumerate() {
            panels.push((format!("layer {l} head {h}"), Matrix::new(t, t, head)?));
        }
    }
    let heads = anatomy.attention.first().map_or(1, Vec::len);
    heatmap_grid(
        &panels,
        &HeatmapGridOptions {
            heatmap: HeatmapOptions {
                title: format!("{model}: attention probabilities (row: query token, column: key)"),
                row_axis: "query".into(),
                col_axis: "key".into(),
                row_labels: labels.clone(),
                col_labels: labels,
                colors: ColorScale::probabilities(),
            },
            columns: heads,
        },
    )
}

fn depth_categories(anatomy: &Anatomy) -> Vec<String> {
    anatomy.depth.iter().map(|d| d.name.clone()).collect()
}

/// Standard deviation and largest magnitude of the residual stream and of what each sublayer adds, on
/// a log scale: how the stream grows with depth and which sublayers write the most into it.
fn activation_scales(anatomy: &Anatomy, model: &str) -> String {
    let stream = |f: fn(&crate::inspect::Stats) -> f64| -> Vec<f64> {
        anatomy.depth.iter().map(|d| f(&d.stream)).collect()
    };
    let sublayer = |f: fn(&crate::inspect::Stats) -> f64| -> Vec<f64> {
        anatomy
            .depth
            .iter()
            .map(|d| d.sublayer.as_ref().map_or(f64::NAN, f))
            .collect()
    };
    line_chart(
        &[
            Series::over_categories("stream std", &stream(|s| s.std)),
            Series::over_categories("stream max |x|", &stream(|s| s.max_abs)),
            Series::over_categories("sublayer output std", &sublayer(|s| s.std)),
            Series::over_categories("sublayer output max |x|", &sublayer(|s| s.max_abs)),
        ],
        &LineChartOptions {
            title: format!("{model}: residual stream and sublayer outputs across depth"),
            x_label: "after".into(),
            y_label: "value (log)".into(),
            categories: depth_categories(anatomy),
            log_y: true,
            markers: true,
        },
    )
}

/// Mean and the fraction of elements near zero, across depth.
fn activation_shapes(anatomy: &Anatomy, model: &str) -> String {
    let of = |stream: bool, f: fn(&crate::inspect::Stats) -> f64| -> Vec<f64> {
        anatomy
            .depth
            .iter()
            .map(|d| {
                let s = if stream {
                    Some(&d.stream)
                } else {
                    d.sublayer.as_ref()
                };
                s.map_or(f64::NAN, f)
            })
            .collect()
    };
    let near = format!("|x| < {}", crate::inspect::stats::NEAR_ZERO);
    line_chart(
        &[
            Series::over_categories(
                format!("stream: fraction {near}"),
                &of(true, |s| s.near_zero),
            ),
            Series::over_categories(
                format!("sublayer output: fraction {near}"),
                &of(false, |s| s.near_zero),
            ),
            Series::over_categories("stream mean", &of(true, |s| s.mean)),
            Series::over_categories("sublayer output mean", &of(false, |s| s.mean)),
        ],
        &LineChartOptions {
            title: format!(
                "{model}: fraction of activations near zero, and their mean, across depth"
            ),
            x_label: "after".into(),
            y_label: "fraction / mean".into(),
            categories: depth_categories(anatomy),
            log_y: false,
            markers: true,
        },
    )
}

/// A diverging heatmap of a labelled matrix, colours symmetric about 0 up to `limit` (None: the largest
/// magnitude).
fn diverging(
    m: &Labelled,
    title: String,
    axes: (&str, &str),
    limit: Option<f32>,
) -> Result<String> {
    heatmap(
        &Matrix::new(m.rows.len(), m.columns.len(), &m.values)?,
        &HeatmapOptions {
            title,
            row_axis: axes.0.into(),
            col_axis: axes.1.into(),
            row_labels: m.rows.clone(),
            col_labels: m.columns.clone(),
            colors: ColorScale::Diverging { limit },
        },
    )
}

fn embedding(m: &Labelled, model: &str) -> Result<String> {
    let title = format!(
        "{model}: token embeddings (the first {} tokens that print) by channel",
        m.rows.len()
    );
    diverging(m, title, ("token", "channel"), None)
}

fn cosine(m: &Labelled, model: &str) -> Result<String> {
    let title = format!("{model}: cosine similarity of the prompt's token embeddings");
    diverging(m, title, ("token", "token"), Some(1.0))
}

fn histograms(tensors: &[TensorSummary], title: &str) -> String {
    let panels: Vec<(&str, &[f32])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.values.as_slice()))
        .collect();
    histogram_grid(
        &panels,
        &HistogramGridOptions {
            title: title.into(),
            bins: 60,
            log_count: true,
            columns: 4,
        },
    )
}

fn next_token(anatomy: &Anatomy, model: &str) -> String {
    let bars: Vec<(String, f32)> = anatomy
        .next_token
        .iter()
        .map(|(t, p)| (t.text.clone(), *p))
        .collect();
    let last = anatomy
        .prompt
        .last()
        .map_or(String::new(), |t| t.text.clone());
    bar_chart(
        &bars,
        &BarChartOptions {
            title: format!("{model}: most likely next tokens after …{last:?}"),
            x_label: "probability".into(),
        },
    )
}
