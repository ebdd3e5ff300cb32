//! `/models`: list, show and delete trained models.

mod batch;
mod csv_body;
mod evaluate;
mod importance;
mod predict;
pub(crate) mod reference;
mod rows;
mod scores;
mod stored;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Problem, Result};
use crate::http::extract::{Json, Query};
use crate::http::page::{Page, PageQuery};
use crate::http::AppState;
use crate::nn::{EpochRecord, ModelSummary, Task, TrainingSpec};
use crate::store::StoredModel;

pub use predict::{Classes, Predictions, INLINE_BYTES};
use reference::RefParam;
pub use reference::{Resolved, BY_REF, BY_VERSION};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .nest(BY_REF, model_routes())
        .nest(BY_VERSION, model_routes())
}

/// The routes of one model, mounted under both ways of naming it; each handler reads the
/// model with [`Resolved`].
fn model_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_model, delete_model))
        .merge(predict::router())
        .merge(evaluate::router())
        .merge(importance::router())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub id: Uuid,
    /// The job that trained it.
    pub job_id: Uuid,
    /// The dataset it was trained on.
    pub dataset_id: Uuid,
    #[schema(value_type = Task)]
    pub task: String,
    /// Input columns, in the order array instances give them.
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    /// Batch size of the trial that produced this model.
    pub batch_size: usize,
    pub best_epoch: Option<usize>,
    /// The last epoch's loss and metrics.
    #[schema(value_type = EpochRecord)]
    pub final_metrics: Value,
    /// The best epoch's loss and metrics.
    #[schema(value_type = Option<EpochRecord>)]
    pub best_metrics: Option<Value>,
    /// Layers with output shapes and parameter counts.
    #[schema(value_type = ModelSummary)]
    pub summary: Value,
    #[schema(value_type = TrainingSpec)]
    pub spec: Value,
    pub created_at: DateTime<Utc>,
}

impl From<StoredModel> for ModelView {
    fn from(m: StoredModel) -> Self {
        Self {
            id: m.id,
            job_id: m.job_id,
            dataset_id: m.dataset_id,
            task: m.task,
            feature_names: m.feature_names,
            target_names: m.target_names,
            batch_size: m.batch_size,
            best_epoch: m.best_epoch,
            final_metrics: m.final_metrics,
            best_metrics: m.best_metrics,
            summary: m.summary,
            spec: m.spec,
            created_at: m.created_at,
        }
    }
}

/// List models, newest first.
#[utoipa::path(get, path = "/models", tag = "models", params(PageQuery),
    responses((status = 200, description = "A page of models", body = Page<ModelView>)))]
async fn list_models(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ModelView>>> {
    let (models, total) = state.store.models(page.limit(), page.offset()).await?;
    Ok(Json(Page::new(models, total, &page)))
}

/// Show a model: summary, spec, metrics, provenance and column names.
#[utoipa::path(get, path = "/", tag = "models", params(RefParam),
    responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 404, description = "No such model, name, alias or version", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn get_model(State(state): State<AppState>, model: Resolved) -> Result<Json<ModelView>> {
    Ok(Json(state.store.model(model.id).await?.into()))
}

/// Delete a model and its weights.
#[utoipa::path(delete, path = "/", tag = "models", params(RefParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such model, name, alias or version", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn delete_model(State(state): State<AppState>, model: Resolved) -> Result<StatusCode> {
    let id = model.id;
    state.store.delete_model(id).await?;
    state.models.remove(id);
    tracing::info!(model = %id, reference = %model.reference, "model deleted");
    Ok(StatusCode::NO_CONTENT)
}
