//! Files in and out: safetensors with PyTorch names. Files are written to a temporary name and
//! renamed, so a crash never leaves half a file.

pub mod atomic;
pub mod safetensors;
