//! The optimizer part of the spec: `"adam"` or `{"type": "adam", ...}`, Keras defaults.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
}

/// Keras `SGD`: learning_rate 0.01, momentum 0, nesterov false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SgdSpec {
    pub learning_rate: f64,
    pub momentum: f64,
    pub nesterov: bool,
}

impl Default for SgdSpec {
    fn default() -> Self {
        SgdSpec {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }
}

/// Keras `Adam`: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamSpec {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamSpec {
    fn default() -> Self {
        AdamSpec {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// Keras `AdamW`: Adam's defaults plus weight_decay 0.004 (decoupled, scaled by the rate).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWSpec {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamWSpec {
    fn default() -> Self {
        AdamWSpec {
            learning_rate: 0.001,
            weight_decay: 0.004,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// Keras `RMSprop`: learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7, centered false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RmsPropSpec {
    pub learning_rate: f64,
    pub rho: f64,
    pub momentum: f64,
    pub epsilon: f64,
    pub centered: bool,
}

impl Default for RmsPropSpec {
    fn default() -> Self {
        RmsPropSpec {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
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
