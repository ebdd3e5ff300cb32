//! `POST /models/{ref}/evaluate`: loss and metrics on labelled rows.

use axum::extract::State;
use axum::http::HeaderMap;
use ndarray::Array2;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::csv_body::{self, Wanted};
use super::reference::{RefParam, Resolved};
use super::rows::{self, input_names};
use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Body, Json};
use crate::http::{media_type, AppState};
use crate::nn::{Evaluation, Samples};
use crate::serving::ServedModel;
use crate::telemetry::spawn_blocking_in_span;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(evaluate))
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
#[schema(example = json!({"features": [{"plan": "pro", "tenure": 30}, ["c00002", "basic", null, "north"]],
    "targets": ["yes", "no"]}))]
pub struct LabelledRows {
    /// Rows as predict's `instances`: arrays in `feature_names` order or objects keyed by
    /// column name; numbers, text or null.
    pub features: Vec<Value>,
    /// A label per row (a number, a class name, or null: the row is left out), or an array
    /// of labels per row for several targets.
    pub targets: Vec<Value>,
}

/// Evaluate on labelled rows: JSON, or CSV with the model's column names as a header (any
/// order, other columns ignored; a row without a label is left out, as in training).
#[utoipa::path(post, path = "/evaluate", tag = "models",
    params(RefParam),
    request_body(content(
        (LabelledRows = "application/json"),
        (String = "text/csv", example = "x0,x1,x2,x3,label\n0.1,0.5,-1.2,3.0,1\n"),
    )),
    responses(
        (status = 200, description = "Loss and the spec's metrics", body = EvaluationView),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model, name, alias or version", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Rows or labels that do not fit the model, a column it \
            reads or a target missing from the CSV, a CSV line with more or fewer fields than \
            the header, no labelled row", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn evaluate(
    State(state): State<AppState>,
    model: Resolved,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<EvaluationView>> {
    let served = state.models.get(&state.store, model.id).await?;
    let read: fn(&ServedModel, &[u8]) -> Result<Labelled> = match media_type(&headers).as_deref() {
        Some("application/json") => json_rows,
        Some("text/csv" | "application/csv") => csv_rows,
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Type must be application/json or text/csv, got {}",
                other.unwrap_or("none")
            )))
        }
    };
    let (rows, evaluation) = spawn_blocking_in_span(move || -> Result<_> {
        let (x, y) = read(&served, &body)?;
        let evaluation = served.model.evaluate(Samples::new(x.view(), y.view()))?;
        Ok((x.nrows(), evaluation))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(Json(EvaluationView { rows, evaluation }))
}

/// Rows of cells and their labels.
type Labelled = (Array2<f32>, Array2<f32>);

fn json_rows(served: &ServedModel, body: &[u8]) -> Result<Labelled> {
    let rows: LabelledRows = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Error::Unprocessable(e.to_string())
        } else {
            Error::BadRequest(e.to_string())
        }
    })?;
    let model = &served.model;
    let x = rows::cells(model, &input_names(served), &rows.features, "features")?;
    let labels = rows::labels(model, &served.target_names, &rows.targets)?;
    if labels.len() != x.nrows() {
        return Err(Error::Unprocessable(format!(
            "features has {} rows but targets has {}; both need the same count",
            x.nrows(),
            labels.len()
        )));
    }
    let labelled: Vec<usize> = (0..labels.len()).filter(|&r| labels[r].is_some()).collect();
    if labelled.is_empty() {
        return Err(Error::Unprocessable("no row has a label".into()));
    }
    let x = x.select(ndarray::Axis(0), &labelled);
    let y: Vec<f32> = labels.into_iter().flatten().flatten().collect();
    let y = Array2::from_shape_vec((labelled.len(), served.target_names.len()), y)
        .expect("a label per target and labelled row");
    Ok((x, y))
}

fn csv_rows(served: &ServedModel, body: &[u8]) -> Result<Labelled> {
    let wanted = Wanted {
        targets: &served.target_names,
        keep: &[],
    };
    let rows = csv_body::read(body, &served.model, &input_names(served), &wanted)?;
    Ok((rows.x, rows.y))
}
