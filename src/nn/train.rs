//! `fit` and `resume`: the epoch loop.
//!
//! # Determinism
//! The seed covers everything random: the initial weights, the validation split, the
//! order of rows in every epoch and every dropout mask, each from its own stream. With
//! the same spec, data, seed, batch size and thread count, two runs give bit-identical
//! weights and records (`seconds` aside), and `resume` from any epoch's state continues
//! exactly as the uninterrupted run would have.

use std::time::Instant;

use super::batch::{Batch, BatchSource, InMemory};
use super::callbacks::{early_stopping, overfitting_start, overfitting_window, reduce_lr};
use super::checkpoint::{Progress, StoredRecord, TrainingState};
use super::data::{check_targets, first_non_finite, Samples};
use super::error::TrainError;
use super::layers::Normalization;
use super::loss::loss_sum;
use super::metrics::{AccuracyKind, Tally};
use super::model::{evaluate_source, Model, CHUNK_ROWS};
use super::network::{Layer, Network, Workspace};
use super::optim::{self, Optimizer, Reg, Step};
use super::record::EpochRecord;
use super::rng::{Rng, Stream};
use super::spec::LayerSpec;
use super::split::split;
use super::validate::ValidSpec;

/// Per-run choices that are not part of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitOptions {
    /// One of the spec's batch sizes.
    pub batch_size: usize,
    /// Threads for the matrix products (results are bit-identical per thread count).
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
    run(spec, data, validation, options, Some(state), observer)
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
    if let Some((r, c)) = first_non_finite(s.x) {
        return bad(format!(
            "feature row {r}, column {c} is not a finite number"
        ));
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
    let parts = match validation {
        Some(_) => split(data.rows(), 0.0, ts.seed),
        None => split(data.rows(), ts.validation_split, ts.seed),
    };
    if parts.train.is_empty() {
        return Err(TrainError::Data(format!(
            "{} rows leave no training rows after validation_split {}",
            data.rows(),
            ts.validation_split
        )));
    }
    if ts.validation_split > 0.0 && validation.is_none() && parts.validation.is_empty() {
        return Err(TrainError::Data(format!(
            "{} rows leave no validation rows for validation_split {}",
            data.rows(),
            ts.validation_split
        )));
    }
    let mut state = match resumed {
        Some(state) => {
            let p = &state.progress;
            let val_rows = validation
                .as_ref()
                .map_or(parts.validation.len(), Samples::rows);
            if p.train_rows != parts.train.len() || p.validation_rows != val_rows {
                return Err(TrainError::Checkpoint(format!(
                    "it was made with {} training and {} validation rows, not {} and {val_rows}",
                    p.train_rows,
                    p.validation_rows,
                    parts.train.len()
                )));
            }
            state
        }
        None => fresh_state(
            spec,
            &data,
            &parts.train,
            validation
                .as_ref()
                .map_or(parts.validation.len(), Samples::rows),
            options,
        ),
    };

    let class_weights = spec.facts.class_weights.as_deref();
    let mut train_source = InMemory::new(data.x.view(), data.y.view(), parts.train.clone());
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

    let optimizer = optim::build(&ts.optimizer);
    let mut loop_ = Loop::new(
        spec,
        &state.model.net,
        options,
        val_source.as_ref().map(|s| s.rows()),
    );
    let window = overfitting_window(ts.early_stopping.as_ref());
    let (monitor, mode) = spec.monitor();

    while state.progress.epoch < ts.epochs && !state.progress.stopped_early {
        let epoch = state.progress.epoch + 1;
        let started = Instant::now();
        let lr = state.progress.learning_rate();
        let (loss, tally) = loop_.train_epoch(
            epoch,
            &mut state,
            &mut train_source,
            optimizer.as_ref(),
            observer,
        )?;
        let mut metrics = tally.values(&ts.metrics, "");
        let mut val_loss = None;
        if let Some(source) = val_source.as_mut() {
            let (sum, vt) = evaluate_source(
                &state.model.net,
                ts.loss,
                source,
                &mut loop_.val_batch,
                &mut loop_.val_ws,
                options.threads,
            );
            val_loss = Some(sum / source.rows() as f64 + state.model.net.penalty());
            metrics.extend(vt.values(&ts.metrics, "val_"));
        }
        let mut record = EpochRecord {
            epoch,
            loss,
            val_loss,
            metrics,
            learning_rate: f64::from(lr),
            seconds: started.elapsed().as_secs_f64(),
            overfitting: false,
        };
        end_of_epoch(spec, &mut state, &mut record, window, monitor, mode);
        observer.on_epoch_end(&record, &state);
    }
    Ok(finish(state))
}

/// Callbacks, best epoch and overfitting after an epoch; appends the record.
fn end_of_epoch(
    spec: &ValidSpec,
    state: &mut TrainingState,
    record: &mut EpochRecord,
    window: usize,
    monitor: &str,
    mode: super::validate::Mode,
) {
    let ts = spec.spec();
    let p = &mut state.progress;
    let mut history: Vec<EpochRecord> = p.history.iter().map(EpochRecord::from).collect();
    history.push(record.clone());
    if p.overfitting_epoch.is_none() {
        if let Some(start) = overfitting_start(&history, window) {
            p.overfitting_epoch = Some(start);
            if start == record.epoch {
                record.overfitting = true;
            } else {
                p.history[start - 1].mark_overfitting();
            }
        }
    }
    if let Some(value) = record.get(monitor) {
        if p.best
            .is_none_or(|(_, b)| mode.better(value, f64::from_bits(b)))
        {
            p.best = Some((record.epoch, value.to_bits()));
        }
    }
    if let Some(rlr) = &ts.reduce_lr_on_plateau {
        let current = p.learning_rate();
        let lr = reduce_lr(rlr, &mut p.reduce_lr, record, current);
        p.learning_rate_bits = lr.to_bits();
    }
    if let Some(es) = &ts.early_stopping {
        let verdict = early_stopping(es, &mut p.early_stopping, record);
        if verdict.snapshot {
            match &mut state.best_weights {
                Some(best) => best.clone_from(&state.model.net),
                None => state.best_weights = Some(state.model.net.clone()),
            }
        }
        p.stopped_early = verdict.stop;
    }
    p.history.push(StoredRecord::from(&*record));
    p.epoch = record.epoch;
}

fn finish(state: TrainingState) -> FitOutcome {
    let restore = state
        .model
        .spec()
        .early_stopping
        .as_ref()
        .is_some_and(|e| e.restore_best_weights);
    let history = state.history();
    let p = &state.progress;
    let (best_epoch, best_value) = match p.best {
        Some((e, v)) => (Some(e), Some(f64::from_bits(v))),
        None => (None, None),
    };
    let mut model = state.model;
    if let (true, Some(best)) = (restore, state.best_weights) {
        model.net = best;
    }
    FitOutcome {
        model,
        history,
        best_epoch,
        best_value,
        stopped_early: p.stopped_early,
        overfitting_epoch: p.overfitting_epoch,
    }
}

fn fresh_state(
    spec: &ValidSpec,
    data: &Samples<'_>,
    train_rows: &[usize],
    validation_rows: usize,
    options: &FitOptions,
) -> TrainingState {
    let ts = spec.spec();
    let normalization = ts
        .model
        .layers
        .iter()
        .any(|l| matches!(l, LayerSpec::Normalization(_)))
        .then(|| Normalization::adapt(data.x.ncols(), train_rows.iter().map(|&r| data.x.row(r))));
    let mut init = Rng::new(ts.seed, Stream::Init);
    let net = Network::build(ts, data.x.ncols(), normalization, &mut init);
    let optimizer = optim::build(&ts.optimizer);
    let moments = net
        .dense_layers()
        .flat_map(|d| std::iter::once(d.kernel.len()).chain(d.bias.as_ref().map(|b| b.len())))
        .flat_map(|len| (0..optimizer.moments()).map(move |_| vec![0.0f32; len]))
        .collect();
    TrainingState {
        model: Model::new(ts.clone(), net),
        moments,
        best_weights: None,
        progress: Progress {
            epoch: 0,
            iterations: 0,
            learning_rate_bits: (ts.optimizer.learning_rate() as f32).to_bits(),
            shuffle_rng: Rng::new(ts.seed, Stream::Shuffle),
            dropout_rng: Rng::new(ts.seed, Stream::Dropout),
            early_stopping: Default::default(),
            reduce_lr: Default::default(),
            best: None,
            overfitting_epoch: None,
            stopped_early: false,
            batch_size: options.batch_size,
            train_rows: train_rows.len(),
            validation_rows,
            history: Vec::new(),
        },
    }
}

/// The buffers of one fit, allocated once.
struct Loop {
    batch: Batch,
    ws: Workspace,
    val_batch: Batch,
    val_ws: Workspace,
    threads: usize,
    shuffle: bool,
    accuracy: AccuracyKind,
    loss: super::spec::LossKind,
    has_class_weights: bool,
}

impl Loop {
    fn new(spec: &ValidSpec, net: &Network, options: &FitOptions, val_rows: Option<usize>) -> Loop {
        let ts = spec.spec();
        let targets = if ts.loss == super::spec::LossKind::SparseCategoricalCrossentropy {
            1
        } else {
            spec.facts.outputs
        };
        let val_capacity = val_rows.map_or(0, |r| r.clamp(1, CHUNK_ROWS));
        Loop {
            batch: Batch::new(options.batch_size, net.input_width, targets),
            ws: Workspace::new(net, options.batch_size, true),
            val_batch: Batch::new(val_capacity, net.input_width, targets),
            val_ws: Workspace::new(net, val_capacity, false),
            threads: options.threads,
            shuffle: ts.shuffle,
            accuracy: AccuracyKind::for_model(ts.loss, spec.facts.outputs),
            loss: ts.loss,
            has_class_weights: spec.facts.class_weights.is_some(),
        }
    }

    /// One pass over the training rows; returns the epoch loss and training metrics.
    fn train_epoch(
        &mut self,
        epoch: usize,
        state: &mut TrainingState,
        source: &mut dyn BatchSource,
        optimizer: &dyn Optimizer,
        observer: &dyn FitObserver,
    ) -> Result<(f64, Tally), TrainError> {
        let p = &mut state.progress;
        let net = &mut state.model.net;
        source.start_epoch(if self.shuffle {
            Some(&mut p.shuffle_rng)
        } else {
            None
        });
        let mut tally = Tally::default();
        let mut total = 0.0f64;
        let mut index = 0;
        while source.next_batch(&mut self.batch) {
            if observer.cancelled() {
                return Err(TrainError::Cancelled {
                    epochs_done: epoch - 1,
                });
            }
            index += 1;
            let rows = self.batch.rows;
            let (x, y) = (self.batch.x(), self.batch.y());
            let weights = self.has_class_weights.then(|| &self.batch.w[..rows]);
            net.forward(x, &mut self.ws, Some(&mut p.dropout_rng), self.threads);
            let penalty = net.penalty();
            let out = self.ws.layers.last_mut().expect("at least one layer");
            let sum = loss_sum(
                self.loss,
                out.z.slice(ndarray::s![..rows, ..]),
                out.a.slice(ndarray::s![..rows, ..]),
                y,
                weights,
                Some(out.d.slice_mut(ndarray::s![..rows, ..])),
            );
            let batch_loss = sum / rows as f64 + penalty;
            if !batch_loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: index,
                });
            }
            total += batch_loss * rows as f64;
            tally.add(net.output(&self.ws, rows), y, weights, self.accuracy);
            net.backward(x, &mut self.ws, self.loss.fused(), self.threads);
            p.iterations += 1;
            let step = Step {
                lr: p.learning_rate(),
                iteration: p.iterations,
            };
            apply_updates(net, &self.ws, optimizer, step, &mut state.moments);
        }
        Ok((total / source.rows() as f64, tally))
    }
}

/// One optimizer pass over every parameter buffer, in a fixed order.
fn apply_updates(
    net: &mut Network,
    ws: &Workspace,
    optimizer: &dyn Optimizer,
    step: Step,
    moments: &mut [Vec<f32>],
) {
    let k = optimizer.moments();
    let mut slot = 0;
    let mut next = |param: &mut [f32], grad: &[f32], reg: Reg| {
        optimizer.update(
            step,
            param,
            grad,
            reg,
            &mut moments[slot * k..(slot + 1) * k],
        );
        slot += 1;
    };
    for (layer, grads) in net.layers.iter_mut().zip(&ws.grads) {
        if let (Layer::Dense(d), Some(g)) = (layer, grads) {
            let reg = Reg { l1: d.l1, l2: d.l2 };
            next(
                d.kernel.as_slice_mut().expect("contiguous"),
                g.kernel.as_slice().expect("contiguous"),
                reg,
            );
            if let (Some(b), Some(gb)) = (&mut d.bias, &g.bias) {
                next(
                    b.as_slice_mut().expect("contiguous"),
                    gb.as_slice().expect("contiguous"),
                    Reg::default(),
                );
            }
        }
    }
}
