//! What one epoch produced, as reported to the observer and in the history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by rows, regularization
    /// included), as Keras reports it.
    pub loss: f64,
    pub val_loss: Option<f64>,
    /// `"accuracy"`, `"val_accuracy"`, `"mae"`, ...
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    /// The rate used during this epoch, as the shortest decimal that is the f32 the
    /// optimizer used (0.001, not 0.0010000000474974513).
    pub learning_rate: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// This epoch is where overfitting began (see `callbacks::overfitting_start`).
    pub overfitting: bool,
}

impl EpochRecord {
    /// The f32 rate as a user would write it: the shortest decimal text that reads back as
    /// the same f32, as f64.
    pub(crate) fn rate_as_written(lr: f32) -> f64 {
        lr.to_string().parse().unwrap_or(f64::from(lr))
    }

    /// A recorded quantity by its Keras name (`loss`, `val_loss`, `accuracy`, `val_mae`, ...).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "val_loss" => self.val_loss,
            "learning_rate" => Some(self.learning_rate),
            other => self.metrics.get(other).copied(),
        }
    }
}
