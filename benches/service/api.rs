//! Every route, flag and JSON field name of nnserve the benchmark relies on (issue 3), in one
//! place so that a change of the service's API is a change of this file only.

use serde_json::{json, Value};
use std::path::Path;

pub const HEALTH: &str = "/healthz";
pub const DATASETS: &str = "/datasets";
pub const JOBS: &str = "/jobs";

pub fn job(id: &str) -> String {
    format!("/jobs/{id}")
}

pub fn job_metrics(id: &str) -> String {
    format!("/jobs/{id}/metrics")
}

pub fn predict(model_id: &str) -> String {
    format!("/models/{model_id}/predict")
}

/// Query string of a CSV upload: dataset name and target column.
pub fn dataset_upload(name: &str, target: &str) -> String {
    format!("{DATASETS}?name={name}&target={target}")
}

/// Command-line arguments of the server binary. One worker: the measured job gets every core.
pub fn server_args(addr: &str, database: &Path) -> Vec<String> {
    vec![
        "--addr".into(),
        addr.into(),
        "--database-url".into(),
        database.display().to_string(),
        "--workers".into(),
        "1".into(),
    ]
}

pub fn field_str(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("response has no string field {key:?}: {v}"))
}

/// The dataset list, whether the service returns a bare array or a page object.
pub fn dataset_list(v: &Value) -> Vec<Value> {
    let list = if v.is_array() {
        v.as_array()
    } else {
        ["items", "datasets", "data"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array))
    };
    list.cloned().unwrap_or_default()
}

pub const DATASET_NAME: &str = "name";
pub const ID: &str = "id";
pub const JOB_STATUS: &str = "status";
pub const JOB_MODEL_ID: &str = "model_id";
pub const JOB_ERROR: &str = "error";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const TERMINAL_FAILURES: [&str; 2] = ["failed", "cancelled"];

/// One finished epoch as `GET /jobs/{id}/metrics` reports it.
#[derive(Debug, Clone)]
pub struct Epoch {
    pub seconds: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

pub fn epochs(metrics: &Value) -> Result<Vec<Epoch>, String> {
    let list = metrics
        .get("epochs")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("metrics have no \"epochs\" array: {metrics}"))?;
    list.iter()
        .map(|e| {
            let seconds = e
                .get("seconds")
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("epoch without \"seconds\": {e}"))?;
            Ok(Epoch {
                seconds,
                val_loss: e.get("val_loss").and_then(Value::as_f64),
                val_accuracy: e.get("val_accuracy").and_then(Value::as_f64),
            })
        })
        .collect()
}

/// W1 `mlp784`: the recipe of ../shared/bench (keras_anchor.py), in the engine's Keras names.
pub fn w1_job(dataset_id: &str, epochs: usize, seed: u64) -> Value {
    json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "metrics": ["accuracy"],
        "epochs": epochs,
        "batch_size": 128,
        "validation_split": 0.1,
        "shuffle": true,
        "seed": seed
    })
}

/// W2 `tiny4`.
pub fn w2_job(dataset_id: &str, epochs: usize, seed: u64) -> Value {
    json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "dense", "units": 16, "activation": "tanh"},
            {"type": "dense", "units": 16, "activation": "tanh"},
            {"type": "dense", "units": 1, "activation": "linear"}
        ]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "metrics": [],
        "epochs": epochs,
        "batch_size": 32,
        "validation_split": 0.1,
        "shuffle": true,
        "seed": seed
    })
}

/// `{"instances": [[...], ...]}` from rows already formatted as JSON arrays.
pub fn instances_body(rows: &[String]) -> Vec<u8> {
    let mut body = String::with_capacity(16 + rows.iter().map(|r| r.len() + 1).sum::<usize>());
    body.push_str("{\"instances\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r);
    }
    body.push_str("]}");
    body.into_bytes()
}

/// A predict response must hold one prediction per instance; checked once per measurement.
pub fn prediction_count(v: &Value) -> Option<usize> {
    v.get("predictions").and_then(Value::as_array).map(Vec::len)
}
