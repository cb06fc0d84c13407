//! The graph executor: a model is a list of [`Op`]s over tensor ids whose shapes are known when the graph
//! is built; [`Graph::backward`] derives the backward ops by walking the forward ops in reverse, each op
//! supplying its own backward; [`Plan`] places every tensor (see [`planner`]), builds every dispatch once
//! and runs a step as one submit.

use crate::dtype::Dtype;

mod autodiff;
mod keep;
mod ops;
mod plan;
pub mod planner;
pub mod reference;
mod work;

pub use autodiff::Gradients;
pub use ops::{ArenaChunk, Arenas, Epilogue, Op};
pub use plan::{
    planned_memory, ArenaTensor, ExchangeTimes, MemoryReport, Plan, ProfileRow, Shared, StepInputs,
    StepReadout, POSITION, TARGETS, TOKENS,
};
pub use work::Work;

/// A tensor of a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Piece `i` of the model's parameters ([`Graph::pieces`]): a view of the parameter arena, shared by
    /// every plan of the model.
    Param(usize),
    /// The gradient of piece `i`: a view of the gradient arena, zeroed at the start of each step.
    Grad(usize),
    /// Uploaded per step by the trainer (token ids, targets, embedding buckets): u32.
    Input,
    /// Written by one op and read by later ones; placed by lifetime.
    Activation,
    /// Kept from one step to the next and shared by the plans given the same caches (a generator's
    /// key/value caches, which its prefill plans fill and its decode plan extends): cache `i` of the
    /// tensors [`Plan::compile`] is given, a buffer of its own shared with no other tensor of the plan.
    Cache(usize),
    /// Elements `offset ..` of tensor `base` (an activation or input; `offset` a multiple of
    /// [`crate::gpu::Tensor::ALIGN`]): a row chunk of it. Using a view uses its base.
    View { base: TensorId, offset: usize },
}

#[derive(Clone, Debug)]
pub struct TensorDef {
    pub name: String,
    pub shape: Vec<usize>,
    pub storage: Storage,
}

impl TensorDef {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parameter tensor as the arenas hold it: all of parameter `param` (in
/// [`crate::model::GptConfig::params`] order), or its rows `first_row .. first_row + shape[0]` when the
/// whole would exceed one storage binding (GPT-2's token embedding), its values stored in `dtype`
/// (f32, or 16 bits packed two per word: an inference model's matrices, which only the forward ops
/// that read weights take, see [`Op::Embedding`], [`Op::Linear`], [`Op::Head`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub param: usize,
    pub first_row: usize,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

impl Piece {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `u32` words (f32 elements) the piece takes in the arenas.
    pub fn words(&self) -> usize {
        self.dtype.words(self.len())
    }

    /// Where the piece starts in its parameter, in elements.
    pub fn offset(&self) -> usize {
        self.first_row * self.shape[1..].iter().product::<usize>()
    }
}

/// Ops over tensors. Forward ops come first; [`Graph::backward`] appends the rest.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<TensorDef>,
    pub ops: Vec<Op>,
    /// What the `Param`/`Grad` storages index.
    pub pieces: Vec<Piece>,
    /// The dtype the [`Storage::Cache`] tensors (key/value caches) are stored in: a 16-bit cache of
    /// shape `[N, ctx, W]` is the tensor `[N, ctx, W / 2]` of words.
    pub cache_dtype: Dtype,
}

impl Graph {
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        storage: Storage,
    ) -> TensorId {
        self.tensors.push(TensorDef {
            name: name.into(),
            shape: shape.to_vec(),
            storage,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// Whether the graph generates: it reads or writes key/value caches ([`Storage::Cache`]).
    pub fn generates(&self) -> bool {
        (self.tensors.iter()).any(|t| matches!(t.storage, Storage::Cache(_)))
    }

    /// A new activation named `name`.
    pub fn activation(&mut self, name: impl Into<String>, shape: &[usize]) -> TensorId {
        self.tensor(name, shape, Storage::Activation)
    }

    /// A view of `shape` at element `offset` of `base`.
    pub fn view(&mut self, base: TensorId, offset: usize, shape: &[usize]) -> TensorId {
        let name = format!("{} at {offset}", self.def(base).name);
        self.tensor(name, shape, Storage::View { base, offset })
    }

    /// The tensor a view is of (the tensor itself when not a view).
    pub fn root(&self, id: TensorId) -> TensorId {
        match self.def(id).storage {
            Storage::View { base, .. } => self.root(base),
            _ => id,
        }
    }

    pub fn def(&self, id: TensorId) -> &TensorDef {
        &self.tensors[id.0]
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0].shape
    }

    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }
}
