//! `/models`: list, show and delete trained models, and their names' aliases.

mod aliases;
mod batch;
mod csv_body;
mod evaluate;
mod importance;
mod onnx;
pub(in crate::http) mod predict;
pub(crate) mod reference;
pub(in crate::http) mod rows;
mod scores;
pub(in crate::http) mod signature;
mod stored;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Json, Query};
use crate::http::page::{Page, PageQuery};
use crate::http::AppState;
use crate::nn::{EpochRecord, ModelSummary, Task, TrainingSpec};
use crate::store::{check_slug, ModelRef, StoredModel};
use signature::{InputView, OutputView};

pub use predict::{Classes, Predictions, INLINE_BYTES};
use reference::RefParam;
pub use reference::{Resolved, BY_REF, BY_VERSION};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .nest(BY_REF, model_routes())
        .nest(BY_VERSION, model_routes())
        .merge(aliases::router())
}

/// The routes of one model, mounted under both ways of naming it; each handler reads the
/// model with [`Resolved`].
fn model_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_model, delete_model))
        .merge(predict::router())
        .merge(evaluate::router())
        .merge(importance::router())
        .merge(onnx::router())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub id: Uuid,
    /// The name its job gave it (`"name"` on the job); null for an unnamed job's model.
    pub name: Option<String>,
    /// Its version of `name`: 1 for the name's first model, then 2, 3… (never reused).
    pub version: Option<u32>,
    /// The aliases of `name` that point at it (`churn@champion`), by alias.
    pub aliases: Vec<String>,
    /// The job that trained it.
    pub job_id: Uuid,
    /// The dataset it was trained on.
    pub dataset_id: Uuid,
    #[schema(value_type = Task)]
    pub task: String,
    /// The columns a client sends, in the order array instances give them, each with its
    /// type and how the model encodes it.
    pub inputs: Vec<InputView>,
    /// What predict answers: `predictions` (and `classes` for a classifier), with shapes.
    pub outputs: Vec<OutputView>,
    /// The labels of a text target, in the order of the output probabilities; null when
    /// the classes are numbers (or the model is a regression).
    pub class_names: Option<Vec<String>>,
    /// The size of the stored weights in bytes (safetensors: every layer's parameters,
    /// the normalization and encoding, and the spec).
    pub weights_bytes: u64,
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
        let summary: Option<ModelSummary> = serde_json::from_value(m.summary.clone()).ok();
        Self {
            inputs: signature::inputs(&m, summary.as_ref()),
            outputs: signature::outputs(&m, summary.as_ref()),
            class_names: summary.and_then(|s| s.class_names),
            id: m.id,
            name: m.name,
            version: m.version,
            aliases: m.aliases,
            job_id: m.job_id,
            dataset_id: m.dataset_id,
            task: m.task,
            weights_bytes: m.weights_bytes,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelsQuery {
    /// Only the versions of this name, from the highest.
    pub name: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// List models, newest first; with `name`, that name's versions from the highest.
#[utoipa::path(get, path = "/models", tag = "models", params(ModelsQuery),
    responses(
        (status = 200, description = "A page of models", body = Page<ModelView>),
        (status = 400, description = "A name that is not one (lower-case letters, digits, `-` \
            and `_`), or an unknown parameter", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn list_models(
    State(state): State<AppState>,
    Query(query): Query<ModelsQuery>,
) -> Result<Json<Page<ModelView>>> {
    if let Some(name) = &query.name {
        check_slug("name", name).map_err(Error::BadRequest)?;
    }
    let page = PageQuery {
        limit: query.limit,
        offset: query.offset,
    };
    let (models, total) = state
        .store
        .models(query.name.as_deref(), page.limit(), page.offset())
        .await?;
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

/// Delete a model and its weights: by id or by `name/versions/N`, and not while an alias
/// points at it.
#[utoipa::path(delete, path = "/", tag = "models", params(RefParam),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A malformed reference, or a bare name (which would \
            delete whichever version is latest: name the version)", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such model, name, alias or version", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "An alias points at the model; the detail names it",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_model(State(state): State<AppState>, model: Resolved) -> Result<StatusCode> {
    if let ModelRef::Latest(name) = &model.reference {
        return Err(Error::BadRequest(format!(
            "DELETE needs one version: {name:?} alone means whichever version is latest; \
             delete /models/{name}/versions/{{version}} or the model's id"
        )));
    }
    let id = model.id;
    state.store.delete_model(id).await?;
    state.models.remove(id);
    tracing::info!(model = %id, reference = %model.reference, "model deleted");
    Ok(StatusCode::NO_CONTENT)
}
