//! Compiles the ONNX IR (`src/onnx/onnx.proto`) into prost types for the ONNX export.
//! protox is a protobuf compiler in Rust, so no `protoc` binary is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "src/onnx/onnx.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["src/onnx"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
