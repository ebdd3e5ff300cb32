//! The dense layer's spec (Keras `Dense`), its checks and its memory cost.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::layers::{Cost, Place};
use crate::nn::ops::activation::Activation;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenseSpec {
    #[schema(minimum = 1)]
    pub units: usize,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub use_bias: bool,
    #[serde(default)]
    pub kernel_initializer: Initializer,
    #[serde(default)]
    pub kernel_regularizer: Option<RegularizerSpec>,
}

fn default_true() -> bool {
    true
}

/// `{"l1": x, "l2": y}`: adds `l1·Σ|w| + l2·Σw²` of the kernel to the loss.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegularizerSpec {
    #[serde(default)]
    pub l1: f64,
    #[serde(default)]
    pub l2: f64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Initializer {
    #[default]
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunNormal,
    Zeros,
}

impl DenseSpec {
    pub(crate) fn check(&self, place: &Place<'_>) -> Result<(), SpecError> {
        let at = place.at;
        if self.units == 0 {
            return Err(SpecError::range(format!("{at}.units"), "at least 1", 0));
        }
        if let Some(r) = self.kernel_regularizer {
            for (name, v) in [("l1", r.l1), ("l2", r.l2)] {
                if !(v.is_finite() && v >= 0.0) {
                    let field = format!("{at}.kernel_regularizer.{name}");
                    return Err(SpecError::range(field, "at least 0", v));
                }
            }
        }
        Ok(())
    }

    /// Kernel and bias; per row the pre-activation, the activation and (training) its
    /// gradient.
    pub(crate) fn cost(&self, width: u128) -> Cost {
        let units = self.units as u128;
        let kernel = width * units;
        let parameters = kernel + if self.use_bias { units } else { 0 };
        Cost {
            parameters,
            kernel,
            trained: parameters,
            width: units,
            per_row_training: 3 * units,
            per_row_forward: 2 * units,
        }
    }
}
