//! `GET /models/{ref}/model.onnx`: the model as an ONNX file.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::reference::{RefParam, Resolved};
use crate::http::error::{Error, Problem, Result};
use crate::http::AppState;
use crate::onnx::{export, Description};
use crate::telemetry::spawn_blocking_in_span;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(model_onnx))
}

/// The model as ONNX (opset 17, with ONNX-ML's `LabelEncoder` for text columns), which
/// onnxruntime or tract run to the same predictions: one FLOAT input `input` `[n,
/// features]` for a model of numbers (the feature names in the metadata's
/// `feature_names`), or one input `[n, 1]` per column it reads (FLOAT, NaN when missing;
/// STRING for a category); one output `predictions`.
#[utoipa::path(get, path = "/model.onnx", tag = "models", params(RefParam),
    responses(
        (status = 200, description = "The ONNX model (a serialized `onnx.ModelProto`)",
            content_type = "application/onnx", body = String),
        (status = 400, description = "A malformed model reference", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such model, name, alias or version", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A part of the model ONNX cannot compute as the model \
            does (a hashed column or cross, several out-of-vocabulary slots); the detail \
            names it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn model_onnx(State(state): State<AppState>, model: Resolved) -> Result<impl IntoResponse> {
    let served = state.models.get(&state.store, model.id).await?;
    let stored = state.store.model(model.id).await?;
    let filename = match (&stored.name, stored.version) {
        (Some(name), Some(version)) => format!("{name}-v{version}.onnx"),
        _ => format!("{}.onnx", stored.id),
    };
    let bytes = spawn_blocking_in_span(move || {
        let description = Description {
            id: stored.id.to_string(),
            name: stored.name.as_deref(),
            version: stored.version,
            feature_names: &stored.feature_names,
            target_names: &stored.target_names,
        };
        export(&served.model, &description)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/onnx".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    ))
}
