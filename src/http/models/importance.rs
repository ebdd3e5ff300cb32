//! `GET /models/{ref}/importance`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::reference::{RefParam, Resolved};
use crate::http::error::{Error, Problem, Result};
use crate::http::extract::Json;
use crate::http::AppState;
use crate::nn::Importance;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(importance))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportanceView {
    pub model_id: Uuid,
    /// What the numbers are: the rise of the loss on the validation split when the
    /// column's values are shuffled across its rows.
    pub measure: String,
    /// Shuffles per column, and validation rows they ran over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Largest first.
    pub columns: Vec<Importance>,
    /// Why there are no columns (a streamed dataset, no validation split, too many columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a job stored when its model was made.
#[derive(Deserialize)]
struct Stored {
    repeats: Option<usize>,
    rows: Option<usize>,
    #[serde(default)]
    columns: Vec<Importance>,
    reason: Option<String>,
}

/// Permutation importance of each input column, computed on the validation split when the
/// job succeeded.
#[utoipa::path(get, path = "/importance", tag = "models",
    params(RefParam),
    responses(
        (status = 200, description = "Each input column's importance, largest first, or why it was not computed",
            body = ImportanceView),
        (status = 404, description = "No such model, name, alias or version", body = Problem, content_type = "application/problem+json"),
    ))]
async fn importance(
    State(state): State<AppState>,
    model: Resolved,
) -> Result<Json<ImportanceView>> {
    let id = model.id;
    let model = state.store.model(id).await?;
    let stored: Stored = match model.importance {
        Some(value) => serde_json::from_value(value).map_err(|e| Error::Internal(e.to_string()))?,
        None => Stored {
            repeats: None,
            rows: None,
            columns: Vec::new(),
            reason: Some("the model was trained before importance was computed".into()),
        },
    };
    Ok(Json(ImportanceView {
        model_id: id,
        measure: "rise of the validation loss when the column is shuffled".into(),
        repeats: stored.repeats,
        rows: stored.rows,
        columns: stored.columns,
        reason: stored.reason,
    }))
}
