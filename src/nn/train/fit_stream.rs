//! `fit_streaming` and `resume_streaming`: training on a dataset read chunk by chunk.
//!
//! As `fit`: the checks and their messages, normalization adapted on the training rows,
//! class weights, Keras' split sizes. Different: the validation split takes whole chunks
//! in a seeded random order (`chunk_split`), because a row-level split would make every
//! validation pass read the whole dataset (SQLite blob reads are what a streamed epoch
//! waits for); and rows within an epoch come from a shuffle buffer instead of a full
//! permutation. Results therefore differ from `fit`'s and depend on the memory budget (it
//! sets the buffer size); with the same budget, runs and resumes are bit-identical.

use std::cell::RefCell;

use crate::nn::data::batch::BatchSource;
use crate::nn::data::split::chunk_split;
use crate::nn::data::stream::source::StreamTrain;
use crate::nn::data::stream::validation::StreamValidation;
use crate::nn::data::stream::{scan, ChunkSource, Reader};
use crate::nn::error::TrainError;
use crate::nn::spec::check::ValidSpec;
use crate::nn::train::fit_loop::epochs;
use crate::nn::train::state::TrainingState;
use crate::nn::train::{check_resumed, check_sizes, restore, FitObserver, FitOptions, FitOutcome};

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
    let target_width = spec.target_width();
    if targets != target_width {
        return Err(TrainError::Data(format!(
            "training data: expected {target_width} target columns, got {targets}"
        )));
    }
    let reader = RefCell::new(Reader::new(source));
    let rows = reader.borrow().total_rows();
    let is_validation = chunk_split(&reader.borrow().rows, ts.validation_split, ts.seed);
    let val_rows = is_validation.iter().filter(|&&v| v).count();
    let train_rows = rows - val_rows;
    check_sizes(spec, rows, ts.validation_split, train_rows, val_rows)?;
    let adapt = resumed.is_none() && TrainingState::adapts(spec);
    let fit = resumed.is_none().then(|| spec.encoding_fit()).flatten();
    let (normalization, encoding) = scan(&reader, &is_validation, adapt, fit, facts, ts.loss)?;
    let state = match resumed {
        Some(state) => check_resumed(state, train_rows, val_rows)?,
        None => TrainingState::fresh(
            spec,
            features,
            encoding,
            normalization,
            train_rows,
            val_rows,
            options.batch_size,
        )?,
    };

    let class_weights = facts.class_weights.as_deref().map(|w| (w, ts.loss));
    let mut train_source = StreamTrain::new(&reader, &is_validation, memory_bytes, class_weights)
        .with_threads(options.threads);
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
