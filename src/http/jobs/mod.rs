//! `/jobs`: submit training, follow it, cancel it.

mod loss_curve;
mod metrics;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{AllOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Json, Path, Query};
use crate::http::page::{Page, PageQuery};
use crate::http::AppState;
use crate::jobs::{self, Cancellation};
use crate::nn::TrainingSpec;
use crate::store::{
    check_alias, check_name, DataPath, Job, JobRegistry, JobRows, JobStatus, Promotion, StoreError,
    MAX_SLUG,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .merge(metrics::router())
        .merge(loss_curve::router())
}

/// The body of `POST /jobs`: `dataset_id` and the registry's fields (`name`, `promote`,
/// `promote_if_better`) beside the engine's training spec (Keras names).
pub struct JobRequest;

/// A name or alias as the document describes it.
fn slug(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9][a-z0-9_-]*$"))
        .min_length(Some(1))
        .max_length(Some(MAX_SLUG))
        .description(Some(description))
}

impl PartialSchema for JobRequest {
    fn schema() -> RefOr<Schema> {
        let dataset_id = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .description(Some(
                "The dataset to train on; its feature count is the input width.",
            ));
        let id = ObjectBuilder::new()
            .property("dataset_id", dataset_id)
            .property(
                "name",
                slug(
                    "The model's name: the job's model becomes its next version (1, 2, 3…), \
                     reachable as /models/{name} (the latest), /models/{name}/versions/{v} \
                     and through the name's aliases. Lower-case letters, digits, `-` and `_`, \
                     not a UUID.",
                ),
            )
            .property(
                "promote",
                slug(
                    "An alias of `name` (e.g. `champion`) to move to the job's model when it \
                     succeeds; needs `name`. `latest` is reserved.",
                ),
            )
            .property(
                "promote_if_better",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some(
                        "Move `promote` only if the model's value of the job's monitor (a \
                     validation quantity, e.g. val_loss) is at least as good as the alias's \
                     current target's; default false (always move). The job's `promotion` \
                     says whether it moved.",
                    )),
            )
            .required("dataset_id");
        AllOfBuilder::new()
            .item(id)
            .item(Ref::from_schema_name("TrainingSpec"))
            .into()
    }
}

impl ToSchema for JobRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("TrainingSpec".into(), TrainingSpec::schema()));
        TrainingSpec::schemas(schemas);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub dataset_id: Uuid,
    pub status: JobStatus,
    /// Finished epochs, over all trials.
    pub epoch: usize,
    /// Epochs to run over all trials (early stopping may end a trial sooner).
    pub epochs: usize,
    /// One trial per batch size; the best trial's model is kept.
    pub batch_sizes: Vec<usize>,
    /// The quantity that picks the best epoch and trial, e.g. "val_loss".
    pub monitor: String,
    /// "min" or "max": which direction of `monitor` is better.
    pub monitor_mode: String,
    pub best_batch_size: Option<usize>,
    pub best_epoch: Option<usize>,
    /// `monitor` at the best epoch of the best trial.
    pub best_value: Option<f64>,
    pub stopped_early: Option<bool>,
    pub overfitting_epoch: Option<usize>,
    /// Why the job failed.
    pub error: Option<String>,
    /// The trained model, once the job succeeded.
    pub model_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How the latest run reads its rows: `memory`, or `streamed` from the database when
    /// the dataset is over --dataset-memory-bytes; null until it starts.
    pub data_path: Option<DataPath>,
    /// The estimate of the job's peak memory it was admitted with, in bytes (null for
    /// jobs queued before estimates existed).
    pub estimated_peak_bytes: Option<u64>,
    /// The rows it trains and validates on, and the dataset's rows it leaves out because
    /// their target is missing (`unlabelled`) or a `missing: "drop_row"` column is empty
    /// (`dropped`); null for jobs queued before rows were counted.
    pub rows: Option<JobRows>,
    /// The name the job's model becomes a version of.
    pub name: Option<String>,
    /// Its model's version of `name`, once the job succeeded.
    pub version: Option<u32>,
    /// The alias to move to its model when the job succeeds.
    pub promote: Option<String>,
    /// Whether `promote` moves only for a model at least as good as the current target.
    pub promote_if_better: bool,
    /// Whether `promote` moved, once the job succeeded (null before, and without
    /// `promote`).
    pub promotion: Option<Promotion>,
    /// The spec with every default filled in.
    #[schema(value_type = TrainingSpec)]
    pub spec: Value,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            dataset_id: job.dataset_id,
            status: job.status,
            epoch: job.epochs_done,
            epochs: job.epochs * job.batch_sizes.len(),
            best_batch_size: job.best_trial.and_then(|t| job.batch_sizes.get(t).copied()),
            batch_sizes: job.batch_sizes,
            monitor: job.monitor,
            monitor_mode: job.mode.name().into(),
            best_epoch: job.best_epoch,
            best_value: job.best_value,
            stopped_early: job.stopped_early,
            overfitting_epoch: job.overfitting_epoch,
            error: job.error,
            model_id: job.model_id,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            data_path: job.data_path,
            estimated_peak_bytes: job.estimated_peak_bytes,
            rows: job.rows,
            name: job.registry.name,
            version: job.model_version,
            promote: job.registry.promote,
            promote_if_better: job.registry.promote_if_better,
            promotion: job.promotion,
            spec: job.spec,
        }
    }
}

fn created(job: Job) -> (StatusCode, HeaderMap, Json<JobView>) {
    let mut headers = HeaderMap::new();
    let location = format!("/jobs/{}", job.id);
    headers.insert(header::LOCATION, location.parse().expect("ASCII URL"));
    (StatusCode::ACCEPTED, headers, Json(job.into()))
}

/// Queue a training job.
///
/// The spec is validated against the dataset before anything is queued; the job then runs
/// when a worker is free (FIFO). A list `batch_size` trains one trial per size and keeps
/// the model of the trial with the best monitored value.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = JobRequest,
    responses(
        (status = 202, description = "Queued", body = JobView,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid spec, no such dataset, a `name` or `promote` that \
            is not a slug (or `promote` without `name`, `promote_if_better` without `promote` or \
            without a validation monitor), or an estimated peak memory over \
            --max-job-memory-bytes; the detail names the field, or the estimate, the limit and \
            the layer that dominates",
            body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "--max-queued-jobs jobs are already queued",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before submitting again"))),
    ))]
async fn create_job(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, HeaderMap, Json<JobView>)> {
    let Value::Object(mut fields) = body else {
        return Err(Error::Unprocessable(
            "the body must be a JSON object".into(),
        ));
    };
    let dataset_id = fields
        .remove("dataset_id")
        .ok_or_else(|| Error::Unprocessable("dataset_id is required".into()))?;
    let dataset_id: Uuid = serde_json::from_value(dataset_id.clone()).map_err(|_| {
        Error::Unprocessable(format!(
            "dataset_id must be a dataset's UUID, got {dataset_id}"
        ))
    })?;
    let registry = registry_fields(&mut fields)?;
    let spec = TrainingSpec::from_json(&Value::Object(fields).to_string())?;
    let mut dataset = match state.store.dataset(dataset_id).await {
        Err(StoreError::NotFound { .. }) => {
            return Err(Error::Unprocessable(format!(
                "dataset_id: dataset {dataset_id} not found"
            )))
        }
        other => other?,
    };
    if let Some(id) = dataset.identifier_target() {
        return Err(Error::Unprocessable(format!(
            "target column {id:?} is an identifier (every value a distinct text): there is \
             nothing to learn; name another target at upload"
        )));
    }
    let valid = spec.validate(&jobs::data_shape(&dataset))?;
    let (monitor, _) = valid.monitor();
    if registry.promote_if_better && !monitor.starts_with("val_") {
        return Err(Error::Unprocessable(format!(
            "promote_if_better compares the model's monitored validation value, but this job \
             monitors {monitor:?}: set validation_split above 0 (or an early_stopping monitor \
             such as val_loss)"
        )));
    }
    let required = valid.drop_row_columns();
    let dropped = match required.as_slice() {
        [] => 0,
        // Which labelled rows miss a value depends on the cells: one read of the dataset.
        required => state.store.rows_missing(&dataset, required).await?,
    };
    let valid = jobs::leave_out(&spec, valid, &mut dataset, dropped)?;
    let normalized =
        serde_json::to_value(valid.spec()).map_err(|e| Error::Internal(e.to_string()))?;
    let job = state
        .scheduler
        .submit(&dataset, &valid, normalized, registry)
        .await?;
    Ok(created(job))
}

/// Takes the registry's fields out of a job body: they say what becomes of the model, not
/// how to train it, so the engine's spec (which refuses unknown fields, and is stored with
/// each model as what trained it) never sees them. `null` is the same as leaving one out.
fn registry_fields(fields: &mut serde_json::Map<String, Value>) -> Result<JobRegistry> {
    let mut text = |field: &str| match fields.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(Error::Unprocessable(format!(
            "{field} must be a string, got {other}"
        ))),
    };
    let name = text("name")?;
    let promote = text("promote")?;
    let promote_if_better = match fields.remove("promote_if_better") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(Error::Unprocessable(format!(
                "promote_if_better must be true or false, got {other}"
            )))
        }
    };
    if let Some(name) = &name {
        check_name("name", name).map_err(Error::Unprocessable)?;
    }
    if let Some(alias) = &promote {
        check_alias("promote", alias).map_err(Error::Unprocessable)?;
        if name.is_none() {
            return Err(Error::Unprocessable(format!(
                "promote {alias:?} needs a name: an alias belongs to a model name, so give \
                 the job \"name\" too"
            )));
        }
    }
    if promote_if_better && promote.is_none() {
        return Err(Error::Unprocessable(
            "promote_if_better needs promote: the alias to move when the model is at least \
             as good"
                .into(),
        ));
    }
    Ok(JobRegistry {
        name,
        promote,
        promote_if_better,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs", body = Page<JobView>),
        (status = 400, description = "Unknown status or parameter", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Page<JobView>>> {
    let page = PageQuery {
        limit: query.limit,
        offset: query.offset,
    };
    let (jobs, total) = state
        .store
        .jobs(query.status, page.limit(), page.offset())
        .await?;
    Ok(Json(Page::new(jobs, total, &page)))
}

/// Show a job: status, progress, best epoch, error or model.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_job(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Json<JobView>> {
    Ok(Json(state.store.job(id).await?.into()))
}

/// Cancel a queued or running job; a running job stops within one batch and its finished
/// epochs stay readable.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job was queued and is now cancelled", body = JobView),
        (status = 202, description = "The job is running and stops within one batch", body = JobView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already finished", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<JobView>)> {
    Ok(match state.scheduler.cancel(id).await? {
        Cancellation::Done(job) => (StatusCode::OK, Json(job.into())),
        Cancellation::Requested(job) => (StatusCode::ACCEPTED, Json(job.into())),
    })
}
