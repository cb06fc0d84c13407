//! Plain CPU twins of every kernel: the specification the GPU is tested against. Written for clarity,
//! accumulating in f64; never used on a hot path.

pub mod adamw;
pub mod attention;
pub mod cast;
pub mod copy;
pub mod crossentropy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod gradnorm;
pub mod kvcache;
pub mod layernorm;
pub mod matmul;
pub mod matvec;
pub mod random;
pub mod residual;
pub mod rmsnorm;
