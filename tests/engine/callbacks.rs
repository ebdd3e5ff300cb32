//! Early stopping, learning-rate reduction, overfitting, class weights, divergence
//! and cancellation, through `fit`.

use ndarray::Array2;
use nnserve::nn::{fit, EpochRecord, FitObserver, Model, Samples, TrainError, TrainingState};
use serde_json::json;

use crate::common::{blobs, options, train, validated, weight_bits, Gen, Recorder};

/// Keeps each epoch's weights.
#[derive(Default)]
struct Snapshots(Vec<Model>, Vec<EpochRecord>);

impl FitObserver for Snapshots {
    fn on_epoch_end(&mut self, record: &EpochRecord, state: &TrainingState) {
        self.0.push(state.model().clone());
        self.1.push(record.clone());
    }

    fn cancelled(&self) -> bool {
        false
    }
}

/// Training targets y = x, validation targets y = −x: every epoch of training makes
/// the validation loss worse while the training loss falls.
fn diverging_validation(extra: serde_json::Value) -> (nnserve::nn::FitOutcome, Snapshots) {
    let mut g = Gen::new(5);
    let x = g.matrix(64, 1);
    let y = x.clone();
    let neg = x.mapv(|v| -v);
    let mut spec = json!({
        "model": {"layers": [{"type": "dense", "units": 1, "kernel_initializer": "zeros"}]},
        "loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "epochs": 8, "batch_size": 16, "shuffle": false,
        // Explicit validation data replaces the split; the split only makes val_* monitors valid.
        "validation_split": 0.5
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let valid = validated(spec, x.view(), y.view());
    let mut snaps = Snapshots::default();
    let out = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        Some(Samples::new(x.view(), neg.view())),
        &options(16),
        &mut snaps,
    )
    .unwrap();
    (out, snaps)
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights() {
    let es =
        json!({"early_stopping": {"monitor": "loss", "patience": 2, "restore_best_weights": true}});
    // Monitoring the training loss, which keeps falling: no stop.
    let (out, _) = diverging_validation(es);
    assert!(!out.stopped_early);
    assert_eq!(out.history.len(), 8);

    let es = json!({"early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best_weights": true}});
    let (out, snaps) = diverging_validation(es);
    let vals: Vec<f64> = out.history.iter().map(|r| r.val_loss.unwrap()).collect();
    assert!(vals.windows(2).all(|w| w[1] > w[0]), "{vals:?}");
    // Best is epoch 1; epochs 2 and 3 do not improve: stop after 3, restore epoch 1.
    assert!(out.stopped_early);
    assert_eq!(out.history.len(), 3);
    assert_eq!((out.best_epoch, out.best_value), (Some(1), Some(vals[0])));
    assert_eq!(out.model, snaps.0[0]);
    assert_ne!(out.model, snaps.0[2]);
    // Overfitting (window = patience = 2): val_loss rose in epochs 2 and 3 while loss fell.
    assert_eq!(out.overfitting_epoch, Some(2));
    let flags: Vec<bool> = out.history.iter().map(|r| r.overfitting).collect();
    assert_eq!(flags, [false, true, false]);
}

#[test]
fn reduce_lr_on_plateau_lowers_the_recorded_rate() {
    let rlr = json!({"reduce_lr_on_plateau": {"monitor": "val_loss", "patience": 1, "factor": 0.5}, "epochs": 4});
    let (out, _) = diverging_validation(rlr);
    let rates: Vec<f64> = out.history.iter().map(|r| r.learning_rate).collect();
    // Halved from the f32 rate each time, recorded as written.
    let base = 0.05;
    assert_eq!(rates, [base, base, 0.025, 0.0125]);
    // Without the callback the rate stays.
    let (plain, _) = diverging_validation(json!({"epochs": 3}));
    assert!(plain.history.iter().all(|r| r.learning_rate == base));
    // Default overfitting window of 3: rise in epochs 2, 3, 4 → began at 2.
    assert_eq!(out.overfitting_epoch, Some(2));
}

#[test]
fn class_weight_zero_ignores_a_class() {
    let (x, y) = blobs(150, 7);
    let base = json!({
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "optimizer": {"type": "adam", "learning_rate": 0.05},
        "epochs": 20, "batch_size": 16, "metrics": ["accuracy"]
    });
    let (plain, _) = train(base.clone(), &x, &y).unwrap();
    let mut weighted = base.clone();
    weighted["class_weight"] = json!({"0": 1.0, "1": 1.0, "2": 1.0});
    let (same, _) = train(weighted.clone(), &x, &y).unwrap();
    assert_eq!(
        weight_bits(&plain.model),
        weight_bits(&same.model),
        "unit weights change nothing"
    );
    weighted["class_weight"] = json!({"1": 0.0});
    let (out, _) = train(weighted, &x, &y).unwrap();
    let pred = out.model.predict(x.view()).unwrap();
    let classes = out.model.classes(pred.view()).unwrap();
    assert!(
        classes.iter().all(|&c| c != 1),
        "class 1 had no weight, yet is predicted"
    );
    let plain_classes = plain
        .model
        .classes(plain.model.predict(x.view()).unwrap().view())
        .unwrap();
    assert!(plain_classes.iter().filter(|&&c| c == 1).count() > 30);
}

#[test]
fn divergence_names_epoch_and_batch() {
    let mut g = Gen::new(9);
    let x = g.matrix(64, 3) * 100.0;
    let y = Array2::from_elem((64, 1), 1e6f32);
    let spec = json!({
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 1e6},
        "epochs": 5, "batch_size": 8
    });
    match train(spec, &x, &y) {
        Err(TrainError::Diverged { epoch: 1, batch }) => {
            assert!((2..=8).contains(&batch), "{batch}")
        }
        other => panic!(
            "expected divergence, got {:?}",
            other.map(|(o, _)| o.history)
        ),
    }
}

#[test]
fn cancellation_takes_effect_before_the_next_batch() {
    struct CancelAt(std::cell::Cell<usize>, usize);
    impl FitObserver for CancelAt {
        fn on_epoch_end(&mut self, _: &EpochRecord, _: &TrainingState) {
            panic!("no epoch should finish");
        }
        fn cancelled(&self) -> bool {
            self.0.set(self.0.get() + 1);
            self.0.get() > self.1
        }
    }
    let (x, y) = blobs(90, 1);
    let spec = json!({
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "epochs": 3, "batch_size": 10
    });
    let valid = validated(spec, x.view(), y.view());
    let mut obs = CancelAt(Default::default(), 4);
    let err = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &options(10),
        &mut obs,
    )
    .unwrap_err();
    assert_eq!(err, TrainError::Cancelled { epochs_done: 0 });
    assert_eq!(
        obs.0.get(),
        5,
        "polled once per batch, stopped at the first true"
    );
    let mut rec = Recorder {
        cancel_after_epochs: Some(2),
        ..Default::default()
    };
    let err = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &options(10),
        &mut rec,
    )
    .unwrap_err();
    assert_eq!(err, TrainError::Cancelled { epochs_done: 2 });
    assert_eq!(rec.records.len(), 2);
}
