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
    /// The column, or for a cross its columns joined by `_X_` (as Keras names it).
    pub column: String,
    /// `standardize`, `rescale`, `discretize`, `one_hot`, `hashed`, `cross` or `skip` (an
    /// identifier or an excluded column).
    pub encoding: String,
    /// Input values it becomes.
    pub width: usize,
    /// One-hot: the levels kept, after the out-of-vocabulary slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    /// Discretize: the bin boundaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_boundaries: Option<Vec<f32>>,
    /// The last input is 1 for a missing cell.
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
            let columns = e.columns.iter().map(|c| {
                let (encoding, indicator) = match &c.how {
                    How::Skip => ("skip", false),
                    How::Standardize { indicator, .. } => ("standardize", *indicator),
                    How::Rescale { indicator, .. } => ("rescale", *indicator),
                    How::Discretize { indicator, .. } => ("discretize", *indicator),
                    How::OneHot { indicator, .. } => ("one_hot", *indicator),
                    How::Embed { indicator, .. } => ("embedding", *indicator),
                    How::Hashed { indicator, .. } => ("hashed", *indicator),
                };
                InputSummary {
                    column: c.name.clone(),
                    encoding: encoding.to_owned(),
                    width: c.how.width(),
                    levels: match &c.how {
                        How::OneHot { kept, .. } | How::Embed { kept, .. } => Some(kept.clone()),
                        _ => None,
                    },
                    bin_boundaries: match &c.how {
                        How::Discretize { boundaries, .. } => Some(boundaries.clone()),
                        _ => None,
                    },
                    missing_indicator: indicator,
                }
            });
            let crosses = e.crosses.iter().map(|cross| InputSummary {
                column: cross
                    .columns
                    .iter()
                    .map(|&i| e.columns[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join("_X_"),
                encoding: "cross".to_owned(),
                width: cross.crossing_dim,
                levels: None,
                bin_boundaries: None,
                missing_indicator: false,
            });
            columns.chain(crosses).collect()
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
