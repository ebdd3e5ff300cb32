//! The layer kinds: each owns its parameters and knows its forward and backward pass.

pub(crate) mod dense;
pub(crate) mod dropout;
pub(crate) mod normalization;

pub(crate) use dense::Dense;
pub(crate) use normalization::{Moments, Normalization};
