//! `POST /models/{ref}/predict`.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::reference::{RefParam, Resolved};
use super::scores::Format;
use super::{batch, rows};
use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Body, Json, Query};
use crate::http::{media_type, AppState};
use crate::nn::human;
use crate::nn::ModelError;
use crate::parse::instances::{self, Instances, InstancesError};
use crate::serving::ServedModel;
use crate::telemetry::spawn_blocking_in_span;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(predict))
}

/// Rows to predict, TensorFlow Serving style.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents the body, which `instances::parse_with` reads in one pass instead.
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
    /// Classification models only: the predicted class per instance, its label when the
    /// target column was text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Classes>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Classes {
    Indices(Vec<usize>),
    Labels(Vec<String>),
}

impl Classes {
    pub(in crate::http) fn of(model: &crate::nn::Model, indices: Vec<usize>) -> Classes {
        match model.class_names() {
            Some(names) => Classes::Labels(
                indices
                    .into_iter()
                    .map(|i| names.get(i).cloned().unwrap_or_default())
                    .collect(),
            ),
            None => Classes::Indices(indices),
        }
    }
}

fn rows<S: Serializer>(
    matrix: &Array2<f32>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    // Rows of a standard-layout matrix are contiguous: serialize them in place.
    serializer.collect_seq(matrix.rows().into_iter().map(|row| match row.to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(row.to_vec()),
    }))
}

/// Up to this body size a request is parsed and predicted on the runtime's thread (tens of
/// microseconds); larger ones go to a blocking thread so they cannot stall other requests.
pub const INLINE_BYTES: usize = 64 << 10;

/// Batch scoring's options.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScoreQuery {
    /// Input columns copied into each line of a batch answer before the predictions,
    /// comma-separated (`customer,region`); CSV bodies and `dataset_id` only.
    pub keep: Option<String>,
    /// Score every row of this stored dataset (its columns matched to the model's by
    /// name), streamed; the body must be empty.
    pub dataset_id: Option<Uuid>,
}

impl ScoreQuery {
    fn keep(&self) -> Vec<String> {
        self.keep
            .iter()
            .flat_map(|k| k.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// What predict answers in JSON: [`Predictions`] for `instances`; for a CSV body or a
/// stored dataset with `Accept: application/json`, one object per row, keyed as the CSV
/// answer's header.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Documents the answers, which the handlers write themselves.
pub enum PredictAnswer {
    Predictions(Predictions),
    #[schema(example = json!([{"customer": "c00001", "class": "yes", "no": 0.02, "yes": 0.98}]))]
    Rows(Vec<HashMap<String, Value>>),
}

/// Predict: `instances` as JSON, or batch scoring of a CSV body or a stored dataset.
///
/// A CSV body (`Content-Type: text/csv`) has the dataset's columns by name in any order
/// (others are ignored); the answer has one line per row in the body's order: the `keep`
/// columns, then `class` and one probability column per class named by class (a binary
/// model's single output gives both), or one column per regression output named by
/// target. CSV, or JSON objects with `Accept: application/json`. `?dataset_id=` answers
/// the same for every row of a stored dataset, streamed.
#[utoipa::path(post, path = "/predict", tag = "models",
    params(RefParam, ScoreQuery),
    request_body(content(
        (PredictRequest = "application/json"),
        (String = "text/csv", example = "customer,plan,tenure,region\nc00001,pro,30,north\n"),
    )),
    responses(
        (status = 200, description = "Predictions, or a batch answer", content(
            (PredictAnswer = "application/json"),
            (String = "text/csv", example = "customer,class,no,yes\nc00001,yes,0.02,0.98\n"),
        )),
        (status = 400, description = "Malformed JSON or CSV", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A predict key with `dataset_id`: it may not read datasets",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model, or no such dataset", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A row of the wrong width, an unknown or missing feature name, \
            a value that is not a number or outside the f32 range, no rows, more rows than \
            --max-job-memory-bytes allows for this model; a CSV or dataset without a column \
            the model reads, a CSV line with more or fewer fields than the header, a `keep` \
            column the input does not have, `keep` with JSON instances, or a body with \
            `dataset_id`",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn predict(
    State(state): State<AppState>,
    model: Resolved,
    Query(query): Query<ScoreQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response> {
    let served = state.models.get(&state.store, model.id).await?;
    let keep = query.keep();
    if let Some(dataset) = query.dataset_id {
        if !body.is_empty() {
            return Err(Error::Unprocessable(
                "with dataset_id the rows are the dataset's: the body must be empty".into(),
            ));
        }
        let format = Format::accepted(&headers);
        return batch::score_dataset(&state, served, dataset, keep, format).await;
    }
    if let Some("text/csv" | "application/csv") = media_type(&headers).as_deref() {
        // A CSV row is at least a separator per column.
        check_memory(
            &served,
            body.len(),
            served.feature_names.len(),
            state.config.job_memory_limit(),
        )?;
        return batch::score_csv(served, body, keep, Format::accepted(&headers)).await;
    }
    if !keep.is_empty() {
        return Err(Error::Unprocessable(
            "keep applies to CSV bodies and dataset_id; the JSON answer's rows are the \
             instances' in order"
                .into(),
        ));
    }
    // The shortest row JSON allows is `[0,…,0],`: two bytes per feature.
    let row_bytes = 2 * served.feature_names.len() + 2;
    check_memory(
        &served,
        body.len(),
        row_bytes,
        state.config.job_memory_limit(),
    )?;
    let predictions = off_runtime_if_large(body.len(), move || run(&served, &body)).await?;
    Ok(Json(predictions).into_response())
}

/// Runs `work` on the runtime's thread for a body up to [`INLINE_BYTES`], else on a
/// blocking thread.
pub(in crate::http) async fn off_runtime_if_large<T: Send + 'static>(
    body_bytes: usize,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if body_bytes <= INLINE_BYTES {
        return work();
    }
    spawn_blocking_in_span(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

/// Refuses a body whose rows could need more memory than `limit`, before it is parsed,
/// counting the most rows of at least `row_bytes` bytes it can hold.
pub(in crate::http) fn check_memory(
    served: &ServedModel,
    body_bytes: usize,
    row_bytes: usize,
    limit: u64,
) -> Result<()> {
    let rows = body_bytes / row_bytes.max(1) + 1;
    let estimate = served.model.predict_memory(rows);
    if estimate.bytes > limit {
        return Err(Error::TooLarge(format!(
            "a body of {body_bytes} bytes may hold {rows} rows, whose predictions would need \
             an estimated {estimate}, over the limit of {} (--max-job-memory-bytes); send \
             fewer rows per request",
            human(limit)
        )));
    }
    Ok(())
}

fn run(served: &ServedModel, body: &[u8]) -> Result<Predictions> {
    if let Some(names) = served.model.input_names() {
        let x = raw_instances(&served.model, &names, body)?;
        return predict_cells(served, x.view());
    }
    numeric(served, |each| {
        instances::parse_with(body, &served.feature_names, &served.feature_index, each)
    })
}

/// The predictions of rows already in the model's input cells.
pub(in crate::http) fn predict_cells(
    served: &ServedModel,
    x: ArrayView2<'_, f32>,
) -> Result<Predictions> {
    let predictions = served.model.predict_parallel(x, crate::config::cores())?;
    Ok(with_classes(served, predictions))
}

fn with_classes(served: &ServedModel, predictions: Array2<f32>) -> Predictions {
    let classes = served.model.classes(predictions.view());
    Predictions {
        classes: classes.map(|c| Classes::of(&served.model, c)),
        predictions,
    }
}

/// What runs on each part of a numeric body's rows as the parser hands them over.
pub(in crate::http) type PredictPart<'a> =
    &'a (dyn Fn(Instances, usize) -> std::result::Result<Array2<f32>, ModelError> + Sync);

/// The predictions of a numeric model's body, which `parse` reads with one of the
/// `instances` parsers, predicting each part of the rows where it was parsed.
pub(in crate::http) fn numeric(
    served: &ServedModel,
    parse: impl FnOnce(
        PredictPart<'_>,
    ) -> std::result::Result<
        Vec<std::result::Result<Array2<f32>, ModelError>>,
        InstancesError,
    >,
) -> Result<Predictions> {
    let width = served.feature_names.len();
    let cores = crate::config::cores();
    let each = |part: Instances, concurrent: usize| {
        let x = ArrayView2::from_shape((part.rows, width), &part.values)
            .expect("the parser checked every row's width");
        served
            .model
            .predict_parallel(x, (cores / concurrent).max(1))
    };
    let parts = parse(&each).map_err(|e| match e {
        InstancesError::Malformed(text) => Error::BadRequest(text),
        InstancesError::Invalid(text) => Error::Unprocessable(text),
    })?;
    let mut parts = parts
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let predictions = match parts.len() {
        1 => parts.pop().expect("one part"),
        _ => {
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("parts of the same width")
        }
    };
    Ok(with_classes(served, predictions))
}

/// The cells of `instances` for a model that encodes its columns (see [`rows::cells`]).
fn raw_instances(model: &crate::nn::Model, names: &[&str], body: &[u8]) -> Result<Array2<f32>> {
    #[derive(Deserialize)]
    struct RawBody {
        instances: Vec<Value>,
    }
    let body: RawBody = serde_json::from_slice(body).map_err(|e| {
        Error::BadRequest(format!("the body must be {{\"instances\": [...]}}: {e}"))
    })?;
    rows::cells(model, names, &body.instances, "instances")
}
