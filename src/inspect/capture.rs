//! The numbers `wgpt inspect` draws, read from the GPU forward of a prompt through the plan's capture
//! option: every layer's attention probabilities, the residual stream and each sublayer's output, and the
//! logits. Nothing here recomputes the model on the CPU.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::{Gpt, StepInputs, TensorId};

/// One point of the residual stream across depth: the stream after a sublayer (or the embedding) and
/// what that sublayer added to it, each `[T, C]` row-major.
pub struct Stage {
    /// "embedding", "layer 0 attention", "layer 0 mlp", ...
    pub name: String,
    pub stream: Vec<f32>,
    /// The sublayer's output (`None` for the embedding, which is the stream itself).
    pub sublayer: Option<Vec<f32>>,
}

/// What one forward of a prompt shows.
pub struct Captured {
    /// Per layer `[H, T, T]` row-major: row t is query t's distribution over keys 0..=t (0 above).
    pub attention: Vec<Vec<f32>>,
    pub stages: Vec<Stage>,
    /// `[T, V]`: row t scores the token after position t.
    pub logits: Vec<f32>,
}

/// Runs the forward of `tokens` (1 ..= context length of them) with the tensors above captured.
pub fn capture(gpu: &Gpu, model: &Gpt, tokens: &[u32]) -> Result<Captured> {
    let (plan, graph) = model.inspect_plan(gpu, tokens.len(), |g| {
        let mut keep: Vec<TensorId> = [g.logits.as_slice(), &[g.embedding]].concat();
        for b in &g.blocks {
            keep.extend([b.residual, b.output]);
            keep.extend(b.attention.iter().chain(&b.mlp));
            keep.extend(b.probabilities);
        }
        keep
    })?;
    plan.set_batch(
        gpu,
        &StepInputs {
            tokens,
            targets: &[],
        },
    )?;
    plan.run(gpu, false)?;
    let read = |id: TensorId| plan.read_kept(gpu, id);
    let mut stages = vec![Stage {
        name: "embedding".into(),
        stream: read(graph.embedding)?,
        sublayer: None,
    }];
    let mut attention = Vec::new();
    for (l, b) in graph.blocks.iter().enumerate() {
        if let Some(probs) = b.probabilities {
            attention.push(read(probs)?);
        }
        stages.push(Stage {
            name: format!("layer {l} attention"),
            stream: read(b.residual)?,
            sublayer: b.attention.map(read).transpose()?,
        });
        stages.push(Stage {
            name: format!("layer {l} mlp"),
            stream: read(b.output)?,
            sublayer: b.mlp.map(read).transpose()?,
        });
    }
    Ok(Captured {
        attention,
        stages,
        logits: read(graph.logits.expect("inspection graphs have all the logits"))?,
    })
}
