//! `POST /models/{id}/predict`.

use std::borrow::Cow;

use axum::extract::State;
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Body, Json, Path};
use crate::http::AppState;
use crate::nn::{human, RawValue};
use crate::parse::instances::{self, InstancesError};
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
    fn of(model: &crate::nn::Model, indices: Vec<usize>) -> Classes {
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

/// Predict.
#[utoipa::path(post, path = "/models/{id}/predict", tag = "models",
    params(("id" = Uuid, Path, description = "Model id")),
    request_body = PredictRequest,
    responses(
        (status = 200, description = "Predictions", body = Predictions),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A row of the wrong width, an unknown or missing feature name, \
            a value that is not a number or outside the f32 range, no rows, or more rows than \
            --max-job-memory-bytes allows for this model",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn predict(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Body(body): Body,
) -> Result<Json<Predictions>> {
    let served = state.models.get(&state.store, id).await?;
    check_memory(&served, body.len(), state.config.job_memory_limit())?;
    let predictions = if body.len() <= INLINE_BYTES {
        run(&served, &body)?
    } else {
        spawn_blocking_in_span(move || run(&served, &body))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    Ok(Json(predictions))
}

/// Refuses a body whose rows could need more memory than `limit`, before it is parsed.
/// The shortest row the body formats allow is `[0,…,0],`: two bytes per feature.
fn check_memory(served: &ServedModel, body_bytes: usize, limit: u64) -> Result<()> {
    let width = served.feature_names.len().max(1);
    let rows = body_bytes / (2 * width + 2) + 1;
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
        let x = raw_rows(&served.model, &names, body)?;
        let predictions = served
            .model
            .predict_parallel(x.view(), crate::config::cores())?;
        let classes = served.model.classes(predictions.view());
        return Ok(Predictions {
            classes: classes.map(|c| Classes::of(&served.model, c)),
            predictions,
        });
    }
    let width = served.feature_names.len();
    let cores = crate::config::cores();
    let parts = instances::parse_with(
        body,
        &served.feature_names,
        &served.feature_index,
        |part, concurrent| {
            let x = ArrayView2::from_shape((part.rows, width), &part.values)
                .expect("the parser checked every row's width");
            served
                .model
                .predict_parallel(x, (cores / concurrent).max(1))
        },
    )
    .map_err(|e| match e {
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
    let classes = served.model.classes(predictions.view());
    Ok(Predictions {
        classes: classes.map(|c| Classes::of(&served.model, c)),
        predictions,
    })
}

/// The cells of `instances` for a model that encodes its columns: each row an object keyed
/// by column name (a key left out is a missing value) or an array in column order; values
/// are numbers, text or `null`.
fn raw_rows(model: &crate::nn::Model, names: &[&str], body: &[u8]) -> Result<Array2<f32>> {
    #[derive(serde::Deserialize)]
    struct RawBody {
        instances: Vec<Value>,
    }
    let body: RawBody = serde_json::from_slice(body).map_err(|e| {
        Error::BadRequest(format!("the body must be {{\"instances\": [...]}}: {e}"))
    })?;
    if body.instances.is_empty() {
        return Err(Error::Unprocessable(
            "instances is empty: nothing to predict".into(),
        ));
    }
    let width = names.len();
    let mut x = Array2::zeros((body.instances.len(), width));
    for (r, instance) in body.instances.iter().enumerate() {
        let mut row = x.row_mut(r);
        let cell = |c: usize, v: &Value| -> Result<f32> {
            let raw = match v {
                Value::Null => RawValue::Missing,
                Value::Number(n) => RawValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(t) => RawValue::Text(t),
                other => {
                    return Err(Error::Unprocessable(format!(
                        "instances[{r}].{}: expected a number, a text or null, got {other}",
                        names[c]
                    )))
                }
            };
            model
                .cell_of(c, raw)
                .map_err(|e| Error::Unprocessable(format!("instances[{r}]: {e}")))
        };
        match instance {
            Value::Object(fields) => {
                if let Some(unknown) = fields.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(Error::Unprocessable(format!(
                        "instances[{r}] has the unknown column {unknown:?}; the model's columns \
                         are {names:?}"
                    )));
                }
                for (c, name) in names.iter().enumerate() {
                    row[c] = cell(c, fields.get(*name).unwrap_or(&Value::Null))?;
                }
            }
            Value::Array(values) if values.len() == width => {
                for (c, v) in values.iter().enumerate() {
                    row[c] = cell(c, v)?;
                }
            }
            Value::Array(values) => {
                return Err(Error::Unprocessable(format!(
                    "instances[{r}] has {} values; the model takes {width} columns: {names:?}",
                    values.len()
                )))
            }
            other => {
                return Err(Error::Unprocessable(format!(
                    "instances[{r}] must be an object keyed by column name or an array, got {other}"
                )))
            }
        }
    }
    Ok(x)
}
