//! A Keras-like `model.summary()`: per layer its name, kind, output shape and parameters.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::layers::unique_names;
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
        let mut width = self.net.input_width;
        let names = unique_names(self.net.layers.iter().map(|l| l.base_name()));
        for (layer, name) in self.net.layers.iter().zip(names) {
            width = layer.width(width);
            let (params, is_trainable) = layer.params();
            if is_trainable {
                trainable += params;
            } else {
                frozen += params;
            }
            layers.push(LayerSummary {
                name,
                kind: layer.kind().to_owned(),
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
