use ndarray::{Array2, ArrayView2};
use nnserve::nn::{
    fit, DataShape, EpochRecord, FitObserver, FitOptions, FitOutcome, Samples, TrainError,
    TrainingSpec, TrainingState, ValidSpec,
};
use serde_json::Value;

/// Records every epoch and the checkpoint bytes after it; can cancel after some epochs.
#[derive(Default)]
pub struct Recorder {
    pub records: Vec<EpochRecord>,
    pub checkpoints: Vec<Vec<u8>>,
    pub cancel_after_epochs: Option<usize>,
}

impl FitObserver for Recorder {
    fn on_epoch_end(&mut self, record: &EpochRecord, state: &TrainingState) {
        assert_eq!(state.epoch(), record.epoch);
        self.records.push(record.clone());
        self.checkpoints.push(state.to_bytes());
    }

    fn cancelled(&self) -> bool {
        self.cancel_after_epochs
            .is_some_and(|n| self.records.len() >= n)
    }
}

pub fn spec(json: Value) -> TrainingSpec {
    TrainingSpec::from_json(&json.to_string()).expect("spec parses")
}

pub fn validated(json: Value, x: ArrayView2<f32>, y: ArrayView2<f32>) -> ValidSpec {
    let shape = DataShape::of(&Samples::new(x.view(), y.view()));
    spec(json).validate(&shape).expect("spec is valid")
}

pub fn options(batch_size: usize) -> FitOptions {
    FitOptions {
        batch_size,
        threads: 1,
    }
}

pub fn train(
    json: Value,
    x: &Array2<f32>,
    y: &Array2<f32>,
) -> Result<(FitOutcome, Recorder), TrainError> {
    let valid = validated(json, x.view(), y.view());
    let mut rec = Recorder::default();
    let batch = valid.batch_sizes()[0];
    let out = fit(
        &valid,
        Samples::new(x.view(), y.view()),
        None,
        &options(batch),
        &mut rec,
    )?;
    Ok((out, rec))
}

/// A small deterministic generator for test data (LCG + Box-Muller), independent of the engine.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }

    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn matrix(&mut self, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| self.normal() as f32)
    }
}

/// Three Gaussian blobs in 4-D with sparse labels.
pub fn blobs(rows: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
    let mut g = Gen::new(seed);
    let mut x = g.matrix(rows, 4);
    let y = Array2::from_shape_fn((rows, 1), |(r, _)| (r % 3) as f32);
    for r in 0..rows {
        x[[r, r % 3]] += 2.5;
    }
    (x, y)
}

/// Named f32 tensor from a model file.
pub fn tensor(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

/// Records equal in everything but wall time.
pub fn same_history(a: &[EpochRecord], b: &[EpochRecord]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let (mut x, mut y) = (x.clone(), y.clone());
        x.seconds = 0.0;
        y.seconds = 0.0;
        assert_eq!(x, y);
    }
}

/// Every tensor of a model file as raw bits, by name: bit-identity of the weights.
pub fn weight_bits(model: &nnserve::nn::Model) -> std::collections::BTreeMap<String, Vec<u32>> {
    let bytes = model.to_safetensors();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let bits = t
                .data()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, bits)
        })
        .collect()
}
