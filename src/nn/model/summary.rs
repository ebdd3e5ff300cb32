//! A Keras-like `model.summary()`: per layer its name, kind, output shape and parameters.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::model::network::Layer;
use crate::nn::model::Model;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ModelSummary {
    pub layers: Vec<LayerSummary>,
    pub total_params: usize,
    pub trainable_params: usize,
    pub non_trainable_params: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct LayerSummary {
    /// Keras-style unique name: `dense`, `dense_1`, `dropout`, ...
    pub name: String,
    /// `Dense`, `Dropout` or `Normalization`.
    pub kind: String,
    /// `[null, width]`: the batch dimension is open.
    pub output_shape: Vec<Option<usize>>,
    pub params: usize,
}

impl Model {
    pub fn summary(&self) -> ModelSummary {
        let mut layers = Vec::new();
        let (mut trainable, mut frozen) = (0, 0);
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        let mut width = self.net.input_width;
        for layer in &self.net.layers {
            width = layer.width(width);
            let (base, kind, params, is_trainable) = match layer {
                Layer::Dense(d) => ("dense", "Dense", d.params(), true),
                Layer::Dropout(_) => ("dropout", "Dropout", 0, true),
                // Keras counts mean, variance and the sample count as non-trainable weights.
                Layer::Normalization(n) => {
                    ("normalization", "Normalization", 2 * n.width() + 1, false)
                }
            };
            let n = seen.entry(base).or_default();
            let name = if *n == 0 {
                base.to_owned()
            } else {
                format!("{base}_{n}")
            };
            *n += 1;
            if is_trainable {
                trainable += params;
            } else {
                frozen += params;
            }
            layers.push(LayerSummary {
                name,
                kind: kind.to_owned(),
                output_shape: vec![None, Some(width)],
                params,
            });
        }
        ModelSummary {
            layers,
            total_params: trainable + frozen,
            trainable_params: trainable,
            non_trainable_params: frozen,
        }
    }
}
