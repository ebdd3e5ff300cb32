//! A Keras-like `model.summary()`: per layer its name, kind, output shape and parameters.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::layers::encoding::How;
use crate::nn::layers::unique_names;
use crate::nn::model::Model;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct ModelSummary {
    /// The dataset's columns and how each becomes input values, when the model encodes
    /// them (a dataset with text or missing cells).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputSummary>,
    /// The labels of a text target, in the order of the output probabilities (for one
    /// sigmoid output: the probability is of the second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    pub layers: Vec<LayerSummary>,
    pub total_params: usize,
    pub trainable_params: usize,
    pub non_trainable_params: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct InputSummary {
    pub column: String,
    /// `standardize` (with `missing_indicator`), `one_hot` or `skip` (an identifier).
    pub encoding: String,
    /// Input values it becomes.
    pub width: usize,
    /// One-hot: the levels kept, after slot 0 for the out-of-vocabulary ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    #[serde(default)]
    pub missing_indicator: bool,
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
        let inputs = self.encoding().map_or_else(Vec::new, |e| {
            e.columns
                .iter()
                .map(|c| {
                    let (encoding, levels, indicator) = match &c.how {
                        How::Skip => ("skip", None, false),
                        How::Standardize { indicator, .. } => ("standardize", None, *indicator),
                        How::OneHot { kept, .. } => ("one_hot", Some(kept.clone()), false),
                    };
                    InputSummary {
                        column: c.name.clone(),
                        encoding: encoding.to_owned(),
                        width: c.how.width(),
                        levels,
                        missing_indicator: indicator,
                    }
                })
                .collect()
        });
        ModelSummary {
            inputs,
            class_names: self.class_names().map(<[String]>::to_vec),
            layers,
            total_params: trainable + frozen,
            trainable_params: trainable,
            non_trainable_params: frozen,
        }
    }
}
