//! Pure functions over slices: the numeric heart of fovea. Forward kernels overwrite their
//! output; backward kernels accumulate (`+=`) into gradients. Every fast kernel has a plain
//! reference beside it (or is itself plain), and tests hold the two equal. Threads (rayon) and
//! SIMD (through `gemm`, and fovea's own AVX2 tile in `tile.rs`) live here and nowhere else.

pub mod activation;
pub mod batchnorm;
pub mod conv2d;
pub mod conv_tiled;
pub mod im2col;
pub mod linear;
pub mod lrn;
pub mod matmul;
pub mod padded;
pub mod parallel;
pub mod pool;
pub mod softmax;
pub mod tile;

pub use activation::ReluRule;
