//! The optimizer part of the spec: `"adam"` or `{"type": "adam", ...}`, Keras defaults.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::optim::{AdamSpec, AdamWSpec, RmsPropSpec, SgdSpec};
use crate::nn::spec::check::positive;

#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OptimizerSpec {
    Sgd(SgdSpec),
    Adam(AdamSpec),
    #[serde(rename = "adamw")]
    AdamW(AdamWSpec),
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropSpec),
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Adam(AdamSpec::default())
    }
}

impl OptimizerSpec {
    pub fn learning_rate(&self) -> f64 {
        match self {
            OptimizerSpec::Sgd(s) => s.learning_rate,
            OptimizerSpec::Adam(s) => s.learning_rate,
            OptimizerSpec::AdamW(s) => s.learning_rate,
            OptimizerSpec::RmsProp(s) => s.learning_rate,
        }
    }

    pub(crate) fn check(&self) -> Result<(), SpecError> {
        positive("optimizer.learning_rate", self.learning_rate())?;
        match self {
            OptimizerSpec::Sgd(s) => s.check(),
            OptimizerSpec::Adam(s) => s.check(),
            OptimizerSpec::AdamW(s) => s.check(),
            OptimizerSpec::RmsProp(s) => s.check(),
        }
    }
}

/// The object form, derived so serde reports unknown types and fields precisely.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Tagged {
    Sgd(SgdSpec),
    Adam(AdamSpec),
    #[serde(rename = "adamw")]
    AdamW(AdamWSpec),
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropSpec),
}

impl From<Tagged> for OptimizerSpec {
    fn from(t: Tagged) -> Self {
        match t {
            Tagged::Sgd(s) => OptimizerSpec::Sgd(s),
            Tagged::Adam(s) => OptimizerSpec::Adam(s),
            Tagged::AdamW(s) => OptimizerSpec::AdamW(s),
            Tagged::RmsProp(s) => OptimizerSpec::RmsProp(s),
        }
    }
}

impl<'de> Deserialize<'de> for OptimizerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OptimizerVisitor)
    }
}

struct OptimizerVisitor;

impl<'de> Visitor<'de> for OptimizerVisitor {
    type Value = OptimizerSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            r#"an optimizer name ("sgd", "adam", "adamw", "rmsprop") or {"type": ..., options}"#,
        )
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<OptimizerSpec, E> {
        match name {
            "sgd" => Ok(OptimizerSpec::Sgd(SgdSpec::default())),
            "adam" => Ok(OptimizerSpec::Adam(AdamSpec::default())),
            "adamw" => Ok(OptimizerSpec::AdamW(AdamWSpec::default())),
            "rmsprop" => Ok(OptimizerSpec::RmsProp(RmsPropSpec::default())),
            other => Err(E::unknown_variant(
                other,
                &["sgd", "adam", "adamw", "rmsprop"],
            )),
        }
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<OptimizerSpec, M::Error> {
        Tagged::deserialize(de::value::MapAccessDeserializer::new(map)).map(Into::into)
    }
}
