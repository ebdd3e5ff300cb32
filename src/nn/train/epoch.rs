//! One epoch of mini-batch training, and the validation pass after it.

use std::collections::BTreeMap;

use crate::nn::data::batch::{Batch, BatchSource};
use crate::nn::error::TrainError;
use crate::nn::model::network::{Network, Workspace};
use crate::nn::model::{evaluate_source, CHUNK_ROWS};
use crate::nn::ops::alloc::OutOfMemory;
use crate::nn::ops::metrics::{AccuracyKind, Tally};
use crate::nn::optim::update::apply_updates;
use crate::nn::optim::{Optimizer, Step};
use crate::nn::spec::check::ValidSpec;
use crate::nn::spec::{LossKind, MetricKind};
use crate::nn::train::state::TrainingState;
use crate::nn::train::step::{self, shard_count, TrainingStep};
use crate::nn::train::{FitObserver, FitOptions};

/// The buffers of one fit, allocated once and reused by every batch.
pub(crate) struct EpochLoop {
    batch: Batch,
    /// One workspace per shard of a batch (see `shard`).
    shards: Vec<Workspace>,
    val_batch: Batch,
    val_ws: Workspace,
    threads: usize,
    shuffle: bool,
    accuracy: AccuracyKind,
    loss: LossKind,
    has_class_weights: bool,
    metrics: Vec<MetricKind>,
}

impl EpochLoop {
    pub fn new(
        spec: &ValidSpec,
        net: &Network,
        options: &FitOptions,
        train_rows: usize,
        val_rows: Option<usize>,
    ) -> Result<EpochLoop, OutOfMemory> {
        let ts = spec.spec();
        let targets = spec.target_width();
        // A batch size beyond the row count must not allocate beyond it.
        let capacity = options.batch_size.min(train_rows);
        let val_capacity = val_rows.map_or(0, |r| r.clamp(1, CHUNK_ROWS));
        let shards = shard_count(net, capacity);
        Ok(EpochLoop {
            batch: Batch::new(capacity, net.input_width, targets)?,
            shards: (0..shards)
                .map(|_| Workspace::new(net, capacity.div_ceil(shards), true))
                .collect::<Result<_, _>>()?,
            val_batch: Batch::new(val_capacity, net.input_width, targets)?,
            val_ws: Workspace::new(net, val_capacity, false)?,
            threads: options.threads,
            shuffle: ts.shuffle,
            accuracy: AccuracyKind::for_model(ts.loss, spec.facts.outputs),
            loss: ts.loss,
            has_class_weights: spec.facts.class_weights.is_some(),
            metrics: ts.metrics.clone(),
        })
    }

    /// One pass over the training rows; returns the epoch loss and training metrics.
    pub fn train_epoch(
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
            let batch_step = TrainingStep {
                x,
                y,
                weights,
                key: p.dropout_rng.next_u64(),
                loss: self.loss,
                threads: self.threads,
            };
            let sum = step::forward_backward(net, &mut self.shards, &batch_step);
            let batch_loss = sum / rows as f64 + net.penalty();
            if !batch_loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: index,
                });
            }
            total += batch_loss * rows as f64;
            let n = self.shards.len();
            for (i, ws) in self.shards.iter().enumerate() {
                let part = step::rows_of(i, n, rows);
                tally.add(
                    net.output(ws, part.len()),
                    y.slice(ndarray::s![part.clone(), ..]),
                    weights.map(|w| &w[part]),
                    self.accuracy,
                );
            }
            p.iterations += 1;
            let step = Step {
                lr: p.learning_rate(),
                iteration: p.iterations,
            };
            apply_updates(
                net,
                &mut self.shards,
                optimizer,
                step,
                &mut state.moments,
                self.threads,
            );
        }
        Ok((total / source.rows() as f64, tally))
    }

    /// Validation loss (regularization included, as Keras) and `val_` metrics.
    pub fn validate(
        &mut self,
        net: &Network,
        source: &mut dyn BatchSource,
    ) -> (f64, BTreeMap<String, f64>) {
        let (sum, tally) = evaluate_source(
            net,
            self.loss,
            source,
            &mut self.val_batch,
            &mut self.val_ws,
            self.threads,
        );
        (
            sum / source.rows() as f64 + net.penalty(),
            tally.values(&self.metrics, "val_"),
        )
    }
}
