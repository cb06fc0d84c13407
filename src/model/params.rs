//! The parameter tensors of a [`GptConfig`], named and shaped exactly as transformers'
//! `GPT2LMHeadModel.save_pretrained` writes them (weights `[in, out]`), with their initialization and
//! whether AdamW decays them.

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::graph::Piece;
use crate::model::{GptConfig, Norm};

/// How a parameter starts before training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std²).
    Normal {
        std: f32,
    },
    Zeros,
    Ones,
}

/// One parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// The safetensors name, e.g. `transformer.h.0.attn.c_attn.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Weight decay applies to matrices and embeddings only (two or more dimensions), as in nanoGPT.
    pub fn decays(&self) -> bool {
        self.shape.len() >= 2
    }
}

impl GptConfig {
    /// Every parameter tensor, in the order of the checkpoint: embeddings, blocks, final norm, untied head.
    /// Init follows GPT-2: N(0, 0.02), residual projections N(0, 0.02/√(2·n_layer)), biases zero, gains one.
    pub fn params(&self) -> Vec<ParamSpec> {
        let (c, v) = (self.n_embd, self.vocab_size);
        let std = 0.02;
        let residual_std = std / (2.0 * self.n_layer as f32).sqrt();
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, init| {
            out.push(ParamSpec { name, shape, init });
        };
        let norm = |push: &mut dyn FnMut(String, Vec<usize>, Init), prefix: String| {
            push(format!("{prefix}.weight"), vec![c], Init::Ones);
            if self.norm == Norm::LayerNorm && self.bias {
                push(format!("{prefix}.bias"), vec![c], Init::Zeros);
            }
        };
        let linear = |push: &mut dyn FnMut(String, Vec<usize>, Init),
                      prefix: String,
                      i: usize,
                      o: usize,
                      std| {
            push(format!("{prefix}.weight"), vec![i, o], Init::Normal { std });
            if self.bias {
                push(format!("{prefix}.bias"), vec![o], Init::Zeros);
            }
        };
        push(
            "transformer.wte.weight".into(),
            vec![v, c],
            Init::Normal { std },
        );
        push(
            "transformer.wpe.weight".into(),
            vec![self.n_positions, c],
            Init::Normal { std },
        );
        for l in 0..self.n_layer {
            let h = format!("transformer.h.{l}");
            norm(&mut push, format!("{h}.ln_1"));
            linear(
                &mut push,
                format!("{h}.attn.c_attn"),
                c,
                self.qkv_width(),
                std,
            );
            linear(&mut push, format!("{h}.attn.c_proj"), c, c, residual_std);
            norm(&mut push, format!("{h}.ln_2"));
            linear(&mut push, format!("{h}.mlp.c_fc"), c, self.n_inner, std);
            linear(
                &mut push,
                format!("{h}.mlp.c_proj"),
                self.n_inner,
                c,
                residual_std,
            );
        }
        norm(&mut push, "transformer.ln_f".into());
        if !self.tie_word_embeddings {
            push("lm_head.weight".into(), vec![v, c], Init::Normal { std });
        }
        out
    }

    /// The parameters as the arenas hold them: each whole when it fits `max_len` elements (one storage
    /// binding), else split by rows into the fewest pieces of near-equal rows that fit. Only the token
    /// embedding and the untied head may be split (the ops reading them handle pieces); any other
    /// parameter that does not fit is an error naming it.
    pub fn pieces(&self, max_len: usize) -> Result<Vec<Piece>> {
        let mut pieces = Vec::new();
        for (param, spec) in self.params().iter().enumerate() {
            let (rows, row_len) = (spec.shape[0], spec.len() / spec.shape[0].max(1));
            let splits = matches!(
                spec.name.as_str(),
                "transformer.wte.weight" | "lm_head.weight"
            );
            if spec.len() <= max_len || !splits || row_len > max_len {
                if spec.len() > max_len {
                    return Err(Error::Invalid(format!(
                        "parameter {} ({} elements) exceeds one storage binding ({max_len} elements)",
                        spec.name,
                        spec.len()
                    )));
                }
                pieces.push(Piece {
                    param,
                    first_row: 0,
                    shape: spec.shape.clone(),
                    dtype: Dtype::F32,
                });
                continue;
            }
            let mut count = spec.len().div_ceil(max_len);
            while rows.div_ceil(count) * row_len > max_len {
                count += 1;
            }
            let per = rows.div_ceil(count);
            for first_row in (0..rows).step_by(per) {
                let mut shape = spec.shape.clone();
                shape[0] = per.min(rows - first_row);
                pieces.push(Piece {
                    param,
                    first_row,
                    shape,
                    dtype: Dtype::F32,
                });
            }
        }
        Ok(pieces)
    }

    /// Bytes of the largest parameter tensor: what one storage binding would hold to keep every
    /// parameter whole (see [`crate::Gpu::with_binding_room`]).
    pub fn largest_parameter_bytes(&self) -> u64 {
        4 * self.params().iter().map(ParamSpec::len).max().unwrap_or(0) as u64
    }

    /// Total number of parameters (tied weights counted once).
    pub fn parameter_count(&self) -> usize {
        self.params().iter().map(ParamSpec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::GptConfig;

    #[test]
    fn parameter_counts_match_the_published_models() {
        let gpt2 = GptConfig::preset("gpt2").unwrap();
        assert_eq!(gpt2.parameter_count(), 124_439_808);
        let untied = GptConfig {
            tie_word_embeddings: false,
            ..gpt2
        };
        assert_eq!(untied.parameter_count(), 163_037_184);
        assert_eq!(
            GptConfig::preset("anatomy").unwrap().parameter_count(),
            5_048_576
        );
        // GPT-2 medium, large and xl as Hugging Face reports them.
        for (name, count) in [
            ("gpt2-medium", 354_823_168),
            ("gpt2-large", 774_030_080),
            ("gpt2-xl", 1_557_611_200),
        ] {
            assert_eq!(
                GptConfig::preset(name).unwrap().parameter_count(),
                count,
                "{name}"
            );
        }
    }

    #[test]
    fn only_embeddings_larger_than_a_binding_are_split_by_rows() {
        let gpt2 = GptConfig::preset("gpt2").unwrap();
        // WebGPU's default 128 MiB binding: wte [50257, 768] splits into two near-equal pieces.
        let pieces = gpt2.pieces(1 << 25).unwrap();
        let wte: Vec<_> = pieces.iter().filter(|p| p.param == 0).collect();
        assert_eq!(wte.len(), 2);
        assert_eq!((wte[0].first_row, wte[0].shape[0]), (0, 25129));
        assert_eq!((wte[1].first_row, wte[1].shape[0]), (25129, 25128));
        assert_eq!(pieces.len(), gpt2.params().len() + 1);
        let err = gpt2.pieces(768 * 1000).unwrap_err();
        assert!(err.to_string().contains("transformer.wpe.weight"), "{err}");
    }

    #[test]
    fn config_json_round_trips_and_defaults_to_gpt2() {
        for name in GptConfig::PRESETS {
            let config = GptConfig::preset(name).unwrap();
            let back = GptConfig::from_json(&config.to_json(), name).unwrap();
            assert_eq!(back, config, "{name}");
        }
        let minimal = GptConfig::from_json("{}", "minimal").unwrap();
        assert_eq!(
            minimal,
            GptConfig {
                dropout: 0.1,
                ..GptConfig::preset("gpt2").unwrap()
            }
        );
    }

    #[test]
    fn inconsistent_configs_are_rejected_with_the_key_named() {
        let err = GptConfig::from_json(r#"{"n_embd": 100, "n_head": 3}"#, "c.json").unwrap_err();
        assert!(err.to_string().contains("n_head 3"), "{err}");
        let err = GptConfig::from_json(r#"{"n_kv_head": 5}"#, "c.json").unwrap_err();
        assert!(err.to_string().contains("n_kv_head 5"), "{err}");
        // The attention kernels' rule, checked up front rather than when a plan is built.
        let err = GptConfig::from_json(r#"{"n_embd": 96, "n_head": 8}"#, "c.json").unwrap_err();
        assert!(err.to_string().contains("head dimension 12"), "{err}");
    }
}
