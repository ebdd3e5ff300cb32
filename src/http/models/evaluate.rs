//! `POST /models/{id}/evaluate`: loss and metrics on labelled rows.

use axum::extract::State;
use axum::http::HeaderMap;
use ndarray::Array2;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Body, Json, Path};
use crate::http::{media_type, AppState};
use crate::ingest::{self, CsvOptions, JsonTargets};
use crate::nn::cell::{self, Cell};
use crate::nn::{Evaluation, Model, RawValue, Samples};
use crate::store::{chunk_codec, ColumnReport};
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
        (status = 413, description = "Body over --max-body-bytes", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Rows or labels that do not fit the model", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn evaluate(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Body(body): Body,
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
                ..CsvOptions::default()
            };
            let model = served.model.clone();
            spawn_blocking_in_span(move || csv_matrix(&body, &options, &model))
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
    let evaluation =
        spawn_blocking_in_span(move || served.model.evaluate(Samples::new(x.view(), y.view())))
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

fn csv_matrix(
    body: &[u8],
    options: &CsvOptions,
    model: &Model,
) -> Result<(Array2<f32>, Array2<f32>)> {
    let mut values = Vec::new();
    let parsed = ingest::parse_csv(body, options, |chunk| {
        values.extend(chunk_codec::values(&chunk.data));
        Ok(())
    })?;
    let width = parsed.feature_names.len() + parsed.target_names.len();
    let features = parsed.feature_names.len();
    if model.input_names().is_some() {
        to_model_cells(&mut values, width, features, &parsed.column_reports, model)?;
    }
    let rows = values.len() / width;
    let matrix = Array2::from_shape_vec((rows, width), values).expect("whole rows");
    let x = matrix.slice(ndarray::s![.., ..features]).to_owned();
    let y = matrix.slice(ndarray::s![.., features..]).to_owned();
    Ok((x, y))
}

/// The body's cells in the model's terms: a text cell's code indexes the body's own
/// vocabulary, so it is looked up again by its text in the model's; text labels become the
/// model's class indices, and rows without a label are left out, as in training.
fn to_model_cells(
    values: &mut Vec<f32>,
    width: usize,
    features: usize,
    reports: &[ColumnReport],
    model: &Model,
) -> Result<()> {
    let mut recode = Vec::with_capacity(features);
    for (c, report) in reports[..features].iter().enumerate() {
        let cells = report
            .levels
            .iter()
            .map(|level| model.cell_of(c, RawValue::Text(level)))
            .collect::<std::result::Result<Vec<f32>, String>>()
            .map_err(Error::Unprocessable)?;
        recode.push(cells);
    }
    let mut classes = Vec::new();
    for report in &reports[features..] {
        let names = model.class_names();
        let of_level = report
            .levels
            .iter()
            .map(
                |label| match names.and_then(|n| n.iter().position(|c| c == label)) {
                    Some(class) => Ok(class as f32),
                    None => Err(Error::Unprocessable(format!(
                        "target {:?}: the model has no class {label:?}; its classes are {:?}",
                        report.name,
                        names.unwrap_or_default()
                    ))),
                },
            )
            .collect::<Result<Vec<f32>>>()?;
        classes.push(of_level);
    }
    for row in values.chunks_exact_mut(width) {
        for (v, recode) in row[..features].iter_mut().zip(&recode) {
            if let Cell::Level(code) = cell::decode(*v) {
                *v = recode.get(code as usize).copied().unwrap_or(cell::UNSEEN);
            }
        }
        for (v, classes) in row[features..].iter_mut().zip(&classes) {
            if !classes.is_empty() && !v.is_nan() {
                *v = classes[*v as usize];
            }
        }
    }
    chunk_codec::keep_labelled(values, width, features);
    if values.is_empty() {
        return Err(Error::Unprocessable("no row has a label".into()));
    }
    Ok(())
}
