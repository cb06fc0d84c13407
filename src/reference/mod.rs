//! Plain CPU twins of every kernel: the specification the GPU is tested against. Written for clarity,
//! accumulating in f64; never used on a hot path.

pub mod attention;
pub mod matmul;
pub mod random;
