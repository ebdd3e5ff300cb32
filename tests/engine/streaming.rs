//! `fit_streaming` through the public API, against `fit` on the same rows.

use ndarray::Array2;
use nnserve::nn::{fit, fit_streaming, resume_streaming, ChunkSource, Samples, TrainError};
use serde_json::{json, Value};

use crate::common::{blobs, options, same_history, validated, weight_bits, Recorder};

/// Rows of a matrix served in chunks of the given sizes; fails reading chunk `fail_at`.
struct Chunks {
    rows: Array2<f32>,
    sizes: Vec<usize>,
    features: usize,
    fail_at: Option<usize>,
}

impl Chunks {
    fn new(x: &Array2<f32>, y: &Array2<f32>, sizes: &[usize]) -> Chunks {
        assert_eq!(sizes.iter().sum::<usize>(), x.nrows());
        Chunks {
            rows: ndarray::concatenate![ndarray::Axis(1), x.view(), y.view()],
            sizes: sizes.to_vec(),
            features: x.ncols(),
            fail_at: None,
        }
    }
}

impl ChunkSource for Chunks {
    fn columns(&self) -> (usize, usize) {
        (self.features, self.rows.ncols() - self.features)
    }

    fn chunk_rows(&self) -> &[usize] {
        &self.sizes
    }

    fn read_chunk(&mut self, idx: usize, buf: &mut Vec<f32>) -> Result<(), String> {
        if self.fail_at == Some(idx) {
            return Err("gone".to_owned());
        }
        let first: usize = self.sizes[..idx].iter().sum();
        let part = self
            .rows
            .slice(ndarray::s![first..first + self.sizes[idx], ..]);
        buf.clear();
        buf.extend(part.iter());
        Ok(())
    }
}

const SIZES: [usize; 5] = [90, 150, 7, 153, 200];

fn spec(epochs: usize, learning_rate: f64) -> Value {
    json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": learning_rate},
        "metrics": ["accuracy"],
        "epochs": epochs, "batch_size": 16, "validation_split": 0.2, "seed": 9
    })
}

/// ~100 rows' worth of budget: the buffer is the largest chunk, several chunks per epoch.
const BUDGET: usize = 100 * 5 * 4;

#[test]
fn streamed_runs_repeat_and_resume_bit_identically() {
    let (x, y) = blobs(600, 4);
    let valid = validated(spec(6, 0.01), x.view(), y.view());
    let run = |rec: &mut Recorder| {
        fit_streaming(
            &valid,
            &mut Chunks::new(&x, &y, &SIZES),
            &options(16),
            BUDGET,
            rec,
        )
    };
    let (mut a, mut b) = (Recorder::default(), Recorder::default());
    let out_a = run(&mut a).unwrap();
    let out_b = run(&mut b).unwrap();
    same_history(&out_a.history, &out_b.history);
    assert_eq!(weight_bits(&out_a.model), weight_bits(&out_b.model));

    let mut rest = Recorder::default();
    let resumed = resume_streaming(
        &valid,
        &mut Chunks::new(&x, &y, &SIZES),
        &options(16),
        BUDGET,
        &a.checkpoints[2],
        &mut rest,
    )
    .unwrap();
    same_history(&resumed.history, &out_a.history);
    assert_eq!(weight_bits(&resumed.model), weight_bits(&out_a.model));
}

#[test]
fn streaming_learns_like_fit() {
    let (x, y) = blobs(600, 5);
    let data = Samples::new(x.view(), y.view());
    let learn = validated(spec(8, 0.01), x.view(), y.view());
    let memory = fit(&learn, data, None, &options(16), &mut Recorder::default()).unwrap();
    let mut chunks = Chunks::new(&x, &y, &SIZES);
    let streamed = fit_streaming(
        &learn,
        &mut chunks,
        &options(16),
        BUDGET,
        &mut Recorder::default(),
    )
    .unwrap();
    let last = |h: &[nnserve::nn::EpochRecord]| h.last().unwrap().clone();
    let (m, s) = (last(&memory.history), last(&streamed.history));
    let (ma, sa) = (m.metrics["val_accuracy"], s.metrics["val_accuracy"]);
    assert!(
        sa > 0.85 && (ma - sa).abs() < 0.05,
        "val_accuracy {sa} streamed, {ma} in memory"
    );
}

#[test]
fn bad_rows_and_failed_reads_fail_as_in_memory() {
    let (x, mut y) = blobs(600, 6);
    let valid = validated(spec(2, 0.01), x.view(), y.view());
    y[[450, 0]] = 7.0;
    let in_memory = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &options(16),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let mut chunks = Chunks::new(&x, &y, &SIZES);
    let streamed = fit_streaming(
        &valid,
        &mut chunks,
        &options(16),
        BUDGET,
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert_eq!(streamed, in_memory);
    assert!(
        streamed.to_string().contains("target row 450"),
        "{streamed}"
    );

    y[[450, 0]] = 1.0;
    let mut chunks = Chunks::new(&x, &y, &SIZES);
    chunks.fail_at = Some(3);
    let failed = fit_streaming(
        &valid,
        &mut chunks,
        &options(16),
        BUDGET,
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert_eq!(failed, TrainError::Read("chunk 3: gone".to_owned()));
}
