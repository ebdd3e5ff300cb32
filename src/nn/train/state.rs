//! The full training state between two epochs: weights, optimizer moments, RNG and
//! callback states, history. `fit` starts from `fresh`, `resume` from a checkpoint.

use serde::{Deserialize, Serialize};

use crate::nn::layers::{Encoding, Layer, Normalization};
use crate::nn::model::network::Network;
use crate::nn::model::Model;
use crate::nn::ops::alloc::{filled, OutOfMemory};
use crate::nn::ops::rng::{Rng, Stream};
use crate::nn::optim;
use crate::nn::spec::check::ValidSpec;
use crate::nn::spec::LayerSpec;
use crate::nn::train::callbacks::{
    early_stopping, overfitting_start, overfitting_window, reduce_lr, EarlyStoppingState,
    ReduceLrState,
};
use crate::nn::train::checkpoint::StoredRecord;
use crate::nn::train::record::EpochRecord;
use crate::nn::train::FitOutcome;

/// Everything needed to continue training exactly where it stopped.
#[derive(Clone, Debug)]
pub struct TrainingState {
    pub(crate) model: Model,
    pub(crate) moments: Vec<Vec<f32>>,
    pub(crate) best_weights: Option<Network>,
    pub(crate) progress: Progress,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Progress {
    /// Finished epochs.
    pub epoch: usize,
    /// Optimizer steps taken (Adam's bias correction counts them).
    pub iterations: u64,
    pub learning_rate_bits: u32,
    pub shuffle_rng: Rng,
    pub dropout_rng: Rng,
    pub early_stopping: EarlyStoppingState,
    pub reduce_lr: ReduceLrState,
    /// Best epoch and its monitored value (bits).
    pub best: Option<(usize, u64)>,
    pub overfitting_epoch: Option<usize>,
    pub stopped_early: bool,
    pub batch_size: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub history: Vec<StoredRecord>,
}

impl Progress {
    pub fn learning_rate(&self) -> f32 {
        f32::from_bits(self.learning_rate_bits)
    }
}

impl TrainingState {
    /// Finished epochs.
    pub fn epoch(&self) -> usize {
        self.progress.epoch
    }

    /// The epoch where overfitting began, once detected (it is detected a few epochs
    /// later; see `overfitting_start`).
    pub fn overfitting_epoch(&self) -> Option<usize> {
        self.progress.overfitting_epoch
    }

    /// The current weights (before any restore of the best ones).
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub(crate) fn history(&self) -> Vec<EpochRecord> {
        self.progress
            .history
            .iter()
            .map(EpochRecord::from)
            .collect()
    }

    /// Epoch 0: fresh weights (with the normalization adapted on the training rows when
    /// the model has that layer), zero moments.
    pub(crate) fn fresh(
        spec: &ValidSpec,
        width: usize,
        encoding: Option<Encoding>,
        normalization: Option<Normalization>,
        train_rows: usize,
        validation_rows: usize,
        batch_size: usize,
    ) -> Result<TrainingState, OutOfMemory> {
        let ts = spec.spec();
        let mut init = Rng::new(ts.seed, Stream::Init);
        let net = Network::build(ts, width, encoding, normalization, &mut init)?;
        let optimizer = optim::build(&ts.optimizer);
        let moments = net
            .layers
            .iter()
            .flat_map(Layer::trained_lengths)
            .flat_map(|len| (0..optimizer.moments()).map(move |_| filled(len, 0.0f32, "moments")))
            .collect::<Result<_, _>>()?;
        Ok(TrainingState {
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
                batch_size,
                train_rows,
                validation_rows,
                history: Vec::new(),
            },
        })
    }

    /// Whether the spec's model starts with a normalization layer to adapt.
    pub(crate) fn adapts(spec: &ValidSpec) -> bool {
        spec.spec()
            .model
            .layers
            .iter()
            .any(|l| matches!(l, LayerSpec::Normalization(_)))
    }

    /// Callbacks, best epoch and overfitting after an epoch; appends the record
    /// (whose `overfitting` flag may be set here).
    pub(crate) fn end_epoch(&mut self, spec: &ValidSpec, record: &mut EpochRecord) {
        let ts = spec.spec();
        let window = overfitting_window(ts.early_stopping.as_ref());
        let (monitor, mode) = spec.monitor();
        let state = self;
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

    /// The outcome: history, best epoch, and the final (or restored best) weights.
    pub(crate) fn finish(self) -> FitOutcome {
        let restore = self
            .model
            .spec()
            .early_stopping
            .as_ref()
            .is_some_and(|e| e.restore_best_weights);
        let history = self.history();
        let p = &self.progress;
        let (best_epoch, best_value) = match p.best {
            Some((e, v)) => (Some(e), Some(f64::from_bits(v))),
            None => (None, None),
        };
        let mut model = self.model;
        if let (true, Some(best)) = (restore, self.best_weights) {
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
}
