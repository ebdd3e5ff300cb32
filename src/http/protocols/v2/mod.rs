//! The Open Inference Protocol (KServe V2) over HTTP: the server's metadata and health,
//! a model's metadata and readiness, and inference, in JSON or with the binary tensor
//! extension (`Inference-Header-Content-Length`).

mod binary;
mod infer;
mod request;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{load, name_and_version};
use crate::http::error::{Error, ProtocolError, ProtocolErrorBody};
use crate::http::extract::Body;
use crate::http::models::predict::{check_memory, off_runtime_if_large, predict_cells};
use crate::http::models::signature::inputs;
use crate::http::models::Resolved;
use crate::http::AppState;
use crate::nn::ModelSummary;
use crate::store::ColumnType;

/// Where a model's routes are mounted: by reference, and by name and version.
pub(super) const BY_NAME: &str = "/v2/models/{name}";
pub(super) const BY_VERSION: &str = "/v2/models/{name}/versions/{version}";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(server_metadata))
        .routes(routes!(live))
        .routes(routes!(ready))
        .nest(BY_NAME, model_routes())
        .nest(BY_VERSION, model_routes())
}

fn model_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(model_metadata))
        .routes(routes!(model_ready))
        .routes(routes!(infer))
}

type Answer = Result<Response, ProtocolError>;

/// The model of a `/v2/models/…` path; its refusals are the protocol's errors.
struct Model(Resolved);

impl FromRequestParts<AppState> for Model {
    type Rejection = ProtocolError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Model(Resolved::from_request_parts(parts, state).await?))
    }
}

#[derive(Serialize, ToSchema)]
struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: Vec<&'static str>,
}

/// The server's name, version and protocol extensions.
#[utoipa::path(get, path = "/v2", tag = "protocols",
    responses((status = 200, description = "The server", body = ServerMetadata)))]
async fn server_metadata() -> axum::Json<ServerMetadata> {
    axum::Json(ServerMetadata {
        name: "nnserve",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/v2/health/live", tag = "protocols",
    responses((status = 200, description = "Alive", body = Object, example = json!({"live": true}))))]
async fn live() -> axum::Json<Value> {
    axum::Json(json!({"live": true}))
}

/// Readiness: the database answers queries.
#[utoipa::path(get, path = "/v2/health/ready", tag = "protocols", responses(
    (status = 200, description = "Ready", body = Object, example = json!({"ready": true})),
    (status = 503, description = "The database is unreachable", body = ProtocolErrorBody)))]
async fn ready(State(state): State<AppState>) -> Answer {
    state
        .store
        .ping()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    Ok(axum::Json(json!({"ready": true})).into_response())
}

#[derive(Serialize, ToSchema)]
struct TensorMetadata {
    name: String,
    datatype: &'static str,
    /// -1 for the rows.
    shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
struct ModelMetadata {
    name: String,
    versions: Vec<String>,
    platform: &'static str,
    /// One `input` of `[rows, features]` for a numeric model (or one `[rows]` tensor per
    /// feature); one per column for a model that encodes its columns, BYTES for text.
    inputs: Vec<TensorMetadata>,
    /// `probabilities` and `class` for a classifier, `predictions` for a regression.
    outputs: Vec<TensorMetadata>,
}

/// A model's inputs and outputs: names, datatypes and shapes.
#[utoipa::path(get, path = "/", tag = "protocols",
    params(("name" = String, Path, description = "A model name (its latest version), \
        name@alias or a model id")),
    responses(
        (status = 200, description = "The model", body = ModelMetadata),
        (status = 400, description = "A malformed reference", body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version", body = ProtocolErrorBody),
    ))]
async fn model_metadata(State(state): State<AppState>, Model(model): Model) -> Answer {
    let stored = state.store.model(model.id).await?;
    let served = state.models.get(&state.store, model.id).await?;
    let inputs = match served.model.input_names() {
        Some(_) => {
            let summary: Option<ModelSummary> = serde_json::from_value(stored.summary.clone()).ok();
            inputs(&stored, summary.as_ref())
                .into_iter()
                .map(|input| TensorMetadata {
                    datatype: match input.kind {
                        ColumnType::Number => "FP32",
                        _ => "BYTES",
                    },
                    name: input.column,
                    shape: vec![-1],
                })
                .collect()
        }
        None => vec![TensorMetadata {
            name: "input".into(),
            datatype: "FP32",
            shape: vec![-1, served.feature_names.len() as i64],
        }],
    };
    let outputs = infer::signature(&served)
        .into_iter()
        .map(|(name, datatype, shape)| TensorMetadata {
            name: name.into(),
            datatype,
            shape,
        })
        .collect();
    let (name, version) = name_and_version(&stored);
    Ok(axum::Json(ModelMetadata {
        name,
        versions: vec![version.to_string()],
        platform: "nnserve",
        inputs,
        outputs,
    })
    .into_response())
}

/// Whether the model is ready: it exists and its weights load.
#[utoipa::path(get, path = "/ready", tag = "protocols",
    params(("name" = String, Path, description = "A model name (its latest version), \
        name@alias or a model id")),
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"name": "churn", "ready": true})),
        (status = 400, description = "A malformed reference", body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version", body = ProtocolErrorBody),
    ))]
async fn model_ready(State(state): State<AppState>, Model(model): Model) -> Answer {
    let loaded = load(&state, &model).await?;
    Ok(axum::Json(json!({"name": loaded.name, "ready": true})).into_response())
}

/// An inference request (see the Open Inference Protocol): `inputs` with name, shape,
/// datatype and `data` (flat or nested, row-major), or `parameters.binary_data_size` and
/// the raw data after the JSON header (whose length `Inference-Header-Content-Length`
/// gives). `parameters.content_type` (MLServer's `pd`) is accepted and ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents the body, which `request::read` reads.
#[schema(example = json!({"id": "1", "inputs": [{"name": "input", "shape": [1, 4],
    "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}))]
struct InferRequestDoc {
    id: Option<String>,
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    inputs: Vec<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    outputs: Option<Vec<Value>>,
}

/// An inference answer: each output with name, datatype, shape and `data`, or with
/// `parameters.binary_data_size` when its data follows the JSON header.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents the answer, which `binary::answer` writes.
#[schema(example = json!({"id": "1", "model_name": "iris", "model_version": "1",
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, 3],
    "data": [0.9, 0.07, 0.03]}]}))]
struct InferResponseDoc {
    id: Option<String>,
    model_name: String,
    model_version: String,
    #[schema(value_type = Vec<Object>)]
    outputs: Vec<Value>,
}

/// Infer: the predictions of the rows of the inputs, the same as `/predict`'s, as the
/// outputs the request names (all by default), in JSON or binary.
#[utoipa::path(post, path = "/infer", tag = "protocols",
    params(("name" = String, Path, description = "A model name (its latest version), \
        name@alias or a model id"),
        ("Inference-Header-Content-Length" = Option<u64>, Header,
            description = "With binary data: the length of the JSON header")),
    request_body(content(
        (InferRequestDoc = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "The outputs: JSON, or with binary outputs the JSON \
            header (its length in Inference-Header-Content-Length) and their data",
            content(
                (InferResponseDoc = "application/json"),
                (Vec<u8> = "application/octet-stream"),
            )),
        (status = 400, description = "A malformed request or reference, inputs the model \
            does not take, an unknown output, binary lengths that do not add up",
            body = ProtocolErrorBody),
        (status = 404, description = "No such model, name, alias or version", body = ProtocolErrorBody),
        (status = 413, description = "Body over --max-body-bytes", body = ProtocolErrorBody),
    ))]
async fn infer(
    State(state): State<AppState>,
    Model(model): Model,
    headers: HeaderMap,
    body: Result<Body, Error>,
) -> Answer {
    let Body(body) = body?;
    let loaded = load(&state, &model).await?;
    let served = loaded.served;
    let row_bytes = match headers.contains_key(request::HEADER_LENGTH) {
        true => 4 * served.feature_names.len(),
        false => 2 * served.feature_names.len() + 2,
    };
    check_memory(
        &served,
        body.len(),
        row_bytes,
        state.config.job_memory_limit(),
    )?;
    let (name, version) = (loaded.name, loaded.version);
    let response = off_runtime_if_large(body.len(), move || {
        let (request, tensors) = request::read(&headers, &body)?;
        let x = infer::cells(&served, tensors)?;
        let predictions = predict_cells(&served, x.view())?;
        let outputs = infer::outputs(&request, &predictions)?;
        Ok(binary::answer(
            request.id.as_deref(),
            &name,
            version,
            &outputs,
        ))
    })
    .await?;
    Ok(response)
}
