//! A trained model: predict, classify, evaluate.

pub(in crate::nn) mod few_rows;
pub(in crate::nn) mod importance;
pub(in crate::nn) mod network;
pub(in crate::nn) mod parts;
pub(in crate::nn) mod scratch;
pub(in crate::nn) mod summary;
pub(in crate::nn) mod tensor_codec;

#[cfg(test)]
mod gradcheck;

use std::collections::BTreeMap;

use ndarray::{s, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::data::batch::{Batch, BatchSource, InMemory};
use crate::nn::data::cell;
use crate::nn::data::{check_targets, first_non_finite, Samples};
use crate::nn::error::ModelError;
use crate::nn::layers::encoding::RawValue;
use crate::nn::layers::{Encoding, Layer};
use crate::nn::memory::{predict_memory, MemoryEstimate};
use crate::nn::model::network::{Network, Workspace};
use crate::nn::model::scratch::Scratch;
use crate::nn::ops::alloc::zeros2;
use crate::nn::ops::loss::loss_sum;
use crate::nn::ops::metrics::{argmax, AccuracyKind, Tally};
use crate::nn::spec::{LossKind, TrainingSpec};

/// What kind of answer the model gives, which decides `classes`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Regression,
    Binary,
    Multiclass,
}

impl Task {
    pub(crate) fn of(loss: LossKind) -> Task {
        match loss {
            LossKind::BinaryCrossentropy => Task::Binary,
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                Task::Multiclass
            }
            _ => Task::Regression,
        }
    }
}

/// Loss (with regularization, as Keras reports it) and metrics on labelled rows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct Evaluation {
    pub loss: f64,
    pub metrics: BTreeMap<String, f64>,
}

/// Rows per forward pass when predicting or evaluating: large enough for efficient
/// GEMMs, small enough that the buffers stay in cache-friendly sizes.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// A trained network with the spec it was trained with. Clone + Send + Sync.
#[derive(Clone, Debug)]
pub struct Model {
    spec: TrainingSpec,
    pub(crate) net: Network,
    scratch: Scratch,
}

/// Two models are equal when their specs and weights are: scratch buffers are not part of
/// what a model is.
impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec && self.net == other.net
    }
}

impl Model {
    pub(crate) fn new(spec: TrainingSpec, net: Network) -> Model {
        Model {
            spec,
            net,
            scratch: Scratch::default(),
        }
    }

    pub fn input_width(&self) -> usize {
        self.net.input_width
    }

    pub(crate) fn encoding(&self) -> Option<&Encoding> {
        match self.net.layers.first() {
            Some(Layer::Encoding(e)) => Some(e),
            _ => None,
        }
    }

    /// The feature columns by name, in input order, when the model encodes raw values
    /// itself (a dataset with text or missing cells); `None` for plain numbers.
    pub fn input_names(&self) -> Option<Vec<&str>> {
        let encoding = self.encoding()?;
        Some(encoding.columns.iter().map(|c| c.name.as_str()).collect())
    }

    /// The input cell for a client's value of feature column `column` (see
    /// [`Model::input_names`]), or why the value cannot be one, said of the column. Text that
    /// the training data never had is a valid cell: it goes to the column's
    /// out-of-vocabulary slot.
    pub fn cell_of(&self, column: usize, value: RawValue<'_>) -> Result<f32, String> {
        match self.encoding() {
            Some(encoding) => encoding.cell_of(column, value),
            None => match value {
                RawValue::Number(v) => Ok(v as f32),
                // A CSV field is text: a number written out is still a number.
                RawValue::Text(t) => match t.trim().parse::<f32>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(format!("holds numbers only, got the text {t:?}")),
                },
                RawValue::Missing => Err("holds numbers only (the model was trained without \
                     missing values), got a missing value"
                    .to_owned()),
            },
        }
    }

    /// Whether the model reads input `column` at all (an identifier it was trained beside
    /// is left out, so a client need not send it).
    pub fn reads_input(&self, column: usize) -> bool {
        self.encoding()
            .and_then(|e| e.columns.get(column))
            .is_none_or(|c| c.how.width() > 0)
    }

    /// Whether a client's text means a missing value, as the training upload read it.
    pub fn is_missing_marker(&self, text: &str) -> bool {
        match self.encoding() {
            Some(encoding) => encoding.is_marker(text),
            None => cell::MISSING_MARKERS.contains(&text.trim()),
        }
    }

    /// The target cell of a client's label: a text label is its class index, a number is
    /// taken as it is; `None` for a missing label (the row is left out, as in training).
    pub fn label_of(&self, value: RawValue<'_>) -> Result<Option<f32>, String> {
        let names = self.class_names();
        match value {
            RawValue::Missing => Ok(None),
            RawValue::Number(v) if (v as f32).is_finite() => Ok(Some(v as f32)),
            RawValue::Number(v) => Err(format!("the label {v} is not a finite number")),
            RawValue::Text(t) => {
                if let Some(class) = names.and_then(|n| n.iter().position(|c| c == t)) {
                    return Ok(Some(class as f32));
                }
                if self.is_missing_marker(t) {
                    return Ok(None);
                }
                match (names, t.trim().parse::<f32>()) {
                    (None, Ok(v)) if v.is_finite() => Ok(Some(v)),
                    (None, _) => Err(format!("the label {t:?} is not a number")),
                    (Some(names), _) => Err(format!(
                        "the model has no class {t:?}; its classes are {names:?}"
                    )),
                }
            }
        }
    }

    /// The labels of a text target, in the order of the probabilities.
    pub fn class_names(&self) -> Option<&[String]> {
        self.encoding()?.class_names.as_deref()
    }

    pub fn output_width(&self) -> usize {
        self.net.output_width()
    }

    pub fn task(&self) -> Task {
        Task::of(self.spec.loss)
    }

    /// Peak memory of predicting `rows` rows (see [`predict_memory`]).
    pub fn predict_memory(&self, rows: usize) -> MemoryEstimate {
        predict_memory(&self.spec.model.layers, self.input_width(), rows)
    }

    pub fn spec(&self) -> &TrainingSpec {
        &self.spec
    }

    fn check_input(&self, x: ArrayView2<'_, f32>) -> Result<(), ModelError> {
        if x.ncols() != self.input_width() {
            return Err(ModelError::WidthMismatch {
                row: 0,
                expected: self.input_width(),
                got: x.ncols(),
            });
        }
        // A model that encodes its columns takes cells: missing values and levels are NaNs.
        let bad = match self.encoding() {
            Some(_) => x
                .indexed_iter()
                .find(|(_, v)| v.is_infinite())
                .map(|(at, _)| at),
            None => first_non_finite(x),
        };
        match bad {
            Some((row, column)) => Err(ModelError::NonFinite { row, column }),
            None => Ok(()),
        }
    }

    /// Output of the last layer (probabilities for classifiers), dropout off. A few rows go
    /// row by row (`infer`), more through gemm; the two sum in different orders, so a row
    /// predicted alone may differ from the same row in a large batch in the last bits.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ModelError> {
        self.predict_parallel(x, 1)
    }

    /// [`Model::predict`] with the products of large inputs split over `threads` threads
    /// (gemm keeps each output's summation order, so the result is the same).
    pub fn predict_parallel(
        &self,
        x: ArrayView2<'_, f32>,
        threads: usize,
    ) -> Result<Array2<f32>, ModelError> {
        self.check_input(x)?;
        let rows = x.nrows();
        let mut out = zeros2((rows, self.output_width()), "predictions")?;
        if rows <= few_rows::MAX_ROWS {
            self.scratch.with_row_buffers(|buffers| {
                few_rows::forward_rows(&self.net, x, out.view_mut(), buffers)
            });
            return Ok(out);
        }
        let mut ws = self.scratch.take(&self.net, rows.clamp(1, CHUNK_ROWS))?;
        for start in (0..rows).step_by(CHUNK_ROWS) {
            let end = (start + CHUNK_ROWS).min(rows);
            self.net
                .forward(x.slice(s![start..end, ..]), &mut ws, None, threads);
            out.slice_mut(s![start..end, ..])
                .assign(&self.net.output(&ws, end - start));
        }
        self.scratch.give(ws);
        Ok(out)
    }

    /// The classes [`Model::classes`] chooses among: the outputs of a multiclass model, two
    /// for a single binary output; `None` when it gives no classes.
    pub fn class_count(&self) -> Option<usize> {
        match self.task() {
            Task::Multiclass => Some(self.output_width()),
            Task::Binary if self.output_width() == 1 => Some(2),
            _ => None,
        }
    }

    /// Class per row: argmax for multiclass, probability > 0.5 for a single binary
    /// output; `None` for regression and multi-label outputs.
    pub fn classes(&self, predictions: ArrayView2<'_, f32>) -> Option<Vec<usize>> {
        match self.task() {
            Task::Multiclass => Some(
                predictions
                    .rows()
                    .into_iter()
                    .map(|r| argmax(&r.to_vec()))
                    .collect(),
            ),
            Task::Binary if predictions.ncols() == 1 => Some(
                predictions
                    .column(0)
                    .iter()
                    .map(|&p| usize::from(p > 0.5))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Loss and the spec's metrics on labelled rows (unweighted, dropout off).
    pub fn evaluate(&self, samples: Samples<'_>) -> Result<Evaluation, ModelError> {
        self.check_input(samples.x)?;
        if samples.y.nrows() != samples.x.nrows() {
            return Err(ModelError::Labels(format!(
                "{} rows of features but {} rows of targets",
                samples.x.nrows(),
                samples.y.nrows()
            )));
        }
        check_targets(self.spec.loss, self.output_width(), samples.y)
            .map_err(ModelError::Labels)?;
        let targets = samples.y.ncols();
        let capacity = samples.rows().clamp(1, CHUNK_ROWS);
        let mut batch = Batch::new(capacity, self.input_width(), targets)?;
        let mut ws = Workspace::new(&self.net, capacity, false)?;
        let mut source = InMemory::new(samples.x, samples.y, (0..samples.rows()).collect());
        let (sum, tally) = evaluate_source(
            &self.net,
            self.spec.loss,
            &mut source,
            &mut batch,
            &mut ws,
            1,
        );
        let rows = samples.rows().max(1) as f64;
        Ok(Evaluation {
            loss: sum / rows + self.net.penalty(),
            metrics: tally.values(&self.spec.metrics, ""),
        })
    }
}

/// Σ loss and the metric tally over all rows of `source`, dropout off.
pub(crate) fn evaluate_source(
    net: &Network,
    loss: LossKind,
    source: &mut dyn BatchSource,
    batch: &mut Batch,
    ws: &mut Workspace,
    threads: usize,
) -> (f64, Tally) {
    let accuracy = AccuracyKind::for_model(loss, net.output_width());
    let mut tally = Tally::default();
    let mut sum = 0.0;
    source.start_epoch(None);
    while source.next_batch(batch) {
        let rows = batch.rows;
        net.forward(batch.x(), ws, None, threads);
        let out = net.output(ws, rows);
        sum += loss_sum(loss, ws.output_logits(rows), out, batch.y(), None, None);
        tally.add(out, batch.y(), None, accuracy);
    }
    (sum, tally)
}
