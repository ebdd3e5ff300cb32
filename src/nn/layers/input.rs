//! Keras `Input(shape=…)`: an optional first layer that declares the feature count, so a
//! spec written for one dataset is refused on another. It builds no layer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::layers::Place;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub shape: Vec<usize>,
}

impl InputSpec {
    pub(crate) fn check(&self, place: &Place<'_>) -> Result<(), SpecError> {
        if place.index != 0 {
            return Err(SpecError::incompatible(
                place.at,
                "an input layer must come first",
            ));
        }
        if self.shape != [place.features] {
            return Err(SpecError::incompatible(
                format!("{}.shape", place.at),
                format!(
                    "the input shape is {:?} but the dataset has {} features",
                    self.shape, place.features
                ),
            ));
        }
        Ok(())
    }
}
