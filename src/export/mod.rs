//! Exporting a net to other engines. `onnx`: a standard ONNX model (`fovea export`), written
//! through ONNX's own schema (`proto`, generated from `proto/onnx.proto` by prost).

pub mod onnx;
pub mod proto;

pub use onnx::{to_model, to_onnx, Batch, ModelInfo, OnnxOptions, OPSETS, OUTPUT};
