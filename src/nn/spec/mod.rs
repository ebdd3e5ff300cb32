//! The training spec as users write it (Keras names), before validation.
//!
//! Every struct rejects unknown fields: a typo must fail loudly rather than
//! silently fall back to a default.

pub(in crate::nn) mod check;
pub(in crate::nn) mod check_model;
pub(in crate::nn) mod parse;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::nn::layers::encoding::spec::ColumnOptions;
pub use crate::nn::layers::encoding::spec::{CrossSpec, FeatureConfig, FeatureSpec, FeatureType};
pub use crate::nn::layers::{
    DenseSpec, DropoutSpec, Initializer, InputSpec, LayerSpec, NormalizationSpec, RegularizerSpec,
};
pub use crate::nn::ops::activation::Activation;
pub use crate::nn::optim::spec::OptimizerSpec;
pub use crate::nn::optim::{AdamSpec, AdamWSpec, RmsPropSpec, SgdSpec};

/// A complete training job: the network, how to train it, and when to stop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub model: ModelSpec,
    pub loss: LossKind,
    /// `"adam"` or `{"type": "adam", "learning_rate": 0.001}`; default adam.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub metrics: Vec<MetricKind>,
    /// Default 1.
    #[serde(default = "default_epochs")]
    #[schema(minimum = 1)]
    pub epochs: usize,
    /// One size, or several to try (one trial each); default 32.
    #[serde(default)]
    pub batch_size: BatchSize,
    /// Fraction of rows held out at random (seeded) for validation; in [0, 1), default 0.
    #[serde(default)]
    #[schema(minimum = 0, exclusive_maximum = 1)]
    pub validation_split: f64,
    /// Reshuffle the training rows every epoch; default true.
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// Seeds initial weights, the validation split, shuffling and dropout masks.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingSpec>,
    #[serde(default)]
    pub reduce_lr_on_plateau: Option<ReduceLrSpec>,
    /// Keras `class_weight`: class index (as a string) to the weight of its rows' loss.
    #[serde(default)]
    pub class_weight: Option<BTreeMap<String, f64>>,
    /// Keras `FeatureSpace` per column: `{"zip": "string_categorical", "income": {"type":
    /// "float_discretized", "num_bins": 8}}`. A column not named gets its type's default:
    /// numbers `float_normalized`, text `string_categorical`, identifiers left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, FeatureSpec>,
    /// Hashed crosses of categorical columns (`FeatureSpace.cross`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crosses: Vec<CrossSpec>,
    /// Feature columns left out of training.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl TrainingSpec {
    pub(crate) fn column_options(&self) -> ColumnOptions<'_> {
        ColumnOptions {
            features: &self.features,
            crosses: &self.crosses,
            exclude: &self.exclude,
        }
    }
}

fn default_epochs() -> usize {
    1
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub layers: Vec<LayerSpec>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[serde(alias = "mse")]
    MeanSquaredError,
    #[serde(alias = "mae")]
    MeanAbsoluteError,
    Huber,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    #[serde(alias = "acc")]
    Accuracy,
    #[serde(alias = "mean_absolute_error")]
    Mae,
    #[serde(alias = "mean_squared_error")]
    Mse,
    #[serde(alias = "root_mean_squared_error")]
    Rmse,
}

impl MetricKind {
    /// The key in epoch records (`val_` prefixed for validation).
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "accuracy",
            MetricKind::Mae => "mae",
            MetricKind::Mse => "mse",
            MetricKind::Rmse => "rmse",
        }
    }
}

/// One batch size, or a non-empty list of sizes to try (each at least 1).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum BatchSize {
    One(usize),
    Many(Vec<usize>),
}

impl utoipa::PartialSchema for BatchSize {
    fn schema() -> RefOr<Schema> {
        let size = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
        };
        OneOfBuilder::new()
            .item(size())
            .item(ArrayBuilder::new().items(size()).min_items(Some(1)))
            .description(Some(
                "One batch size, or several to try (one trial each); default 32.",
            ))
            .into()
    }
}

impl ToSchema for BatchSize {}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::One(32)
    }
}

impl BatchSize {
    pub fn sizes(&self) -> Vec<usize> {
        match self {
            BatchSize::One(n) => vec![*n],
            BatchSize::Many(v) => v.clone(),
        }
    }
}

/// Whether a smaller or a larger monitored value is better.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeSpec {
    /// Max for accuracy, min for everything else (Keras).
    #[default]
    Auto,
    Min,
    Max,
}

/// Keras `EarlyStopping`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingSpec {
    #[serde(default = "default_monitor")]
    pub monitor: String,
    #[serde(default)]
    pub mode: ModeSpec,
    #[serde(default)]
    pub min_delta: f64,
    #[serde(default)]
    pub patience: usize,
    #[serde(default)]
    pub baseline: Option<f64>,
    #[serde(default)]
    pub start_from_epoch: usize,
    #[serde(default)]
    pub restore_best_weights: bool,
}

/// Keras `ReduceLROnPlateau`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReduceLrSpec {
    #[serde(default = "default_monitor")]
    pub monitor: String,
    #[serde(default)]
    pub mode: ModeSpec,
    /// New rate = rate · factor, in (0, 1); default 0.1.
    #[serde(default = "default_factor")]
    pub factor: f64,
    #[serde(default = "default_rlr_patience")]
    pub patience: usize,
    #[serde(default = "default_rlr_min_delta")]
    pub min_delta: f64,
    #[serde(default)]
    pub cooldown: usize,
    #[serde(default)]
    pub min_lr: f64,
}

fn default_monitor() -> String {
    "val_loss".to_owned()
}

fn default_factor() -> f64 {
    0.1
}

fn default_rlr_patience() -> usize {
    10
}

fn default_rlr_min_delta() -> f64 {
    1e-4
}
