//! `fit` and `resume`: the epoch loop.
//!
//! # Determinism
//! The seed covers everything random: the initial weights, the validation split, the
//! order of rows in every epoch and every dropout mask, each from its own stream. With
//! the same spec, data, seed and batch size, two runs give bit-identical
//! weights and records (`seconds` aside), and `resume` from any epoch's state continues
//! exactly as the uninterrupted run would have.

pub(in crate::nn) mod callbacks;
pub(in crate::nn) mod checkpoint;
pub(in crate::nn) mod epoch;
pub(in crate::nn) mod fit_loop;
pub(in crate::nn) mod fit_stream;
pub(in crate::nn) mod record;
pub(in crate::nn) mod state;
pub(in crate::nn) mod step;
pub(in crate::nn) mod threads;

use crate::nn::data::batch::{BatchSource, InMemory};
use crate::nn::data::split::{split, Split};
use crate::nn::data::{check_targets, first_bad_feature, Samples};
use crate::nn::error::TrainError;
use crate::nn::layers::Normalization;
use crate::nn::model::Model;
use crate::nn::spec::check::ValidSpec;
use crate::nn::train::fit_loop::epochs;
use crate::nn::train::record::EpochRecord;
use crate::nn::train::state::TrainingState;

/// Per-run choices that are not part of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitOptions {
    /// One of the spec's batch sizes.
    pub batch_size: usize,
    /// Threads the training may use. Results do not depend on it: the work is split the
    /// same way whatever the count, and only where it runs changes.
    pub threads: usize,
}

pub trait FitObserver {
    /// Called once per finished epoch, before the next starts. `state` can be serialised
    /// (`state.to_bytes()`) into a checkpoint that `resume` continues bit-identically.
    fn on_epoch_end(&mut self, record: &EpochRecord, state: &TrainingState);
    /// Polled between batches; true stops training within one batch with `TrainError::Cancelled`.
    fn cancelled(&self) -> bool;
}

#[derive(Clone, Debug)]
pub struct FitOutcome {
    /// The final weights (the best epoch's when early stopping restores them).
    pub model: Model,
    pub history: Vec<EpochRecord>,
    pub best_epoch: Option<usize>,
    /// The monitored value (`ValidSpec::monitor`) at `best_epoch`.
    pub best_value: Option<f64>,
    pub stopped_early: bool,
    pub overfitting_epoch: Option<usize>,
}

pub fn fit(
    spec: &ValidSpec,
    data: Samples<'_>,
    validation: Option<Samples<'_>>,
    options: &FitOptions,
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    run(spec, data, validation, options, None, observer)
}

pub fn resume(
    spec: &ValidSpec,
    data: Samples<'_>,
    validation: Option<Samples<'_>>,
    options: &FitOptions,
    checkpoint: &[u8],
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    let state = restore(spec, options, checkpoint)?;
    run(spec, data, validation, options, Some(state), observer)
}

/// The checkpoint's state, if it belongs to this spec and batch size.
pub(crate) fn restore(
    spec: &ValidSpec,
    options: &FitOptions,
    checkpoint: &[u8],
) -> Result<TrainingState, TrainError> {
    let state = TrainingState::from_bytes(checkpoint).map_err(TrainError::Checkpoint)?;
    if state.model.spec() != spec.spec() {
        return Err(TrainError::Checkpoint(
            "it was made with a different spec".to_owned(),
        ));
    }
    if state.progress.batch_size != options.batch_size {
        return Err(TrainError::Checkpoint(format!(
            "it was made with batch size {}, not {}",
            state.progress.batch_size, options.batch_size
        )));
    }
    Ok(state)
}

fn check_data(spec: &ValidSpec, s: &Samples<'_>, what: &str) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Data(format!("{what}: {m}")));
    let facts = &spec.facts;
    if s.x.ncols() != facts.features {
        return bad(format!(
            "{} feature columns, the spec was validated for {}",
            s.x.ncols(),
            facts.features
        ));
    }
    if s.x.nrows() != s.y.nrows() {
        return bad(format!(
            "{} rows of features but {} rows of targets",
            s.x.nrows(),
            s.y.nrows()
        ));
    }
    if let Some(m) = first_bad_feature(&facts.columns, s.x, 0) {
        return bad(m);
    }
    check_targets(spec.spec().loss, facts.outputs, s.y)
        .map_err(|m| TrainError::Data(format!("{what}: {m}")))
}

fn run(
    spec: &ValidSpec,
    data: Samples<'_>,
    validation: Option<Samples<'_>>,
    options: &FitOptions,
    resumed: Option<TrainingState>,
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    let ts = spec.spec();
    if options.batch_size == 0 {
        return Err(TrainError::Data("batch size must be at least 1".to_owned()));
    }
    check_data(spec, &data, "training data")?;
    if let Some(v) = &validation {
        check_data(spec, v, "validation data")?;
    }
    let fraction = match validation {
        Some(_) => 0.0,
        None => ts.validation_split,
    };
    let parts = split_rows(spec, data.rows(), fraction)?;
    let val_rows = validation
        .as_ref()
        .map_or(parts.validation.len(), Samples::rows);
    let state = match resumed {
        Some(state) => check_resumed(state, parts.train.len(), val_rows)?,
        None => {
            let normalization = TrainingState::adapts(spec).then(|| {
                Normalization::adapt(data.x.ncols(), parts.train.iter().map(|&r| data.x.row(r)))
            });
            let encoding = spec.encoding_fit().map(|mut fit| {
                let rows = parts.train.iter().map(|&r| data.x.row(r));
                fit.add_rows(rows.map(|r| r.to_slice().expect("contiguous rows")));
                fit.finish()
            });
            TrainingState::fresh(
                spec,
                data.x.ncols(),
                encoding,
                normalization,
                parts.train.len(),
                val_rows,
                options.batch_size,
            )?
        }
    };

    let class_weights = spec.facts.class_weights.as_deref();
    let mut train_source = InMemory::new(data.x.view(), data.y.view(), parts.train.clone())
        .with_threads(options.threads);
    if let Some(w) = class_weights {
        train_source = train_source.with_class_weights(w, ts.loss);
    }
    let mut val_source = match &validation {
        Some(v) => Some(InMemory::new(
            v.x.view(),
            v.y.view(),
            (0..v.rows()).collect(),
        )),
        None if !parts.validation.is_empty() => Some(InMemory::new(
            data.x.view(),
            data.y.view(),
            parts.validation.clone(),
        )),
        None => None,
    };

    epochs(
        spec,
        options,
        state,
        &mut train_source,
        val_source.as_mut().map(|s| s as &mut dyn BatchSource),
        &mut || Ok(()),
        observer,
    )
}

/// The rows `fit` holds out for validation from `rows` in-memory rows (sorted), by the
/// spec's seed and `validation_split`.
pub fn validation_rows(spec: &ValidSpec, rows: usize) -> Vec<usize> {
    let mut rows = split(rows, spec.spec().validation_split, spec.spec().seed).validation;
    rows.sort_unstable();
    rows
}

/// Keras' split sizes with the seeded row choice (`fraction` 0 with separate validation
/// data); an error when either side is empty.
pub(crate) fn split_rows(
    spec: &ValidSpec,
    rows: usize,
    fraction: f64,
) -> Result<Split, TrainError> {
    let parts = split(rows, fraction, spec.spec().seed);
    check_sizes(
        spec,
        rows,
        fraction,
        parts.train.len(),
        parts.validation.len(),
    )?;
    Ok(parts)
}

/// An error when a split leaves either side empty.
pub(crate) fn check_sizes(
    spec: &ValidSpec,
    rows: usize,
    fraction: f64,
    train: usize,
    validation: usize,
) -> Result<(), TrainError> {
    let ts = spec.spec();
    if train == 0 {
        return Err(TrainError::Data(format!(
            "{rows} rows leave no training rows after validation_split {}",
            ts.validation_split
        )));
    }
    if fraction > 0.0 && validation == 0 {
        return Err(TrainError::Data(format!(
            "{rows} rows leave no validation rows for validation_split {}",
            ts.validation_split
        )));
    }
    Ok(())
}

/// A restored state, if it was made on as many training and validation rows.
pub(crate) fn check_resumed(
    state: TrainingState,
    train_rows: usize,
    val_rows: usize,
) -> Result<TrainingState, TrainError> {
    let p = &state.progress;
    if p.train_rows != train_rows || p.validation_rows != val_rows {
        return Err(TrainError::Checkpoint(format!(
            "it was made with {} training and {} validation rows, not {train_rows} and {val_rows}",
            p.train_rows, p.validation_rows
        )));
    }
    Ok(state)
}
