//! `GptConfig`: the shape of a GPT-2 or modern-variant model, its presets, and `config.json` in Hugging
//! Face's `GPT2Config` keys plus wgpt's own optional keys (`norm`, `n_kv_head`, `bias`).

use serde::{Deserialize, Serialize};

use crate::error::{did_you_mean, Error, Result};

/// The normalization before attention, before the MLP and at the end of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// GPT-2: mean and variance, gain and bias.
    LayerNorm,
    /// The modern variant: root mean square, gain only.
    RmsNorm,
}

/// Everything that fixes a model's parameters and computation.
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Context length (learned positions).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads: `n_head` for multi-head attention, a divisor of it for grouped-query attention.
    pub n_kv_head: usize,
    /// Width of the MLP's hidden layer (`4 · n_embd` in GPT-2).
    pub n_inner: usize,
    pub norm: Norm,
    /// Biases on the linear layers and the LayerNorms (GPT-2); none in the modern variant.
    pub bias: bool,
    /// The output head shares the token embedding's weights.
    pub tie_word_embeddings: bool,
    pub layer_norm_epsilon: f32,
    /// Dropout on embeddings, attention probabilities and residual branches while training.
    pub dropout: f32,
}

impl GptConfig {
    /// GPT-2 with the given size (LayerNorm, GELU, biases, tied head, vocabulary 50257, context 1024).
    fn gpt2(n_layer: usize, n_head: usize, n_embd: usize) -> Self {
        GptConfig {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd,
            n_layer,
            n_head,
            n_kv_head: n_head,
            n_inner: 4 * n_embd,
            norm: Norm::LayerNorm,
            bias: true,
            tie_word_embeddings: true,
            layer_norm_epsilon: 1e-5,
            dropout: 0.0,
        }
    }

    /// The names [`GptConfig::preset`] knows.
    pub const PRESETS: [&'static str; 7] = [
        "gpt2",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-xl",
        "shakespeare-char",
        "baby",
        "anatomy",
    ];

    /// A named configuration. Character-level presets have vocabulary 65 (tiny-shakespeare's characters);
    /// a trainer sets `vocab_size` from its data.
    pub fn preset(name: &str) -> Result<Self> {
        let char_level = |n_layer, n_head, n_embd, n_positions, dropout| GptConfig {
            vocab_size: 65,
            n_positions,
            dropout,
            ..Self::gpt2(n_layer, n_head, n_embd)
        };
        Ok(match name {
            "gpt2" => Self::gpt2(12, 12, 768),
            "gpt2-medium" => Self::gpt2(24, 16, 1024),
            "gpt2-large" => Self::gpt2(36, 20, 1280),
            "gpt2-xl" => Self::gpt2(48, 25, 1600),
            "shakespeare-char" => char_level(6, 6, 384, 256, 0.2),
            "baby" => char_level(4, 4, 128, 64, 0.0),
            "anatomy" => GptConfig {
                vocab_size: 8192,
                n_positions: 256,
                n_embd: 256,
                n_layer: 4,
                n_head: 4,
                n_kv_head: 2,
                n_inner: 1024,
                norm: Norm::RmsNorm,
                bias: false,
                tie_word_embeddings: true,
                layer_norm_epsilon: 1e-5,
                dropout: 0.1,
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown preset {name:?}{}; known presets: {}",
                    did_you_mean(name, &Self::PRESETS),
                    Self::PRESETS.join(", ")
                )))
            }
        })
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the fused q, k, v projection: `(n_head + 2 · n_kv_head) · head_dim`.
    pub fn qkv_width(&self) -> usize {
        (self.n_head + 2 * self.n_kv_head) * self.head_dim()
    }

    /// Checks the relations the kernels rely on, naming the offending key.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(format!("model config: {msg}")));
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_kv_head", self.n_kv_head),
            ("n_inner", self.n_inner),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return fail(format!("{key} must be positive"));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return fail(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            return fail(format!(
                "n_head {} is not a multiple of n_kv_head {}",
                self.n_head, self.n_kv_head
            ));
        }
        crate::kernels::attention::check_head_dim(self.head_dim())
            .map_err(|e| Error::Config(format!("model config: {e}")))?;
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// `config.json` text: Hugging Face `GPT2Config` keys, plus wgpt's keys for the modern variant.
    pub fn to_json(&self) -> String {
        let file = ConfigFile {
            model_type: Some("gpt2".into()),
            architectures: Some(vec!["GPT2LMHeadModel".into()]),
            vocab_size: self.vocab_size,
            n_positions: self.n_positions,
            n_ctx: Some(self.n_positions),
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_inner: (self.n_inner != 4 * self.n_embd).then_some(self.n_inner),
            layer_norm_epsilon: self.layer_norm_epsilon,
            tie_word_embeddings: self.tie_word_embeddings,
            activation_function: "gelu_new".into(),
            resid_pdrop: self.dropout,
            embd_pdrop: self.dropout,
            attn_pdrop: self.dropout,
            norm: (self.norm != Norm::LayerNorm).then_some(self.norm),
            n_kv_head: (self.n_kv_head != self.n_head).then_some(self.n_kv_head),
            bias: (!self.bias).then_some(false),
        };
        serde_json::to_string_pretty(&file).expect("a config always serializes")
    }

    /// Reads `config.json` text; missing wgpt keys mean GPT-2. `source` names the file in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let file: ConfigFile = serde_json::from_str(text)
            .map_err(Error::json(format!("{source}: not a GPT-2 config.json")))?;
        // Both names are transformers' tanh approximation; "gelu" (erf) is a different function.
        if !["gelu_new", "gelu_pytorch_tanh"].contains(&file.activation_function.as_str()) {
            return Err(Error::Unsupported(format!(
                "{source}: activation_function {:?} is not supported (wgpt implements gelu_new)",
                file.activation_function
            )));
        }
        let config = GptConfig {
            vocab_size: file.vocab_size,
            n_positions: file.n_positions,
            n_embd: file.n_embd,
            n_layer: file.n_layer,
            n_head: file.n_head,
            n_kv_head: file.n_kv_head.unwrap_or(file.n_head),
            n_inner: file.n_inner.unwrap_or(4 * file.n_embd),
            norm: file.norm.unwrap_or(Norm::LayerNorm),
            bias: file.bias.unwrap_or(true),
            tie_word_embeddings: file.tie_word_embeddings,
            layer_norm_epsilon: file.layer_norm_epsilon,
            dropout: file.resid_pdrop,
        };
        config
            .validate()
            .map_err(|e| Error::Config(format!("{source}: {e}")))?;
        Ok(config)
    }
}

/// The JSON file as written: `GPT2Config`'s names and defaults.
#[derive(Serialize, Deserialize)]
struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    architectures: Option<Vec<String>>,
    #[serde(default = "defaults::vocab_size")]
    vocab_size: usize,
    #[serde(default = "defaults::n_positions")]
    n_positions: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    n_ctx: Option<usize>,
    #[serde(default = "defaults::n_embd")]
    n_embd: usize,
    #[serde(default = "defaults::n_layer")]
    n_layer: usize,
    #[serde(default = "defaults::n_head")]
    n_head: usize,
    #[serde(default)]
    n_inner: Option<usize>,
    #[serde(default = "defaults::layer_norm_epsilon")]
    layer_norm_epsilon: f32,
    #[serde(default = "defaults::tie_word_embeddings")]
    tie_word_embeddings: bool,
    #[serde(default = "defaults::activation_function")]
    activation_function: String,
    #[serde(default = "defaults::pdrop")]
    resid_pdrop: f32,
    #[serde(default = "defaults::pdrop")]
    embd_pdrop: f32,
    #[serde(default = "defaults::pdrop")]
    attn_pdrop: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    norm: Option<Norm>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    n_kv_head: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    bias: Option<bool>,
}

/// `GPT2Config`'s defaults, for keys a file leaves out.
mod defaults {
    pub fn vocab_size() -> usize {
        50257
    }
    pub fn n_positions() -> usize {
        1024
    }
    pub fn n_embd() -> usize {
        768
    }
    pub fn n_layer() -> usize {
        12
    }
    pub fn n_head() -> usize {
        12
    }
    pub fn layer_norm_epsilon() -> f32 {
        1e-5
    }
    pub fn tie_word_embeddings() -> bool {
        true
    }
    pub fn activation_function() -> String {
        "gelu_new".into()
    }
    pub fn pdrop() -> f32 {
        0.1
    }
}
