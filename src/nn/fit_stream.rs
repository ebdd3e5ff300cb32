//! `fit_streaming` and `resume_streaming`: training on a dataset read chunk by chunk.
//!
//! Everything but the order of training rows is as in `fit`: the same seeded row-level
//! validation split (so the validation pass reads every chunk that holds validation
//! rows), the same checks and messages, normalization adapted on the training rows, the
//! same class weights. Rows within an epoch come from a shuffle buffer instead of a full
//! permutation, so results differ from `fit` on the same rows, and also depend on the
//! memory budget (it sets the buffer size); with the same budget, runs and resumes are
//! bit-identical.

use std::cell::RefCell;

use super::batch::BatchSource;
use super::error::TrainError;
use super::state::TrainingState;
use super::stream::{scan, ChunkSource, Reader};
use super::stream_source::{StreamTrain, StreamValidation};
use super::train::{
    check_resumed, epochs, restore, split_rows, FitObserver, FitOptions, FitOutcome,
};
use super::validate::ValidSpec;
use super::LossKind;

/// Trains from `source`, holding at most about `memory_bytes` of its rows at a time
/// (the shuffle buffer plus one chunk being read; at least the largest chunk).
pub fn fit_streaming(
    spec: &ValidSpec,
    source: &mut dyn ChunkSource,
    options: &FitOptions,
    memory_bytes: usize,
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    run(spec, source, options, memory_bytes, None, observer)
}

/// Continues a checkpoint of `fit_streaming` (or of `fit`: the rows' order then differs
/// from the interrupted run's from here on).
pub fn resume_streaming(
    spec: &ValidSpec,
    source: &mut dyn ChunkSource,
    options: &FitOptions,
    memory_bytes: usize,
    checkpoint: &[u8],
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    let state = restore(spec, options, checkpoint)?;
    run(spec, source, options, memory_bytes, Some(state), observer)
}

fn run(
    spec: &ValidSpec,
    source: &mut dyn ChunkSource,
    options: &FitOptions,
    memory_bytes: usize,
    resumed: Option<TrainingState>,
    observer: &mut dyn FitObserver,
) -> Result<FitOutcome, TrainError> {
    let ts = spec.spec();
    if options.batch_size == 0 {
        return Err(TrainError::Data("batch size must be at least 1".to_owned()));
    }
    let facts = &spec.facts;
    let (features, targets) = source.columns();
    if features != facts.features {
        return Err(TrainError::Data(format!(
            "training data: {features} feature columns, the spec was validated for {}",
            facts.features
        )));
    }
    let target_width = if ts.loss == LossKind::SparseCategoricalCrossentropy {
        1
    } else {
        facts.outputs
    };
    if targets != target_width {
        return Err(TrainError::Data(format!(
            "training data: expected {target_width} target columns, got {targets}"
        )));
    }
    let reader = RefCell::new(Reader::new(source));
    let rows = reader.borrow().total_rows();
    let parts = split_rows(spec, rows, ts.validation_split)?;
    let mut is_validation = vec![false; rows];
    for &r in &parts.validation {
        is_validation[r] = true;
    }
    let adapt = resumed.is_none() && TrainingState::adapts(spec);
    let normalization = scan(&reader, &is_validation, adapt, ts.loss, facts.outputs)?;
    let (train_rows, val_rows) = (parts.train.len(), parts.validation.len());
    drop(parts);
    let state = match resumed {
        Some(state) => check_resumed(state, train_rows, val_rows)?,
        None => TrainingState::fresh(
            spec,
            features,
            normalization,
            train_rows,
            val_rows,
            options.batch_size,
        ),
    };

    let class_weights = facts.class_weights.as_deref().map(|w| (w, ts.loss));
    let mut train_source = StreamTrain::new(&reader, &is_validation, memory_bytes, class_weights);
    let mut val_source = (val_rows > 0).then(|| StreamValidation::new(&reader, &is_validation));
    epochs(
        spec,
        options,
        state,
        &mut train_source,
        val_source.as_mut().map(|s| s as &mut dyn BatchSource),
        &mut || reader.borrow_mut().take_error(),
        observer,
    )
}
