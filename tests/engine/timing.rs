//! Manual timing of W1-shaped epochs (ignored by default; run in release):
//! `cargo test --release --test engine -- --ignored --nocapture w1_epoch_timing`
//! Set `W1_THREADS` (default 2) and `W1_EPOCHS` (default 2).

use ndarray::Array2;
use nnserve::nn::{fit, FitOptions, Samples};
use serde_json::json;

use crate::common::{validated, Gen, Recorder};

#[test]
#[ignore = "timing, run by hand in release"]
fn w1_epoch_timing() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (threads, epochs) = (env("W1_THREADS", 2), env("W1_EPOCHS", 2));
    let mut g = Gen::new(1);
    let x = Array2::from_shape_fn((60_000, 784), |_| g.uniform() as f32);
    // Labels from a fixed projection, so the task is learnable.
    let y = Array2::from_shape_fn((60_000, 1), |(r, _)| {
        let row = x.row(r);
        (0..10)
            .max_by(|&a, &b| row[a * 7].total_cmp(&row[b * 7]))
            .unwrap() as f32
    });
    let spec = json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"],
        "epochs": epochs, "batch_size": 128, "validation_split": 0.1
    });
    let valid = validated(spec, x.view(), y.view());
    let mut rec = Recorder::default();
    let started = std::time::Instant::now();
    // On a pool of the job's own, as the service runs a job.
    let out = nnserve::nn::on_job_threads(threads, || {
        fit(
            &valid,
            Samples::new(x.view(), y.view()),
            None,
            &FitOptions {
                batch_size: 128,
                threads,
            },
            &mut rec,
        )
    })
    .unwrap();
    for r in &out.history {
        println!(
            "epoch {} {:.3}s loss {:.4} val_accuracy {:.4}",
            r.epoch, r.seconds, r.loss, r.metrics["val_accuracy"]
        );
    }
    println!(
        "total with setup {:.3}s, threads {threads}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.history.iter().all(|r| r.loss.is_finite()));
}

/// W2 `tiny4`: per-batch overhead dominates.
/// `cargo test --release --test engine -- --ignored --nocapture w2_epoch_timing`
#[test]
#[ignore = "timing, run by hand in release"]
fn w2_epoch_timing() {
    let threads = std::env::var("W2_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut g = Gen::new(2);
    let x = g.matrix(10_000, 4);
    let y = Array2::from_shape_fn((10_000, 1), |(r, _)| {
        (x[[r, 0]] * x[[r, 1]]).sin() + 0.5 * x[[r, 2]] - x[[r, 3]].tanh()
    });
    let spec = json!({
        "model": {"layers": [
            {"type": "dense", "units": 16, "activation": "tanh"},
            {"type": "dense", "units": 16, "activation": "tanh"},
            {"type": "dense", "units": 1}
        ]},
        "loss": "mse", "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "epochs": 10, "batch_size": 32
    });
    let valid = validated(spec, x.view(), y.view());
    let out = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &FitOptions {
            batch_size: 32,
            threads,
        },
        &mut Recorder::default(),
    )
    .unwrap();
    let mut secs: Vec<f64> = out.history.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "W2 median epoch {:.4}s (min {:.4}s), final loss {:.4}, threads {threads}",
        secs[secs.len() / 2],
        secs[0],
        out.history.last().unwrap().loss
    );
    assert!(out.history.iter().all(|r| r.loss.is_finite()));
}
