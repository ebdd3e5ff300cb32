//! Parsing a spec from JSON with the path of the first problem in the message.

use crate::nn::error::SpecError;
use crate::nn::spec::{FeatureConfig, FeatureType, LayerSpec, TrainingSpec};

impl TrainingSpec {
    /// Parse JSON, naming the path of the first problem (`model.layers[1].activation: ...`).
    pub fn from_json(text: &str) -> Result<TrainingSpec, SpecError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SpecError::Parse {
                path: ".".to_owned(),
                message: e.to_string(),
            })?;
        // serde buffers internally tagged enums and loses the path inside them, so each
        // layer's body is checked on its own first to name the exact field.
        if let Some(layers) = value
            .pointer("/model/layers")
            .and_then(serde_json::Value::as_array)
        {
            for (i, layer) in layers.iter().enumerate() {
                check_layer_body(layer).map_err(|e| SpecError::Parse {
                    path: format!("model.layers[{i}]{}", e.0),
                    message: e.1,
                })?;
            }
        }
        // `features` values are a type name or an object (an untagged enum, whose own error
        // names neither the field nor the problem).
        if let Some(features) = value.get("features").and_then(serde_json::Value::as_object) {
            for (name, feature) in features {
                check_feature_body(feature).map_err(|e| SpecError::Parse {
                    path: format!("features.{name}{}", e.0),
                    message: e.1,
                })?;
            }
        }
        serde_path_to_error::deserialize(value).map_err(|e| SpecError::Parse {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }
}

/// (".field" suffix, message) of the first problem in one layer object's body.
fn check_layer_body(layer: &serde_json::Value) -> Result<(), (String, String)> {
    let Some(object) = layer.as_object() else {
        return Ok(());
    };
    let mut body = object.clone();
    // Unknown or missing types are reported by the full parse.
    let Some(serde_json::Value::String(kind)) = body.remove("type") else {
        return Ok(());
    };
    LayerSpec::check_body(&kind, serde_json::Value::Object(body)).map_err(located)
}

/// (".field" suffix, message) of an error inside one object.
fn located(e: serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let path = e.path().to_string();
    let suffix = if path == "." {
        String::new()
    } else {
        format!(".{path}")
    };
    (suffix, e.inner().to_string())
}

/// (".field" suffix, message) of the first problem in one `features` value.
fn check_feature_body(feature: &serde_json::Value) -> Result<(), (String, String)> {
    match feature {
        serde_json::Value::String(_) => {
            serde_path_to_error::deserialize::<_, FeatureType>(feature.clone()).map(drop)
        }
        serde_json::Value::Object(_) => {
            serde_path_to_error::deserialize::<_, FeatureConfig>(feature.clone()).map(drop)
        }
        _ => {
            return Err((
                String::new(),
                "expected a feature type such as \"float_normalized\", or an object with \
                 `type` and its options"
                    .to_owned(),
            ))
        }
    }
    .map_err(located)
}
