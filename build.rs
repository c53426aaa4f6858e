//! Compiles ONNX's `onnx.proto` (vendored in `proto/`, Apache-2.0, from the onnx project) into
//! prost message types for `fovea export`. protox parses the schema in Rust, so building fovea
//! needs no `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let files = protox::compile(["proto/onnx.proto"], ["proto"]).expect("proto/onnx.proto parses");
    prost_build::Config::new()
        .compile_fds(files)
        .expect("prost generates the ONNX types");
}
