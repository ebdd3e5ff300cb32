//! nnserve: trains Keras-style dense neural networks and serves their predictions.

pub mod nn;
