//! The engine's errors: a bad spec, a failed training run, a bad model or input.

use thiserror::Error;

pub use crate::nn::ops::alloc::OutOfMemory;

/// Why a spec was rejected. Every message names the field path and the bad value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpecError {
    /// A number outside its allowed range.
    #[error("{field} must be {allowed}, got {got}")]
    OutOfRange {
        field: String,
        allowed: String,
        got: String,
    },
    /// Two parts of the spec (or the spec and the data) that cannot go together.
    #[error("{field}: {reason}")]
    Incompatible { field: String, reason: String },
    /// A name that refers to nothing (a monitored metric, a class).
    #[error("{field} is {got:?}, which is not {expected}")]
    Unknown {
        field: String,
        got: String,
        expected: String,
    },
    /// The spec's JSON does not parse into a spec at all.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl SpecError {
    pub(crate) fn range(field: impl Into<String>, allowed: &str, got: impl ToString) -> Self {
        SpecError::OutOfRange {
            field: field.into(),
            allowed: allowed.to_owned(),
            got: got.to_string(),
        }
    }

    pub(crate) fn incompatible(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Incompatible {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field path the error is about.
    pub fn field(&self) -> &str {
        match self {
            SpecError::OutOfRange { field, .. }
            | SpecError::Incompatible { field, .. }
            | SpecError::Unknown { field, .. } => field,
            SpecError::Parse { path, .. } => path,
        }
    }
}

/// Why training stopped without a result. Records of finished epochs were already
/// delivered to the observer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// The training loss became NaN or infinite (both 1-based).
    #[error("training diverged: the loss became non-finite in epoch {epoch}, batch {batch}")]
    Diverged { epoch: usize, batch: usize },
    #[error("training was cancelled after {epochs_done} finished epochs")]
    Cancelled { epochs_done: usize },
    /// The rows do not fit the spec (widths, labels, too few rows, non-finite values).
    #[error("invalid training data: {0}")]
    Data(String),
    /// A streamed dataset's chunk could not be read.
    #[error("reading the training data failed: {0}")]
    Read(String),
    /// The checkpoint is unreadable or belongs to another spec or dataset.
    #[error("invalid checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    OutOfMemory(#[from] OutOfMemory),
}

/// Errors of a trained model: wrong input, or bytes that are not a model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    #[error("row {row} has {got} features, the model expects {expected}")]
    WidthMismatch {
        row: usize,
        expected: usize,
        got: usize,
    },
    #[error("row {row}, column {column} is not a finite number")]
    NonFinite { row: usize, column: usize },
    /// Labelled rows whose targets do not fit the model.
    #[error("invalid labels: {0}")]
    Labels(String),
    #[error("corrupt model file: {0}")]
    Corrupt(String),
    #[error(transparent)]
    OutOfMemory(#[from] OutOfMemory),
}
