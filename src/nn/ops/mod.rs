//! The numerical operations layers and training are built from.

pub(in crate::nn) mod activation;
pub(in crate::nn) mod alloc;
pub(in crate::nn) mod loss;
pub(in crate::nn) mod matmul;
pub(in crate::nn) mod metrics;
pub(in crate::nn) mod rng;
