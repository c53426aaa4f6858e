//! Pure functions over slices: the numeric heart of fovea. Forward kernels overwrite their
//! output; backward kernels accumulate (`+=`) into gradients. Every fast kernel has a plain
//! reference beside it (or is itself plain), and tests hold the two equal. Threads (rayon) and
//! SIMD (through `gemm`, and fovea's own AVX2 / AVX-512 tile in `conv/tile/`) live here and nowhere
//! else; `isa` says which instruction set they may use.

pub mod activation;
pub mod aligned;
pub mod batchnorm;
pub mod finite;
pub mod conv;
pub mod isa;
pub mod linear;
pub mod lrn;
pub mod matmul;
pub mod parallel;
pub mod pool;
pub mod resample;
pub mod softmax;

pub use activation::ReluRule;

/// How a backward kernel stores a gradient: added to what the buffer holds (a value read by
/// several layers gathers theirs), or written over it (the net skips zeroing a gradient whose
/// only writer writes it outright, `Layer::write_input_grad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Add,
    Write,
}
