//! `/models`: trained models, their predictions and evaluations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use ndarray::{Array2, ArrayView2};
use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{Error, Problem, Result};
use super::extract::{Json, Path, Query};
use super::instances::{self, InstancesError};
use super::page::{Page, PageQuery};
use super::{media_type, AppState};
use crate::ingest::{self, CsvOptions, JsonTargets};
use crate::models::ServedModel;
use crate::nn::{EpochRecord, Evaluation, ModelSummary, Samples, Task, TrainingSpec};
use crate::store::StoredModel;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(get_model, delete_model))
        .routes(routes!(predict))
        .routes(routes!(evaluate))
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
    Ok(Json(Page {
        items: models.into_iter().map(ModelView::from).collect(),
        total,
        limit: page.limit(),
        offset: page.offset(),
    }))
}

/// Show a model: summary, spec, metrics, provenance and column names.
#[utoipa::path(get, path = "/models/{id}", tag = "models",
    params(("id" = Uuid, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_model(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<ModelView>> {
    Ok(Json(state.store.model(id).await?.into()))
}

/// Delete a model and its weights.
#[utoipa::path(delete, path = "/models/{id}", tag = "models",
    params(("id" = Uuid, Path, description = "Model id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_model(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<StatusCode> {
    state.store.delete_model(id).await?;
    state.models.remove(id);
    tracing::info!(model = %id, "model deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Rows to predict, TensorFlow Serving style.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents the body, which `instances::parse` reads in one pass instead.
#[schema(example = json!({"instances": [[5.1, 3.5, 1.4, 0.2], {"x0": 6.7, "x1": 3.0, "x2": 5.2, "x3": 2.3}]}))]
pub struct PredictRequest {
    /// Each row an array of feature values in `feature_names` order, or an object keyed by
    /// feature name.
    pub instances: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Predictions {
    /// One row of outputs per instance (probabilities for classifiers).
    #[serde(serialize_with = "rows")]
    #[schema(value_type = Vec<Vec<f32>>)]
    pub predictions: Array2<f32>,
    /// Classification models only: the predicted class per instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<usize>>,
}

fn rows<S: Serializer>(
    matrix: &Array2<f32>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(matrix.rows().into_iter().map(|row| row.to_vec()))
}

/// Below this much work (rows × parameters) a prediction runs inline; above it, on a
/// blocking thread so it cannot stall other requests.
const INLINE_WORK: usize = 1 << 22;

/// Predict.
#[utoipa::path(post, path = "/models/{id}/predict", tag = "models",
    params(("id" = Uuid, Path, description = "Model id")),
    request_body = PredictRequest,
    responses(
        (status = 200, description = "Predictions", body = Predictions),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A row of the wrong width, an unknown or missing feature name",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn predict(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    body: Bytes,
) -> Result<Json<Predictions>> {
    let served = state.models.get(&state.store, id).await?;
    let parsed = instances::parse(&body, &served.feature_names, &served.feature_index).map_err(
        |e| match e {
            InstancesError::Malformed(text) => Error::BadRequest(text),
            InstancesError::Invalid(text) => Error::Unprocessable(text),
        },
    )?;
    let run = move |served: Arc<ServedModel>| {
        let x = ArrayView2::from_shape((parsed.rows, served.feature_names.len()), &parsed.values)
            .expect("the parser checked every row's width");
        let predictions = served.model.predict(x)?;
        let classes = served.model.classes(predictions.view());
        Ok::<_, Error>(Predictions {
            predictions,
            classes,
        })
    };
    let predictions = if parsed.rows * served.params <= INLINE_WORK {
        run(served)?
    } else {
        tokio::task::spawn_blocking(move || run(served))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    Ok(Json(predictions))
}

#[derive(Serialize, ToSchema)]
pub struct EvaluationView {
    /// Rows evaluated.
    pub rows: usize,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// Labelled rows as JSON.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelledRows {
    /// Feature rows in `feature_names` order.
    pub features: Vec<Vec<f32>>,
    pub targets: JsonTargets,
}

/// Evaluate on labelled rows: JSON, or CSV with the model's column names as a header.
#[utoipa::path(post, path = "/models/{id}/evaluate", tag = "models",
    params(("id" = Uuid, Path, description = "Model id")),
    request_body(content(
        (LabelledRows = "application/json"),
        (String = "text/csv", example = "x0,x1,x2,x3,label\n0.1,0.5,-1.2,3.0,1\n"),
    )),
    responses(
        (status = 200, description = "Loss and the spec's metrics", body = EvaluationView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Rows or labels that do not fit the model", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn evaluate(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EvaluationView>> {
    let served = state.models.get(&state.store, id).await?;
    let stored = state.store.model(id).await?;
    let (x, y) = match media_type(&headers).as_deref() {
        Some("application/json") => {
            let rows: LabelledRows = serde_json::from_slice(&body).map_err(|e| {
                if e.is_data() {
                    Error::Unprocessable(e.to_string())
                } else {
                    Error::BadRequest(e.to_string())
                }
            })?;
            labelled_matrix(rows, served.feature_names.len(), stored.target_names.len())?
        }
        Some("text/csv" | "application/csv") => {
            let options = CsvOptions {
                targets: stored.target_names.clone(),
                feature_order: Some(stored.feature_names.clone()),
            };
            tokio::task::spawn_blocking(move || csv_matrix(&body, &options))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        }
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Type must be application/json or text/csv, got {}",
                other.unwrap_or("none")
            )))
        }
    };
    let rows = x.nrows();
    let evaluation = tokio::task::spawn_blocking(move || {
        served.model.evaluate(Samples::new(x.view(), y.view()))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(Json(EvaluationView { rows, evaluation }))
}

fn labelled_matrix(
    rows: LabelledRows,
    features: usize,
    targets: usize,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let n = rows.features.len();
    let mut x = Vec::with_capacity(n * features);
    for (i, row) in rows.features.iter().enumerate() {
        if row.len() != features {
            return Err(Error::Unprocessable(format!(
                "features[{i}] has {} values, the model expects {features}",
                row.len()
            )));
        }
        x.extend_from_slice(row);
    }
    let y: Vec<f32> = match rows.targets {
        JsonTargets::Column(values) if targets == 1 => values,
        JsonTargets::Column(_) => {
            return Err(Error::Unprocessable(format!(
                "targets must be rows of {targets} values"
            )))
        }
        JsonTargets::Rows(values) => {
            if let Some(i) = values.iter().position(|row| row.len() != targets) {
                return Err(Error::Unprocessable(format!(
                    "targets[{i}] has {} values, the model has {targets} targets",
                    values[i].len()
                )));
            }
            values.concat()
        }
    };
    if y.len() != n * targets || n == 0 {
        return Err(Error::Unprocessable(format!(
            "features has {n} rows but targets has {}; both need the same, non-zero count",
            y.len() / targets.max(1)
        )));
    }
    let x = Array2::from_shape_vec((n, features), x).expect("checked widths");
    let y = Array2::from_shape_vec((n, targets), y).expect("checked widths");
    Ok((x, y))
}

fn csv_matrix(body: &[u8], options: &CsvOptions) -> Result<(Array2<f32>, Array2<f32>)> {
    let mut values = Vec::new();
    let parsed = ingest::parse_csv(body, options, |chunk| {
        values.extend(
            chunk
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(())
    })?;
    let width = parsed.feature_names.len() + parsed.target_names.len();
    let features = parsed.feature_names.len();
    let matrix = Array2::from_shape_vec((parsed.rows, width), values).expect("whole rows");
    let x = matrix.slice(ndarray::s![.., ..features]).to_owned();
    let y = matrix.slice(ndarray::s![.., features..]).to_owned();
    Ok((x, y))
}
