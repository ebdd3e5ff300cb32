//! `/datasets`: upload (CSV streamed, or JSON), list, show, delete.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{Error, Problem, Result};
use super::extract::{Json, Path, Query};
use super::page::{Page, PageQuery};
use super::{media_type, AppState};
use crate::ingest::{self, CsvOptions, JsonDataset};
use crate::store::Dataset;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_dataset, list_datasets))
        .routes(routes!(get_dataset, delete_dataset))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetView {
    pub id: Uuid,
    pub name: String,
    pub rows: usize,
    /// Number of feature columns (the network's input width).
    pub features: usize,
    /// Number of target columns.
    pub targets: usize,
    /// Every column in upload order.
    pub columns: Vec<String>,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Dataset> for DatasetView {
    fn from(d: Dataset) -> Self {
        Self {
            id: d.id,
            name: d.name,
            rows: d.rows,
            features: d.feature_names.len(),
            targets: d.target_names.len(),
            columns: d.columns,
            feature_names: d.feature_names,
            target_names: d.target_names,
            created_at: d.created_at,
        }
    }
}

/// Upload a dataset.
///
/// CSV (`text/csv`): a header line of column names, then one number per field. The body is
/// parsed as it streams in. Errors name the line and column at fault, and nothing is stored
/// when any row is bad.
#[utoipa::path(post, path = "/datasets", tag = "datasets",
    params(
        ("target" = Option<Vec<String>>, Query, explode = true,
            description = "Target column (repeat for several); default: the last column. CSV only."),
        ("name" = Option<String>, Query, description = "Dataset name (CSV; JSON has a `name` field)."),
    ),
    request_body(content(
        (String = "text/csv", example = "x0,x1,x2,x3,label\n0.1,0.5,-1.2,3.0,1\n"),
        (JsonDataset = "application/json"),
    )),
    responses(
        (status = 201, description = "Stored", body = DatasetView,
            headers(("Location" = String, description = "The new dataset's URL"))),
        (status = 400, description = "Malformed body or query (unknown target column)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Neither text/csv nor application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A bad value, ragged row, no rows, NaN or infinity",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn upload_dataset(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<DatasetView>)> {
    let mut name = None;
    let mut options = CsvOptions {
        chunk_bytes: state.config.dataset_chunk_bytes,
        ..CsvOptions::default()
    };
    for (key, value) in query {
        match key.as_str() {
            "name" => name = Some(value),
            "target" => options.targets.push(value),
            _ => {
                return Err(Error::BadRequest(format!(
                    "unknown query parameter {key:?}; expected `name` or `target`"
                )))
            }
        }
    }
    let dataset = match media_type(&headers).as_deref() {
        Some("text/csv" | "application/csv") => {
            let body = request.into_body().into_data_stream();
            let limit = state.config.max_body_bytes;
            ingest::store_csv(&state.store, body, options, name, limit).await?
        }
        Some("application/json") => {
            if name.is_some() || !options.targets.is_empty() {
                return Err(Error::BadRequest(
                    "`name` and `target` query parameters apply to CSV; a JSON body carries \
                     `name` and separate `features` and `targets`"
                        .into(),
                ));
            }
            let Json(body) = Json::<JsonDataset>::from_request(request, &state).await?;
            ingest::store_json(&state.store, body, state.config.dataset_chunk_bytes).await?
        }
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Type must be text/csv or application/json, got {}",
                other.unwrap_or("none")
            )))
        }
    };
    let mut response_headers = HeaderMap::new();
    let location = format!("/datasets/{}", dataset.id);
    response_headers.insert(header::LOCATION, location.parse().expect("ASCII URL"));
    Ok((StatusCode::CREATED, response_headers, Json(dataset.into())))
}

/// List datasets, newest first.
#[utoipa::path(get, path = "/datasets", tag = "datasets", params(PageQuery),
    responses((status = 200, description = "A page of datasets", body = Page<DatasetView>)))]
async fn list_datasets(
    State(state): State<AppState>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<DatasetView>>> {
    let (datasets, total) = state.store.datasets(page.limit(), page.offset()).await?;
    Ok(Json(Page::new(datasets, total, &page)))
}

/// Show one dataset's metadata.
#[utoipa::path(get, path = "/datasets/{id}", tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The dataset", body = DatasetView),
        (status = 404, description = "No such dataset", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn get_dataset(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<DatasetView>> {
    Ok(Json(state.store.dataset(id).await?.into()))
}

/// Delete a dataset and its rows.
#[utoipa::path(delete, path = "/datasets/{id}", tag = "datasets",
    params(("id" = Uuid, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such dataset", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "A queued or running job uses it", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn delete_dataset(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<StatusCode> {
    state.store.delete_dataset(id).await?;
    tracing::info!(dataset = %id, "dataset deleted");
    Ok(StatusCode::NO_CONTENT)
}
