//! fovea: convolutional networks on the CPU. Build the classic convnets, train them on real
//! images, and look inside them.
//!
//! Layers of the code, each depending only on those above it:
//! `tensor`, `geometry`, `distributed` (the ranks' collective operations) -> `kernels` ->
//! `layers` -> `net` -> `models`, `loss`, `io` -> `train`.

pub mod data;
pub mod distributed;
pub mod error;
pub mod export;
#[doc(hidden)]
pub mod fuzz;
pub mod geometry;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod models;
pub mod net;
pub mod optim;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod rng;
pub mod serve;
pub mod tensor;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub use geometry::{Geometry, Padding, Region, Window2d};
pub use kernels::ReluRule;
pub use layers::{BackwardCtx, ForwardCtx, Layer, Mode, Param};
pub use net::Net;
pub use tensor::Tensor;
