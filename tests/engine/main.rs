//! Engine behaviour through the public API: closed forms, callbacks, determinism,
//! validation, serialisation.

mod common;

mod callbacks;
mod closed_form;
mod determinism;
mod dropout;
mod model_io;
mod streaming;
mod timing;
mod validation;
