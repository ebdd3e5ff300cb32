//! The ONNX IR's messages (`onnx.proto`, compiled by build.rs with prost).

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
