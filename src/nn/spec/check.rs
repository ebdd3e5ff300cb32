//! `TrainingSpec` → `ValidSpec`: every check happens here, once, before any training.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::data::split::split_sizes;
use crate::nn::data::DataShape;
use crate::nn::error::SpecError;
use crate::nn::layers::encoding::{table_bound, width_bound, EncodingFit};
use crate::nn::spec::check_model::{check_model, ModelFacts};
use crate::nn::spec::{
    EarlyStoppingSpec, LossKind, MetricKind, ModeSpec, ReduceLrSpec, TrainingSpec,
};

/// Which way the monitored quantity improves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Min,
    Max,
}

impl Mode {
    /// Keras' `auto`: accuracy improves upwards, losses and errors downwards.
    pub(crate) fn resolve(mode: ModeSpec, monitor: &str) -> Mode {
        match mode {
            ModeSpec::Min => Mode::Min,
            ModeSpec::Max => Mode::Max,
            ModeSpec::Auto if monitor.ends_with("accuracy") => Mode::Max,
            ModeSpec::Auto => Mode::Min,
        }
    }

    /// Is `a` better than `b`? (Strictly: ties keep the earlier value.)
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Mode::Min => a < b,
            Mode::Max => a > b,
        }
    }

    /// The name Keras and the stored jobs use: `min` or `max`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Min => "min",
            Mode::Max => "max",
        }
    }

    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "min" => Some(Mode::Min),
            "max" => Some(Mode::Max),
            _ => None,
        }
    }
}

/// A spec that passed `TrainingSpec::validate`; only constructible there.
#[derive(Clone, Debug)]
pub struct ValidSpec {
    spec: TrainingSpec,
    batch_sizes: Vec<usize>,
    monitor: String,
    mode: Mode,
    split_sizes: (usize, usize),
    pub(crate) facts: ModelFacts,
}

impl ValidSpec {
    pub fn spec(&self) -> &TrainingSpec {
        &self.spec
    }

    /// The accumulator of the encoding to fit, when the dataset's columns need one.
    pub(crate) fn encoding_fit(&self) -> Option<EncodingFit> {
        let f = &self.facts;
        (!f.columns.is_empty()).then(|| {
            EncodingFit::new(&f.columns, &f.plans, &f.crosses, f.class_names.clone())
                .with_missing_markers(f.missing_markers.clone())
        })
    }

    /// The feature columns whose missing cells leave their row out (`missing:
    /// "drop_row"`): the caller trains on the other rows only.
    pub fn drop_row_columns(&self) -> Vec<usize> {
        let plans = self.facts.plans.iter().enumerate();
        plans
            .filter(|(_, p)| p.drops_missing())
            .map(|(i, _)| i)
            .collect()
    }

    /// Values in the encoding's embedding tables at most (before fitting).
    pub(crate) fn embedding_values_bound(&self) -> usize {
        table_bound(&self.facts.plans)
    }

    /// The first layer's input width at most: the features, or their widest encoding.
    pub(crate) fn input_width_bound(&self) -> usize {
        match self.facts.columns.as_slice() {
            [] => self.facts.features,
            _ => width_bound(&self.facts.plans, &self.facts.crosses),
        }
    }

    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    pub fn epochs(&self) -> usize {
        self.spec.epochs
    }

    /// (training rows, validation rows) that `validation_split` makes of the validated
    /// dataset; neither is 0 when a split is asked for.
    pub fn split_sizes(&self) -> (usize, usize) {
        self.split_sizes
    }

    /// Target columns a training row carries: sparse labels are one class index, every
    /// other loss one value per output unit.
    pub(crate) fn target_width(&self) -> usize {
        if self.spec.loss == LossKind::SparseCategoricalCrossentropy {
            1
        } else {
            self.facts.outputs
        }
    }

    /// The quantity that picks the best epoch (and the best trial) and its direction:
    /// the early-stopping monitor when set, else `val_loss` with validation, else `loss`.
    pub fn monitor(&self) -> (&str, Mode) {
        (&self.monitor, self.mode)
    }
}

impl TrainingSpec {
    /// Check the spec against itself and against the dataset's shape.
    /// Every error names the field path and the bad value.
    pub fn validate(&self, shape: &DataShape) -> Result<ValidSpec, SpecError> {
        let facts = check_model(self, shape)?;
        self.optimizer.check()?;
        if self.epochs == 0 {
            return Err(SpecError::range("epochs", "at least 1", 0));
        }
        let batch_sizes = self.batch_size.sizes();
        if batch_sizes.is_empty() {
            return Err(SpecError::range("batch_size", "a non-empty list", "[]"));
        }
        for (i, &b) in batch_sizes.iter().enumerate() {
            if b == 0 {
                let field = match self.batch_size {
                    crate::nn::spec::BatchSize::One(_) => "batch_size".to_owned(),
                    crate::nn::spec::BatchSize::Many(_) => format!("batch_size[{i}]"),
                };
                return Err(SpecError::range(field, "at least 1", 0));
            }
        }
        let split = self.validation_split;
        if !(0.0..1.0).contains(&split) {
            return Err(SpecError::range("validation_split", "in [0, 1)", split));
        }
        let split_sizes = split_sizes(shape.rows, split);
        if split_sizes.0 == 0 || (split > 0.0 && split_sizes.1 == 0) {
            return Err(SpecError::Incompatible {
                field: "validation_split".to_owned(),
                reason: format!(
                    "{split} leaves {} training and {} validation rows of the dataset's {}",
                    split_sizes.0, split_sizes.1, shape.rows
                ),
            });
        }
        check_metrics(&self.metrics, self.loss)?;
        let names = recorded_names(&self.metrics, split > 0.0);
        if let Some(es) = &self.early_stopping {
            check_early_stopping(es, &names)?;
        }
        if let Some(rlr) = &self.reduce_lr_on_plateau {
            check_reduce_lr(rlr, &names)?;
        }
        let (monitor, mode) = match &self.early_stopping {
            Some(es) => (es.monitor.clone(), Mode::resolve(es.mode, &es.monitor)),
            None if split > 0.0 => ("val_loss".to_owned(), Mode::Min),
            None => ("loss".to_owned(), Mode::Min),
        };
        Ok(ValidSpec {
            spec: self.clone(),
            batch_sizes,
            monitor,
            mode,
            split_sizes,
            facts,
        })
    }
}

pub(crate) fn finite_at_least(
    field: &str,
    v: f64,
    min: f64,
    allowed: &str,
) -> Result<(), SpecError> {
    if v.is_finite() && v >= min {
        Ok(())
    } else {
        Err(SpecError::range(field, allowed, v))
    }
}

pub(crate) fn positive(field: &str, v: f64) -> Result<(), SpecError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SpecError::range(field, "a positive number", v))
    }
}

pub(crate) fn unit_interval(field: &str, v: f64) -> Result<(), SpecError> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(SpecError::range(field, "in [0, 1)", v))
    }
}

fn check_metrics(metrics: &[MetricKind], loss: LossKind) -> Result<(), SpecError> {
    for (i, m) in metrics.iter().enumerate() {
        if loss == LossKind::SparseCategoricalCrossentropy && *m != MetricKind::Accuracy {
            return Err(SpecError::incompatible(
                format!("metrics[{i}]"),
                format!(
                    "{} compares predictions with targets of the same width, but sparse labels are class indices",
                    m.name()
                ),
            ));
        }
        if metrics[..i].contains(m) {
            return Err(SpecError::incompatible(
                format!("metrics[{i}]"),
                format!("{} is listed twice", m.name()),
            ));
        }
    }
    Ok(())
}

/// Every key an epoch record will carry besides `learning_rate`.
fn recorded_names(metrics: &[MetricKind], validation: bool) -> Vec<String> {
    let mut names = vec!["loss".to_owned()];
    names.extend(metrics.iter().map(|m| m.name().to_owned()));
    if validation {
        let val: Vec<String> = names.iter().map(|n| format!("val_{n}")).collect();
        names.extend(val);
    }
    names
}

fn check_monitor(field: &str, monitor: &str, names: &[String]) -> Result<(), SpecError> {
    if names.iter().any(|n| n == monitor) {
        return Ok(());
    }
    let hint = if monitor.starts_with("val_") && !names.iter().any(|n| n.starts_with("val_")) {
        " (validation_split is 0, so nothing is validated)"
    } else {
        ""
    };
    Err(SpecError::Unknown {
        field: field.to_owned(),
        got: monitor.to_owned(),
        expected: format!("a recorded quantity: {}{hint}", names.join(", ")),
    })
}

fn check_early_stopping(es: &EarlyStoppingSpec, names: &[String]) -> Result<(), SpecError> {
    check_monitor("early_stopping.monitor", &es.monitor, names)?;
    finite_at_least("early_stopping.min_delta", es.min_delta, 0.0, "at least 0")?;
    if let Some(b) = es.baseline {
        if !b.is_finite() {
            return Err(SpecError::range(
                "early_stopping.baseline",
                "a finite number",
                b,
            ));
        }
    }
    Ok(())
}

fn check_reduce_lr(rlr: &ReduceLrSpec, names: &[String]) -> Result<(), SpecError> {
    check_monitor("reduce_lr_on_plateau.monitor", &rlr.monitor, names)?;
    if !(rlr.factor > 0.0 && rlr.factor < 1.0) {
        return Err(SpecError::range(
            "reduce_lr_on_plateau.factor",
            "in (0, 1)",
            rlr.factor,
        ));
    }
    finite_at_least(
        "reduce_lr_on_plateau.min_delta",
        rlr.min_delta,
        0.0,
        "at least 0",
    )?;
    finite_at_least("reduce_lr_on_plateau.min_lr", rlr.min_lr, 0.0, "at least 0")?;
    Ok(())
}

/// The loss's name as users write it, for messages.
pub(crate) fn loss_name(loss: LossKind) -> &'static str {
    match loss {
        LossKind::MeanSquaredError => "mean_squared_error",
        LossKind::MeanAbsoluteError => "mean_absolute_error",
        LossKind::Huber => "huber",
        LossKind::BinaryCrossentropy => "binary_crossentropy",
        LossKind::CategoricalCrossentropy => "categorical_crossentropy",
        LossKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
    }
}
