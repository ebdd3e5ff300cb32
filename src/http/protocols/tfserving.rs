//! TensorFlow Serving's REST API: `POST /v1/models/{name}[/versions/{v}|/labels/{label}]:predict`
//! with rows (`instances`) or columns (`inputs`), the model's status and its metadata.
//! A verb after a colon is not an axum path matcher: one wildcard route reads the path and
//! dispatches.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use ndarray::Array2;
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::{load, name_and_version};
use crate::http::error::{Error, ProtocolError, ProtocolErrorBody};
use crate::http::extract::Body;
use crate::http::models::predict::{
    check_memory, numeric, off_runtime_if_large, predict_cells, Predictions,
};
use crate::http::models::signature::inputs;
use crate::http::models::{rows, Resolved};
use crate::http::AppState;
use crate::nn::ModelSummary;
use crate::parse::instances::{self, Form};
use crate::serving::ServedModel;
use crate::store::{ColumnType, ModelRef};

#[derive(OpenApi)]
#[openapi(paths(predict, status, metadata))]
struct Doc;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .route("/v1/models/{*path}", get(get_any).post(post_any))
}

/// What a `/v1/models/…` path asks for.
#[derive(Debug, PartialEq)]
enum Call {
    Status,
    Metadata,
    Verb(String),
}

/// `name[/versions/v|/labels/label][/metadata][:verb]`, or a 404 naming the forms.
fn route(path: &str) -> Result<(ModelRef, Call), Error> {
    let not_found = || {
        Error::NotFound(format!(
            "no route /v1/models/{path}; the routes are /v1/models/{{name}}[/versions/{{v}}|\
             /labels/{{label}}] (status), …/metadata and …:predict"
        ))
    };
    let (path, verb) = match path.rsplit_once(':') {
        Some((path, verb)) if !verb.contains('/') => (path, Some(verb)),
        _ => (path, None),
    };
    let mut segments: Vec<&str> = path.split('/').collect();
    let metadata = verb.is_none() && segments.len() > 1 && segments.last() == Some(&"metadata");
    if metadata {
        segments.pop();
    }
    let reference = match segments.as_slice() {
        [name] => ModelRef::parse(name),
        [name, "versions", version] => ModelRef::version(name, version),
        [name, "labels", label] => ModelRef::parse(&format!("{name}@{label}")),
        _ => return Err(not_found()),
    }
    .map_err(|e| Error::BadRequest(e.to_string()))?;
    let call = match (verb, metadata) {
        (Some(verb), _) => Call::Verb(verb.to_owned()),
        (None, true) => Call::Metadata,
        (None, false) => Call::Status,
    };
    Ok((reference, call))
}

type Answer = Result<Response, ProtocolError>;

async fn get_any(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let Path(path) = path?;
    match route(&path)? {
        (reference, Call::Status) => status(state, reference).await,
        (reference, Call::Metadata) => metadata(state, reference).await,
        (_, Call::Verb(verb)) => Err(Error::NotFound(format!(
            "GET /v1/models/…:{verb} is not a route; :predict takes a POST"
        ))
        .into()),
    }
}

async fn post_any(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Body, Error>,
) -> Answer {
    let Path(path) = path?;
    match route(&path)? {
        (reference, Call::Verb(verb)) if verb == "predict" => {
            predict(state, reference, body?.0).await
        }
        (_, Call::Verb(verb)) => Err(Error::NotFound(format!(
            "the verb :{verb} is not served; nnserve answers :predict"
        ))
        .into()),
        _ => Err(Error::NotFound(format!(
            "POST /v1/models/{path} is not a route; predict is POST /v1/models/{{name}}:predict"
        ))
        .into()),
    }
}

/// A TensorFlow Serving predict body: rows or columns.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the body, which `instances::parse_tf_serving` reads instead.
#[schema(example = json!({"signature_name": "serving_default", "instances": [[5.1, 3.5, 1.4, 0.2]]}))]
struct TfPredictRequest {
    /// Rows: each an array of feature values in input order, or an object keyed by input
    /// name. Answered as `predictions`.
    instances: Option<Vec<Value>>,
    /// Columns: the rows as one array (a model with one input), or an object of one array
    /// per input. Answered as `outputs`. Not with `instances`.
    inputs: Option<Value>,
    /// Accepted and ignored: a model has one signature, `serving_default`.
    signature_name: Option<String>,
}

/// The answer: `predictions` (one row of outputs per instance) for `instances`,
/// `outputs` for `inputs`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the answer, which `TfPredictions` writes.
#[schema(example = json!({"predictions": [[0.98]]}))]
struct TfPredictionsDoc {
    predictions: Option<Vec<Vec<f32>>>,
    outputs: Option<Vec<Vec<f32>>>,
}

#[derive(Serialize)]
enum TfPredictions {
    #[serde(rename = "predictions")]
    Predictions(#[serde(serialize_with = "rows")] Array2<f32>),
    #[serde(rename = "outputs")]
    Outputs(#[serde(serialize_with = "rows")] Array2<f32>),
}

fn rows<S: Serializer>(matrix: &Array2<f32>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(matrix.rows().into_iter().map(|row| row.to_vec()))
}

/// Predict, as TensorFlow Serving: `instances` (rows) or `inputs` (columns).
/// `/versions/{v}` and `/labels/{label}` (an alias) go between the name and `:predict`.
#[utoipa::path(post, path = "/v1/models/{name}:predict", tag = "protocols",
    params(("name" = String, Path, description = "A model reference: a name (its latest \
        version), name@alias or a model id")),
    request_body(content = TfPredictRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The predictions", body = TfPredictionsDoc),
        (status = 400, description = "Malformed JSON, both `instances` and `inputs`, rows \
            the model does not take, or a malformed reference", body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version, or a verb \
            other than predict", body = ProtocolErrorBody),
        (status = 413, description = "Body over --max-body-bytes", body = ProtocolErrorBody),
    ))]
async fn predict(state: AppState, reference: ModelRef, body: Bytes) -> Answer {
    let model = load(&state, &Resolved::of(&state, reference).await?).await?;
    let served = model.served;
    check_memory(
        &served,
        body.len(),
        2 * served.feature_names.len() + 2,
        state.config.job_memory_limit(),
    )?;
    let (predictions, form) = off_runtime_if_large(body.len(), move || run(&served, &body)).await?;
    let answer = match form {
        Form::Instances => TfPredictions::Predictions(predictions.predictions),
        Form::Inputs => TfPredictions::Outputs(predictions.predictions),
    };
    Ok(axum::Json(answer).into_response())
}

fn run(served: &ServedModel, body: &[u8]) -> Result<(Predictions, Form), Error> {
    if let Some(names) = served.model.input_names() {
        let (rows, form) = raw_rows(&names, body)?;
        let x = rows::cells(&served.model, &names, &rows, form.key())?;
        return Ok((predict_cells(served, x.view())?, form));
    }
    let mut form = Form::Instances;
    let predictions = numeric(served, |each| {
        let (parts, read) =
            instances::parse_tf_serving(body, &served.feature_names, &served.feature_index, each)?;
        form = read;
        Ok(parts)
    })?;
    Ok((predictions, form))
}

/// The rows of a body for a model that encodes its columns, as `/predict` reads them:
/// `instances` as they are, columnar `inputs` (an object of columns) turned into rows.
fn raw_rows(names: &[&str], body: &[u8]) -> Result<(Vec<Value>, Form), Error> {
    let bad = |why: String| Error::BadRequest(why);
    let body: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be {{\"instances\": [...]}} or {{\"inputs\": ...}}: {e}"
        ))
    })?;
    if let Some(other) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "instances" | "inputs" | "signature_name"))
    {
        return Err(bad(format!(
            "unexpected field {other:?}; the body is {{\"instances\": [...]}} or {{\"inputs\": ...}}"
        )));
    }
    match (body.get("instances"), body.get("inputs")) {
        (Some(_), Some(_)) => Err(bad(
            "the body has both \"instances\" and \"inputs\"; send one of them".into(),
        )),
        (Some(Value::Array(rows)), None) => Ok((rows.clone(), Form::Instances)),
        (None, Some(Value::Array(rows))) => Ok((rows.clone(), Form::Inputs)),
        (None, Some(Value::Object(columns))) => Ok((transpose(names, columns)?, Form::Inputs)),
        (Some(_), None) => Err(bad("instances must be an array of rows".into())),
        (None, Some(_)) => Err(bad(
            "inputs must be an array of rows or an object of one array per input".into(),
        )),
        (None, None) => Err(bad(
            "the body needs \"instances\" (rows) or \"inputs\" (columns)".into(),
        )),
    }
}

/// Columns (name → one value per row) as rows keyed by name; a column left out is
/// missing in every row, as a key left out of an object row.
fn transpose(names: &[&str], columns: &Map<String, Value>) -> Result<Vec<Value>, Error> {
    let mut length = None;
    for (name, column) in columns {
        if !names.contains(&name.as_str()) {
            return Err(Error::BadRequest(format!(
                "inputs has the unknown column {name:?}; the model's columns are {names:?}"
            )));
        }
        let Value::Array(values) = column else {
            return Err(Error::BadRequest(format!(
                "inputs.{name} must be an array of one value per row"
            )));
        };
        match length {
            Some(n) if n != values.len() => {
                return Err(Error::BadRequest(format!(
                    "inputs.{name} has {} values, other columns {n}: every column needs one \
                     per row",
                    values.len()
                )))
            }
            _ => length = Some(values.len()),
        }
    }
    Ok((0..length.unwrap_or(0))
        .map(|r| {
            Value::Object(
                columns
                    .iter()
                    .map(|(name, values)| (name.clone(), values[r].clone()))
                    .collect(),
            )
        })
        .collect())
}

/// The model's status: each version the path names, `AVAILABLE` (a stored model is
/// served on its first request).
#[utoipa::path(get, path = "/v1/models/{name}", tag = "protocols",
    params(("name" = String, Path, description = "A model name (every version), name@alias \
        or a model id; `/versions/{v}` and `/labels/{label}` name one version")),
    responses(
        (status = 200, description = "The versions and their state", body = Object,
            example = json!({"model_version_status": [{"version": "2", "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""}}]})),
        (status = 400, description = "A malformed reference", body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version", body = ProtocolErrorBody),
    ))]
async fn status(state: AppState, reference: ModelRef) -> Answer {
    let model = Resolved::of(&state, reference).await?;
    let versions = match &model.reference {
        ModelRef::Latest(name) => state.store.models(Some(name), 500, 0).await?.0,
        _ => vec![state.store.model(model.id).await?],
    };
    let status: Vec<Value> = versions
        .iter()
        .map(|m| {
            json!({
                "version": name_and_version(m).1.to_string(),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            })
        })
        .collect();
    Ok(axum::Json(json!({ "model_version_status": status })).into_response())
}

/// The model's signature, `serving_default`: its inputs (one `input` tensor of every
/// feature for a numeric model; one per column for a model that encodes its columns)
/// and its output, `predictions`.
#[utoipa::path(get, path = "/v1/models/{name}/metadata", tag = "protocols",
    params(("name" = String, Path, description = "A model reference: a name (its latest \
        version), name@alias or a model id; `/versions/{v}` or `/labels/{label}` may \
        follow it")),
    responses(
        (status = 200, description = "The model spec and signature", body = Object),
        (status = 400, description = "A malformed reference", body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version", body = ProtocolErrorBody),
    ))]
async fn metadata(state: AppState, reference: ModelRef) -> Answer {
    let model = Resolved::of(&state, reference).await?;
    let stored = state.store.model(model.id).await?;
    let served = state.models.get(&state.store, model.id).await?;
    let summary: Option<ModelSummary> = serde_json::from_value(stored.summary.clone()).ok();
    let tensor = |name: &str, dtype: &str, dims: &[i64]| {
        let dim: Vec<Value> = dims
            .iter()
            .map(|d| json!({"size": d.to_string(), "name": ""}))
            .collect();
        json!({"dtype": dtype, "tensor_shape": {"dim": dim, "unknown_rank": false}, "name": name})
    };
    let mut inputs_of = Map::new();
    if served.model.input_names().is_some() {
        for input in inputs(&stored, summary.as_ref()) {
            let dtype = match input.kind {
                ColumnType::Number => "DT_FLOAT",
                _ => "DT_STRING",
            };
            inputs_of.insert(input.column.clone(), tensor(&input.column, dtype, &[-1]));
        }
    } else {
        let width = served.feature_names.len() as i64;
        inputs_of.insert("input".into(), tensor("input", "DT_FLOAT", &[-1, width]));
    }
    let width = served.model.output_width() as i64;
    let (name, version) = name_and_version(&stored);
    let signature = json!({
        "inputs": inputs_of,
        "outputs": {"predictions": tensor("predictions", "DT_FLOAT", &[-1, width])},
        "method_name": "tensorflow/serving/predict",
    });
    Ok(axum::Json(json!({
        "model_spec": {"name": name, "signature_name": "", "version": version.to_string()},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_model_and_a_call() {
        let latest = ModelRef::Latest("churn".into());
        assert_eq!(
            route("churn:predict").unwrap(),
            (latest.clone(), Call::Verb("predict".into()))
        );
        assert_eq!(route("churn").unwrap(), (latest.clone(), Call::Status));
        assert_eq!(route("churn/metadata").unwrap(), (latest, Call::Metadata));
        let v2 = ModelRef::Version {
            name: "churn".into(),
            version: 2,
        };
        assert_eq!(
            route("churn/versions/2/metadata").unwrap(),
            (v2.clone(), Call::Metadata)
        );
        assert_eq!(
            route("churn/versions/2:classify").unwrap(),
            (v2, Call::Verb("classify".into()))
        );
        let alias = ModelRef::Alias {
            name: "churn".into(),
            alias: "champion".into(),
        };
        assert_eq!(
            route("churn/labels/champion:predict").unwrap(),
            (alias, Call::Verb("predict".into()))
        );
        assert!(matches!(route("churn/other/2"), Err(Error::NotFound(_))));
        assert!(matches!(
            route("churn/versions/x"),
            Err(Error::BadRequest(_))
        ));
    }
}
