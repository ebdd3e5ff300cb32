//! Keras' `EarlyStopping` and `ReduceLROnPlateau`, and the overfitting detector.
//!
//! Only the changing part of each callback is serialisable state; the settings come
//! from the spec again on resume.

use serde::{Deserialize, Serialize};

use crate::nn::spec::check::Mode;
use crate::nn::spec::{EarlyStoppingSpec, ReduceLrSpec};
use crate::nn::train::record::EpochRecord;

/// Overfitting window when no early-stopping patience is set.
pub const DEFAULT_OVERFITTING_WINDOW: usize = 3;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct EarlyStoppingState {
    /// Best monitored value so far, as f64 bits (exact round trip).
    best: Option<u64>,
    pub best_epoch: Option<usize>,
    wait: usize,
}

/// What the loop must do after an epoch.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Verdict {
    /// Copy the current weights as the best ones.
    pub snapshot: bool,
    pub stop: bool,
}

/// Keras semantics: an epoch improves if it beats the best by more than `min_delta`;
/// `wait` counts epochs since, and training stops once `wait ≥ patience` (never after
/// the first epoch). Epochs before `start_from_epoch` are ignored.
pub(crate) fn early_stopping(
    spec: &EarlyStoppingSpec,
    state: &mut EarlyStoppingState,
    record: &EpochRecord,
) -> Verdict {
    let mode = Mode::resolve(spec.mode, &spec.monitor);
    let epoch0 = record.epoch - 1;
    let Some(current) = record.get(&spec.monitor) else {
        return Verdict::default();
    };
    if epoch0 < spec.start_from_epoch {
        return Verdict::default();
    }
    let delta = spec.min_delta.abs();
    let improves = |value: f64, reference: Option<f64>| match (reference, mode) {
        (None, _) => true,
        (Some(r), Mode::Min) => value + delta < r,
        (Some(r), Mode::Max) => value - delta > r,
    };
    let mut verdict = Verdict::default();
    if spec.restore_best_weights && state.best_epoch.is_none() {
        verdict.snapshot = true;
        state.best_epoch = Some(record.epoch);
    }
    state.wait += 1;
    if improves(current, state.best.map(f64::from_bits)) {
        state.best = Some(current.to_bits());
        state.best_epoch = Some(record.epoch);
        verdict.snapshot = spec.restore_best_weights;
        if spec.baseline.is_none() || improves(current, spec.baseline) {
            state.wait = 0;
        }
        return verdict;
    }
    verdict.stop = state.wait >= spec.patience && epoch0 > 0;
    verdict
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct ReduceLrState {
    best: Option<u64>,
    wait: usize,
    cooldown: usize,
}

/// Keras semantics: after `patience` epochs without an improvement of more than
/// `min_delta`, the rate becomes `max(rate·factor, min_lr)`, then `cooldown` epochs pass
/// before counting again. Returns the new rate.
pub(crate) fn reduce_lr(
    spec: &ReduceLrSpec,
    state: &mut ReduceLrState,
    record: &EpochRecord,
    lr: f32,
) -> f32 {
    let Some(current) = record.get(&spec.monitor) else {
        return lr;
    };
    let mode = Mode::resolve(spec.mode, &spec.monitor);
    let better = match (state.best.map(f64::from_bits), mode) {
        (None, _) => true,
        (Some(b), Mode::Min) => current < b - spec.min_delta,
        (Some(b), Mode::Max) => current > b + spec.min_delta,
    };
    if state.cooldown > 0 {
        state.cooldown -= 1;
        state.wait = 0;
    }
    if better {
        state.best = Some(current.to_bits());
        state.wait = 0;
    } else if state.cooldown == 0 {
        state.wait += 1;
        if state.wait >= spec.patience && lr > spec.min_lr as f32 {
            state.cooldown = spec.cooldown;
            state.wait = 0;
            return (f64::from(lr) * spec.factor).max(spec.min_lr) as f32;
        }
    }
    lr
}

/// The epoch where overfitting began, if the history ending now shows it.
///
/// With window `w`: epoch `s` (1-based) is where overfitting began when `val_loss` rose
/// at each of the `w` epochs `s, s+1, …, s+w−1` (each higher than the one before) while
/// the training loss fell at each of them. It is known at the end of epoch `s+w−1`,
/// the last one of `history`; the caller marks only the first such `s` of a run.
pub fn overfitting_start(history: &[EpochRecord], window: usize) -> Option<usize> {
    let w = window.max(1);
    if history.len() < w + 1 {
        return None;
    }
    let tail = &history[history.len() - w - 1..];
    let rising = tail
        .windows(2)
        .all(|p| match (p[0].val_loss, p[1].val_loss) {
            (Some(a), Some(b)) => b > a && p[1].loss < p[0].loss,
            _ => false,
        });
    rising.then(|| tail[1].epoch)
}

/// The window: early-stopping patience when set (at least 1), else the default.
pub(crate) fn overfitting_window(es: Option<&EarlyStoppingSpec>) -> usize {
    es.map_or(DEFAULT_OVERFITTING_WINDOW, |e| e.patience.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::spec::ModeSpec;

    fn record(epoch: usize, loss: f64, val_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            loss,
            val_loss: Some(val_loss),
            metrics: Default::default(),
            learning_rate: 0.1,
            seconds: 0.0,
            overfitting: false,
        }
    }

    fn es(patience: usize) -> EarlyStoppingSpec {
        EarlyStoppingSpec {
            monitor: "val_loss".into(),
            mode: ModeSpec::Auto,
            min_delta: 0.0,
            patience,
            baseline: None,
            start_from_epoch: 0,
            restore_best_weights: true,
        }
    }

    /// Feeds a val_loss sequence; returns (stop epoch, best epoch, snapshot epochs).
    fn run(spec: &EarlyStoppingSpec, vals: &[f64]) -> (Option<usize>, Option<usize>, Vec<usize>) {
        let mut state = EarlyStoppingState::default();
        let mut snaps = Vec::new();
        for (i, &v) in vals.iter().enumerate() {
            let verdict = early_stopping(spec, &mut state, &record(i + 1, 1.0, v));
            if verdict.snapshot {
                snaps.push(i + 1);
            }
            if verdict.stop {
                return (Some(i + 1), state.best_epoch, snaps);
            }
        }
        (None, state.best_epoch, snaps)
    }

    #[test]
    fn early_stopping_stops_after_patience_epochs_without_improvement() {
        let vals = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.6];
        assert_eq!(run(&es(3), &vals), (Some(6), Some(3), vec![1, 2, 3]));
        assert_eq!(run(&es(0), &vals), (Some(4), Some(3), vec![1, 2, 3]));
        assert_eq!(run(&es(4), &vals), (None, Some(7), vec![1, 2, 3, 7]));
        // min_delta: 0.75 → 0.7 is not an improvement of more than 0.1.
        let spec = EarlyStoppingSpec {
            min_delta: 0.1,
            ..es(1)
        };
        assert_eq!(
            run(&spec, &[0.8, 0.75, 0.7, 0.5]),
            (Some(2), Some(1), vec![1])
        );
        // Not before start_from_epoch; max mode for accuracy.
        let spec = EarlyStoppingSpec {
            start_from_epoch: 2,
            ..es(1)
        };
        assert_eq!(
            run(&spec, &[1.0, 2.0, 3.0, 4.0]),
            (Some(4), Some(3), vec![3])
        );
        let mut acc = EarlyStoppingSpec {
            monitor: "val_accuracy".into(),
            ..es(1)
        };
        acc.restore_best_weights = false;
        let mut state = EarlyStoppingState::default();
        let mut stops = Vec::new();
        for (i, a) in [0.5, 0.6, 0.55].iter().enumerate() {
            let mut r = record(i + 1, 1.0, 1.0);
            r.metrics.insert("val_accuracy".into(), *a);
            stops.push(early_stopping(&acc, &mut state, &r).stop);
        }
        assert_eq!(stops, [false, false, true]);
        assert_eq!(state.best_epoch, Some(2));
    }

    #[test]
    fn baseline_keeps_counting_until_beaten() {
        let spec = EarlyStoppingSpec {
            baseline: Some(0.5),
            ..es(2)
        };
        // Improving on the best but not on the baseline does not reset the count.
        assert_eq!(run(&spec, &[0.9, 0.95, 0.96, 0.4]).0, Some(2));
        assert_eq!(run(&spec, &[0.9, 0.8, 0.7, 0.4]).0, None);
    }

    #[test]
    fn reduce_lr_on_plateau_follows_keras() {
        let spec = ReduceLrSpec {
            monitor: "val_loss".into(),
            mode: ModeSpec::Auto,
            factor: 0.5,
            patience: 2,
            min_delta: 1e-4,
            cooldown: 1,
            min_lr: 0.1,
        };
        let mut state = ReduceLrState::default();
        let mut lr = 1.0f32;
        let mut rates = Vec::new();
        let vals = [
            1.0, 0.9, 0.90005, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9,
        ];
        for (i, &v) in vals.iter().enumerate() {
            lr = reduce_lr(&spec, &mut state, &record(i + 1, 1.0, v), lr);
            rates.push(lr);
        }
        // Reduced after two stale epochs, then one cooldown epoch, then two more stale, ...
        // until min_lr.
        assert_eq!(
            rates,
            [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.1, 0.1, 0.1]
        );
        let mut low = ReduceLrState::default();
        let mut lr = 0.15f32;
        for (i, v) in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
            lr = reduce_lr(&spec, &mut low, &record(i + 1, 1.0, *v), lr);
        }
        assert_eq!(lr, 0.1, "clamped at min_lr and not reduced below it");
    }

    #[test]
    fn overfitting_starts_where_validation_loss_began_to_rise() {
        let seq = [
            (1.0, 1.0),
            (0.8, 0.7),
            (0.6, 0.75),
            (0.5, 0.8),
            (0.4, 0.9),
            (0.3, 1.0),
        ];
        let hist: Vec<EpochRecord> = seq
            .iter()
            .enumerate()
            .map(|(i, &(l, v))| record(i + 1, l, v))
            .collect();
        assert_eq!(overfitting_start(&hist[..4], 3), None);
        assert_eq!(overfitting_start(&hist[..5], 3), Some(3));
        assert_eq!(overfitting_start(&hist[..3], 1), Some(3));
        // Training loss not falling: not overfitting, just a worse model.
        let mut flat = hist.clone();
        flat[3].loss = 0.7;
        assert_eq!(overfitting_start(&flat[..5], 3), None);
    }
}
