//! Same seed → same bits; resume after epoch k → the uninterrupted run's bits.

use nnserve::nn::{fit, resume, FitOptions, Samples, TrainError};
use serde_json::{json, Value};

use crate::common::{blobs, same_history, validated, weight_bits, Recorder};

fn full_spec() -> Value {
    json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 16, "activation": "relu", "kernel_regularizer": {"l2": 0.001}},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 8, "activation": "gelu"},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "metrics": ["accuracy"],
        "epochs": 7, "batch_size": 16, "validation_split": 0.2, "seed": 42,
        "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best_weights": true},
        "reduce_lr_on_plateau": {"monitor": "val_loss", "patience": 1, "factor": 0.5}
    })
}

fn run(
    spec: Value,
    threads: usize,
    cancel_after: Option<usize>,
) -> (Result<nnserve::nn::FitOutcome, TrainError>, Recorder) {
    let (x, y) = blobs(200, 3);
    let valid = validated(spec, x.view(), y.view());
    let mut rec = Recorder {
        cancel_after_epochs: cancel_after,
        ..Default::default()
    };
    let out = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &FitOptions {
            batch_size: 16,
            threads,
        },
        &mut rec,
    );
    (out, rec)
}

#[test]
fn two_runs_with_one_seed_are_bit_identical() {
    for threads in [1, 2] {
        let (a, ra) = run(full_spec(), threads, None);
        let (b, _) = run(full_spec(), threads, None);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(weight_bits(&a.model), weight_bits(&b.model));
        same_history(&a.history, &b.history);
        same_history(&a.history, &ra.records);
        assert_eq!(
            (a.best_epoch, a.stopped_early),
            (b.best_epoch, b.stopped_early)
        );
    }
    let mut other = full_spec();
    other["seed"] = json!(43);
    let (a, _) = run(full_spec(), 1, None);
    let (c, _) = run(other, 1, None);
    assert_ne!(
        weight_bits(&a.unwrap().model),
        weight_bits(&c.unwrap().model)
    );
}

/// Batches big enough to be split into two shards (this one: 64 rows of ~135k
/// multiply-adds) run them in turn on one thread and side by side on two: same bits.
#[test]
fn one_and_two_threads_give_identical_weights_with_sharded_batches() {
    let spec = json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 512, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"],
        "epochs": 2, "batch_size": 64, "validation_split": 0.2, "seed": 7
    });
    // 300 rows: 240 training rows, so the last batch (48 rows) is short.
    let (x, y) = blobs(300, 5);
    let valid = validated(spec, x.view(), y.view());
    let run = |threads: usize| {
        let mut rec = Recorder::default();
        let opts = FitOptions {
            batch_size: 64,
            threads,
        };
        fit(
            &valid,
            Samples::new(x.view(), y.view()),
            None,
            &opts,
            &mut rec,
        )
        .unwrap()
    };
    let (one, two) = (run(1), run(2));
    // As the service runs a job: on a pool of its own.
    let pooled = nnserve::nn::on_job_threads(2, || run(2));
    assert_eq!(weight_bits(&one.model), weight_bits(&two.model));
    assert_eq!(weight_bits(&one.model), weight_bits(&pooled.model));
    same_history(&one.history, &two.history);
    same_history(&one.history, &pooled.history);
    assert!(
        one.history[1].loss < one.history[0].loss,
        "{:?}",
        one.history
    );
}

#[test]
fn resume_after_epoch_three_is_bit_identical() {
    let (full, _) = run(full_spec(), 1, None);
    let full = full.unwrap();
    let (stopped, rec) = run(full_spec(), 1, Some(3));
    assert_eq!(
        stopped.unwrap_err(),
        TrainError::Cancelled { epochs_done: 3 }
    );
    let checkpoint = &rec.checkpoints[2];

    let (x, y) = blobs(200, 3);
    let valid = validated(full_spec(), x.view(), y.view());
    let mut rest = Recorder::default();
    let opts = FitOptions {
        batch_size: 16,
        threads: 1,
    };
    let resumed = resume(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &opts,
        checkpoint,
        &mut rest,
    )
    .unwrap();
    assert_eq!(weight_bits(&resumed.model), weight_bits(&full.model));
    same_history(&resumed.history, &full.history);
    same_history(&rest.records, &full.history[3..]);
    assert_eq!(
        (resumed.best_epoch, resumed.best_value),
        (full.best_epoch, full.best_value)
    );

    // A checkpoint of another spec or batch size is refused.
    let mut other = full_spec();
    other["seed"] = json!(1);
    let other = validated(other, x.view(), y.view());
    let err = resume(
        &other,
        Samples::new(x.view(), y.view()),
        None,
        &opts,
        checkpoint,
        &mut Recorder::default(),
    );
    assert!(matches!(err, Err(TrainError::Checkpoint(_))));
    let wrong = FitOptions {
        batch_size: 8,
        threads: 1,
    };
    let err = resume(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &wrong,
        checkpoint,
        &mut Recorder::default(),
    );
    assert!(matches!(err, Err(TrainError::Checkpoint(_))));
    let err = resume(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &opts,
        b"junk",
        &mut Recorder::default(),
    );
    assert!(matches!(err, Err(TrainError::Checkpoint(_))));

    // A checkpoint of the previous format (other dropout masks) is refused by name
    // rather than resumed into a different run. Same length, so the header stays valid.
    let mut old = checkpoint.clone();
    let needle = br#""version":"2""#;
    let at = old
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the version is in the header");
    old[at + needle.len() - 2] = b'1';
    let err = resume(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &opts,
        &old,
        &mut Recorder::default(),
    );
    match err {
        Err(TrainError::Checkpoint(m)) => assert!(m.contains("version 1"), "{m}"),
        other => panic!("{:?}", other.map(|o| o.history)),
    }
}

#[test]
fn a_batch_size_beyond_the_rows_is_one_full_batch() {
    let (x, y) = blobs(30, 4);
    let spec = |b: usize| {
        json!({
            "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
            "loss": "sparse_categorical_crossentropy", "epochs": 3, "batch_size": b
        })
    };
    let run = |b: usize| {
        let valid = validated(spec(b), x.view(), y.view());
        let opts = FitOptions {
            batch_size: b,
            threads: 1,
        };
        fit(
            &valid,
            Samples::new(x.view(), y.view()),
            None,
            &opts,
            &mut Recorder::default(),
        )
        .unwrap()
    };
    let (huge, exact) = (run(1 << 40), run(30));
    assert_eq!(weight_bits(&huge.model), weight_bits(&exact.model));
    same_history(&huge.history, &exact.history);
}

/// An embedded column's table is trained, checkpointed and resumed like any weight: the
/// resumed run ends on the uninterrupted run's bits, tables included, and the saved model
/// predicts as the trained one.
#[test]
fn resume_with_an_embedded_column_is_bit_identical() {
    use nnserve::nn::{cell, Column, ColumnKind, DataShape, Model};
    let levels: Vec<String> = ["red", "green", "blue", "cyan", "gold"]
        .map(String::from)
        .to_vec();
    let rows = 300;
    let x = ndarray::Array2::from_shape_fn((rows, 2), |(r, c)| match c {
        0 => cell::level((r * 7 % 5) as u32),
        _ => (r % 11) as f32 * 0.3,
    });
    // The class is the colour's index mod 3: only the embedding can tell.
    let y = ndarray::Array2::from_shape_fn((rows, 1), |(r, _)| (r * 7 % 5 % 3) as f32);
    let mut shape = DataShape::of(&Samples::new(x.view(), y.view()));
    shape.columns = vec![
        Column {
            name: "colour".into(),
            kind: ColumnKind::Category { levels },
            has_missing: false,
        },
        Column {
            name: "size".into(),
            kind: ColumnKind::Number,
            has_missing: false,
        },
    ];
    let json = json!({
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "tanh"},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "features": {"colour": {"type": "string_categorical", "output_mode": "embedding", "embedding_dim": 3}},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.05},
        "metrics": ["accuracy"],
        "epochs": 6, "batch_size": 32, "validation_split": 0.2, "seed": 5
    });
    let valid = crate::common::spec(json).validate(&shape).unwrap();
    let opts = FitOptions {
        batch_size: 32,
        threads: 1,
    };
    let samples = || Samples::new(x.view(), y.view());
    let mut all = Recorder::default();
    let full = fit(&valid, samples(), None, &opts, &mut all).unwrap();
    let mut first = Recorder {
        cancel_after_epochs: Some(3),
        ..Default::default()
    };
    let stopped = fit(&valid, samples(), None, &opts, &mut first).unwrap_err();
    assert_eq!(stopped, TrainError::Cancelled { epochs_done: 3 });
    let mut rest = Recorder::default();
    let resumed = resume(
        &valid,
        samples(),
        None,
        &opts,
        &first.checkpoints[2],
        &mut rest,
    )
    .unwrap();
    let bits = weight_bits(&full.model);
    let table = &bits["encoding.colour.embeddings"];
    assert_eq!(
        table.len(),
        (1 + 5) * 3,
        "an out-of-vocabulary row and one per colour"
    );
    assert_eq!(weight_bits(&resumed.model), bits);
    same_history(&resumed.history, &full.history);
    let last = full.history.last().unwrap();
    assert!(last.metrics["val_accuracy"] > 0.9, "{last:?}");

    let saved = Model::from_safetensors(&full.model.to_safetensors()).unwrap();
    assert_eq!(weight_bits(&saved), bits);
    assert_eq!(
        saved.predict(x.view()).unwrap(),
        full.model.predict(x.view()).unwrap()
    );
}
