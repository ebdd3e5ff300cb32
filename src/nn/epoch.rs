//! One epoch of mini-batch training, and the validation pass after it.

use std::collections::BTreeMap;

use super::batch::{Batch, BatchSource};
use super::error::TrainError;
use super::loss::loss_sum;
use super::metrics::{AccuracyKind, Tally};
use super::model::{evaluate_source, CHUNK_ROWS};
use super::network::{Layer, Network, Workspace};
use super::optim::{Optimizer, Reg, Step};
use super::spec::{LossKind, MetricKind};
use super::state::TrainingState;
use super::train::{FitObserver, FitOptions};
use super::validate::ValidSpec;

/// The buffers of one fit, allocated once and reused by every batch.
pub(crate) struct EpochLoop {
    batch: Batch,
    ws: Workspace,
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
    ) -> EpochLoop {
        let ts = spec.spec();
        let targets = if ts.loss == LossKind::SparseCategoricalCrossentropy {
            1
        } else {
            spec.facts.outputs
        };
        // A batch size beyond the row count must not allocate beyond it.
        let capacity = options.batch_size.min(train_rows);
        let val_capacity = val_rows.map_or(0, |r| r.clamp(1, CHUNK_ROWS));
        EpochLoop {
            batch: Batch::new(capacity, net.input_width, targets),
            ws: Workspace::new(net, capacity, true),
            val_batch: Batch::new(val_capacity, net.input_width, targets),
            val_ws: Workspace::new(net, val_capacity, false),
            threads: options.threads,
            shuffle: ts.shuffle,
            accuracy: AccuracyKind::for_model(ts.loss, spec.facts.outputs),
            loss: ts.loss,
            has_class_weights: spec.facts.class_weights.is_some(),
            metrics: ts.metrics.clone(),
        }
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
            apply_updates(
                net,
                &self.ws,
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

/// Buffers shorter than this are updated on one thread: splitting costs more.
const PARALLEL_UPDATE_MIN: usize = 1 << 14;

/// One optimizer pass over every parameter buffer, in a fixed order. Updates are
/// element-wise, so splitting a buffer across threads changes no bit.
fn apply_updates(
    net: &mut Network,
    ws: &Workspace,
    optimizer: &dyn Optimizer,
    step: Step,
    moments: &mut [Vec<f32>],
    threads: usize,
) {
    let k = optimizer.moments();
    let mut slot = 0;
    let mut next = |param: &mut [f32], grad: &[f32], reg: Reg| {
        let mut parts: [&mut [f32]; 3] = Default::default();
        for (part, m) in parts.iter_mut().zip(&mut moments[slot * k..(slot + 1) * k]) {
            *part = m.as_mut_slice();
        }
        update_split(optimizer, step, param, grad, reg, &mut parts[..k], threads);
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

/// Halves the buffer (and its moments) recursively over `threads` with `rayon::join`,
/// which needs no allocation.
fn update_split(
    optimizer: &dyn Optimizer,
    step: Step,
    param: &mut [f32],
    grad: &[f32],
    reg: Reg,
    moments: &mut [&mut [f32]],
    threads: usize,
) {
    if threads <= 1 || param.len() < PARALLEL_UPDATE_MIN {
        optimizer.update(step, param, grad, reg, moments);
        return;
    }
    let mid = (param.len() / 2).next_multiple_of(64).min(param.len());
    let (p1, p2) = param.split_at_mut(mid);
    let (g1, g2) = grad.split_at(mid);
    let (mut left, mut right): ([&mut [f32]; 3], [&mut [f32]; 3]) = Default::default();
    for (i, m) in moments.iter_mut().enumerate() {
        let (a, b) = std::mem::take(m).split_at_mut(mid);
        (left[i], right[i]) = (a, b);
    }
    let k = moments.len();
    let half = threads / 2;
    rayon::join(
        || update_split(optimizer, step, p1, g1, reg, &mut left[..k], half),
        || {
            update_split(
                optimizer,
                step,
                p2,
                g2,
                reg,
                &mut right[..k],
                threads - half,
            )
        },
    );
}
