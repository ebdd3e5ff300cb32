//! Peak memory of a training run or a prediction, estimated from the spec and the row
//! counts alone, so a job that cannot fit is refused before anything is allocated.
//!
//! Training keeps, per parameter: the weights, one gradient per shard, the optimizer's
//! moments, the best-weights copy (early stopping with `restore_best_weights`), the best
//! trial's model (a batch-size sweep) and, while an epoch's checkpoint is encoded, one
//! more copy of weights, moments and best weights. Per layer and row of a batch it keeps
//! the pre-activation, the activation and its gradient (`docs/reliability.md` has the
//! formula and how it compares with measured peaks).

use std::fmt;

use crate::nn::layers::{encoding, unique_names, Cost, LayerSpec};
use crate::nn::model::CHUNK_ROWS;
use crate::nn::optim;
use crate::nn::spec::check::ValidSpec;
use crate::nn::train::step::shard_count_for;

const F32: u128 = 4;

/// Where the bytes of an estimate go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The whole peak, in bytes (saturated at `u64::MAX`).
    pub bytes: u64,
    /// The layer whose parameters and activations take the most (Keras-style name).
    pub dominant: Option<LayerShare>,
    /// The rows themselves: the dataset or its streaming budget, or a predict's inputs
    /// and outputs.
    pub data_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShare {
    pub name: String,
    pub parameters: u64,
    pub bytes: u64,
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", amount(self.bytes))?;
        let mut parts = Vec::new();
        if let Some(d) = &self.dominant {
            parts.push(format!(
                "layer {:?} with {} parameters takes {}",
                d.name,
                d.parameters,
                amount(d.bytes)
            ));
        }
        if self.data_bytes > 0 {
            parts.push(format!("the rows {}", human(self.data_bytes)));
        }
        if !parts.is_empty() {
            write!(f, " (of which {})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// [`human`], saying so when the figure saturated (it does not fit in 64 bits).
fn amount(bytes: u64) -> String {
    match bytes {
        u64::MAX => "more than 16 EiB".to_owned(),
        bytes => human(bytes),
    }
}

/// Bytes as a person reads them: `1.5 GiB`, `12.0 MiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One layer as the estimate sees it: its Keras-style name and what it costs.
struct LayerCost {
    name: String,
    cost: Cost,
}

fn layer_costs(layers: &[LayerSpec], features: usize) -> Vec<LayerCost> {
    let names = unique_names(layers.iter().filter_map(LayerSpec::base_name));
    let mut width = features as u128;
    let mut costs = Vec::new();
    for layer in layers {
        if let Some(cost) = layer.cost(width) {
            width = cost.width;
            costs.push(cost);
        }
    }
    costs
        .into_iter()
        .zip(names)
        .map(|(cost, name)| LayerCost { name, cost })
        .collect()
}

fn saturate(bytes: u128) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// A layer's name, parameters and bytes, before saturation.
type Share = (String, u128, u128);

fn dominant(shares: impl Iterator<Item = Share>) -> Option<LayerShare> {
    shares
        .max_by_key(|&(_, _, bytes)| bytes)
        .map(|(name, parameters, bytes)| LayerShare {
            name,
            parameters: saturate(parameters),
            bytes: saturate(bytes),
        })
}

/// Peak of a training job on `train_rows`/`validation_rows` rows whose data takes
/// `data_bytes` (the loaded dataset, or the streaming budget), over all its trials.
pub fn training_memory(
    spec: &ValidSpec,
    train_rows: usize,
    validation_rows: usize,
    data_bytes: u64,
) -> MemoryEstimate {
    let ts = spec.spec();
    let mut layers = layer_costs(&ts.model.layers, spec.input_width_bound());
    let tables = spec.embedding_values_bound() as u128;
    if tables > 0 {
        // The encoding's embedding tables: trained parameters, counted as a layer's are.
        let width = spec.input_width_bound() as u128;
        layers.insert(
            0,
            LayerCost {
                name: encoding::NAME.to_owned(),
                cost: Cost {
                    parameters: tables,
                    kernel: 0,
                    trained: tables,
                    width,
                    per_row_training: 2 * width,
                    per_row_forward: width,
                },
            },
        );
    }
    let moments = optim::build(&ts.optimizer).moments() as u128;
    let best = ts
        .early_stopping
        .as_ref()
        .is_some_and(|es| es.restore_best_weights) as u128;
    let best_trial = u128::from(spec.batch_sizes().len() > 1);
    let kernel_macs: u128 = layers.iter().map(|l| l.cost.kernel).sum();
    let features = spec.facts.features as u128;
    let row_io = features + spec.target_width() as u128 + 1;
    let val_capacity = validation_rows.min(CHUNK_ROWS) as u128;

    let mut worst: Option<(u128, Vec<Share>)> = None;
    for &batch_size in spec.batch_sizes() {
        // A batch size beyond the rows is one batch of all rows (as in Keras).
        let capacity = batch_size.min(train_rows.max(1));
        let shards = shard_count_for(kernel_macs, capacity) as u128;
        let rows = shards * capacity.div_ceil(shards as usize) as u128;
        let capacity = capacity as u128;
        let shares: Vec<_> = layers
            .iter()
            .map(|l| {
                // Weights, best weights, best trial; then the checkpoint's copy of
                // weights and best weights (its moments are counted with the trained).
                let copies = (1 + best + best_trial) + (1 + best);
                let buffers = l.cost.parameters * copies + l.cost.trained * (shards + 2 * moments);
                let activations =
                    rows * l.cost.per_row_training + val_capacity * l.cost.per_row_forward;
                (
                    l.name.clone(),
                    l.cost.parameters,
                    (buffers + activations) * F32,
                )
            })
            .collect();
        let batches = (capacity + val_capacity) * row_io * F32;
        let total = shares.iter().map(|s| s.2).sum::<u128>() + batches;
        if worst.as_ref().is_none_or(|(t, _)| total > *t) {
            worst = Some((total, shares));
        }
    }
    let (total, shares) = worst.unwrap_or_default();
    MemoryEstimate {
        bytes: saturate(total + u128::from(data_bytes)),
        dominant: dominant(shares.into_iter()),
        data_bytes,
    }
}

/// Peak of predicting `rows` rows with a trained model of this spec: the parsed inputs,
/// the outputs, one chunk's activations and the JSON text of the answer.
pub fn predict_memory(layers: &[LayerSpec], features: usize, rows: usize) -> MemoryEstimate {
    let layers = layer_costs(layers, features);
    let outputs = layers.last().map_or(features as u128, |l| l.cost.width);
    let chunk = rows.min(CHUNK_ROWS) as u128;
    let shares = layers.iter().map(|l| {
        (
            l.name.clone(),
            l.cost.parameters,
            chunk * l.cost.per_row_forward * F32,
        )
    });
    let shares: Vec<_> = shares.collect();
    // About 16 bytes of JSON per number answered (digits, separators, a class).
    let data = rows as u128 * (features as u128 * F32 + outputs * (F32 + 16));
    let total = shares.iter().map(|s| s.2).sum::<u128>() + data;
    MemoryEstimate {
        bytes: saturate(total),
        dominant: dominant(shares.into_iter()),
        data_bytes: saturate(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{DataShape, TrainingSpec};

    fn valid(layers: &str, extra: &str, features: usize, outputs: usize) -> ValidSpec {
        let text = format!(
            r#"{{"model": {{"layers": {layers}}}, "loss": "categorical_crossentropy",
                "optimizer": {{"type": "adam", "learning_rate": 0.001}} {extra}}}"#
        );
        let spec = TrainingSpec::from_json(&text).expect("spec parses");
        let shape = DataShape {
            rows: 1000,
            features,
            targets: outputs,
            target_min: vec![0.0; outputs],
            target_max: vec![1.0; outputs],
            target_integral: vec![true; outputs],
            columns: Vec::new(),
            class_names: None,
            missing_markers: None,
        };
        spec.validate(&shape).expect("spec is valid")
    }

    /// The formula of the module comment, by hand for a 10 → 5 → 2 network trained
    /// with Adam (two moments) in batches of 32, one shard, no best-weights copy.
    #[test]
    fn a_small_network_costs_what_the_formula_says() {
        let spec = valid(
            r#"[{"type": "dense", "units": 5, "activation": "relu"},
                {"type": "dense", "units": 2, "activation": "softmax"}]"#,
            r#", "batch_size": 32"#,
            10,
            2,
        );
        let e = training_memory(&spec, 100, 0, 4000);
        // Per parameter: weights + checkpoint copy (2) + gradient (1) + 2 moments and
        // their checkpoint copies (4); per batch row and unit: z, a and ∂a (3).
        let dense = (55 * (2 + 1 + 4) + 32 * 5 * 3) * 4;
        let dense_1 = (12 * (2 + 1 + 4) + 32 * 2 * 3) * 4;
        let batch = 32 * (10 + 2 + 1) * 4;
        assert_eq!(e.bytes, dense + dense_1 + batch + 4000);
        let d = e.dominant.expect("a dominant layer");
        assert_eq!(
            (d.name.as_str(), d.parameters, d.bytes),
            ("dense", 55, dense)
        );
    }

    #[test]
    fn a_batch_size_beyond_the_rows_is_sized_by_the_rows() {
        let layers = r#"[{"type": "dense", "units": 2, "activation": "softmax"}]"#;
        let huge = valid(layers, r#", "batch_size": 1000000000"#, 3, 2);
        let exact = valid(layers, r#", "batch_size": 50"#, 3, 2);
        assert_eq!(
            training_memory(&huge, 50, 0, 0),
            training_memory(&exact, 50, 0, 0)
        );
    }

    #[test]
    fn the_memory_bombs_are_tens_of_gigabytes_and_name_their_layer() {
        let spec = valid(
            r#"[{"type": "dense", "units": 100000, "activation": "relu"},
                {"type": "dense", "units": 100000, "activation": "relu"},
                {"type": "dense", "units": 3, "activation": "softmax"}]"#,
            "",
            4,
            3,
        );
        let e = training_memory(&spec, 1000, 0, 0);
        assert!(e.bytes > 40_000_000_000 * 7, "{e}");
        assert_eq!(e.dominant.as_ref().unwrap().name, "dense_1");
        let spec = valid(
            r#"[{"type": "dense", "units": 1000000000, "activation": "relu"},
                {"type": "dense", "units": 1000000000, "activation": "relu"},
                {"type": "dense", "units": 3, "activation": "softmax"}]"#,
            "",
            4,
            3,
        );
        assert_eq!(
            training_memory(&spec, 10, 0, 0).bytes,
            u64::MAX,
            "saturates"
        );
        assert!(predict_memory(&spec.spec().model.layers, 4, 1).bytes > 10_000_000_000);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(40 << 30), "40.0 GiB");
    }
}
