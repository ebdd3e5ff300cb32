//! `/datasets`: upload (CSV or Parquet streamed, or JSON), list, show, delete.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::{Error, Problem, Result};
use super::extract::{Json, Path, Query};
use super::page::{Page, PageQuery};
use super::{media_type, AppState};
use crate::ingest::{self, CsvOptions, JsonDataset};
use crate::store::{ColumnReport, ColumnType, Dataset};

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
    /// What each column holds, in stored order (features, then targets). Empty for
    /// datasets stored before columns were typed (complete numbers).
    pub column_report: Vec<ColumnView>,
    pub created_at: DateTime<Utc>,
}

/// One column as the upload found it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    pub name: String,
    /// `number`, `category` or `identifier` (every value a distinct text: left out of
    /// training).
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Cells that were a missing marker.
    pub missing: u64,
    /// Cells holding a number (in a category column: numbers that are levels by value).
    pub numbers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Population standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Distinct text values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct: Option<usize>,
    /// The most frequent text values (up to 10), most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<LevelCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LevelCount {
    pub value: String,
    pub count: u64,
}

/// Text values a column view lists.
const TOP_LEVELS: usize = 10;

impl From<&ColumnReport> for ColumnView {
    fn from(r: &ColumnReport) -> Self {
        let mut top: Vec<LevelCount> = r
            .levels
            .iter()
            .zip(&r.level_counts)
            .map(|(value, &count)| LevelCount {
                value: value.clone(),
                count,
            })
            .collect();
        // Stable: ties stay in order of first appearance.
        top.sort_by_key(|l| std::cmp::Reverse(l.count));
        top.truncate(TOP_LEVELS);
        Self {
            name: r.name.clone(),
            kind: r.kind,
            missing: r.missing,
            numbers: r.numbers,
            min: r.min,
            max: r.max,
            mean: r.mean,
            std: r.std,
            distinct: (r.distinct > 0).then_some(r.distinct),
            top,
        }
    }
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
            column_report: d.column_reports.iter().map(ColumnView::from).collect(),
            created_at: d.created_at,
        }
    }
}

/// The media type Apache Parquet registered.
const PARQUET: &str = "application/vnd.apache.parquet";

/// A Parquet file's bytes, for the OpenAPI document only (the body itself streams).
pub enum ParquetFile {}

impl PartialSchema for ParquetFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for ParquetFile {}

/// Upload a dataset.
///
/// CSV (`text/csv`): a header line of column names, then the rows. A field is a number, a
/// missing marker (an empty field, `NA`, `N/A`, `NaN`, `nan`, `null`, `None` unless
/// `na_values` says otherwise) or text. Each column is typed: `number` when every present
/// value is one, `category` when it has text (stored as codes into its vocabulary),
/// `identifier` when every value is a distinct text. The body is parsed as it streams in.
/// Errors name the line and column at fault, and nothing is stored when any row is bad.
///
/// Parquet (`application/vnd.apache.parquet`, as pandas' `to_parquet` and warehouses write
/// it; uncompressed or snappy): the file's own types are used. Integer and float columns are
/// numbers, string and dictionary-encoded string columns are categories, booleans are
/// categories with the levels `true` and `false`, and nulls (and NaN floats) are missing
/// values; text is kept as written unless `na_values` names texts that mean missing too.
/// `target`, `types` and `name` work as for CSV. A column of another type (nested, binary,
/// dates) is refused, naming it.
#[utoipa::path(post, path = "/datasets", tag = "datasets",
    params(
        ("target" = Option<Vec<String>>, Query, explode = true,
            description = "Target column (repeat for several); default: the last column. CSV and Parquet."),
        ("name" = Option<String>, Query, description = "Dataset name (CSV and Parquet; JSON has a `name` field)."),
        ("na_values" = Option<String>, Query,
            description = "Comma-separated fields that mean a missing value, in place of the default list (CSV) or besides nulls (Parquet, default: none); empty: none."),
        ("types" = Option<String>, Query,
            description = "Column types given rather than found, `column:number` or `column:category`, comma-separated (a postcode is a category). CSV and Parquet."),
    ),
    request_body(content(
        (String = "text/csv", example = "x0,x1,x2,x3,label\n0.1,0.5,-1.2,3.0,1\n"),
        (ParquetFile = "application/vnd.apache.parquet"),
        (JsonDataset = "application/json"),
    )),
    responses(
        (status = 201, description = "Stored", body = DatasetView,
            headers(("Location" = String, description = "The new dataset's URL"))),
        (status = 400, description = "Malformed body or query (not a Parquet file, unknown target column, unknown column or type in `types`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over --max-body-bytes", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Not text/csv, application/vnd.apache.parquet or application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "A bad value (text in a column typed `number`, an infinity), a ragged row, no rows, a target mixing numbers and text, a Parquet column of a type a dataset cannot hold",
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
            "na_values" => {
                let list = options.na_values.get_or_insert_with(Vec::new);
                if !value.is_empty() {
                    list.extend(value.split(',').map(str::to_owned));
                }
            }
            "types" => {
                for pair in value.split(',').filter(|p| !p.is_empty()) {
                    options.types.push(column_type(pair)?);
                }
            }
            _ => {
                return Err(Error::BadRequest(format!(
                    "unknown query parameter {key:?}; expected `name`, `target`, `na_values` \
                     or `types`"
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
        Some(PARQUET) => {
            let body = request.into_body().into_data_stream();
            let limit = state.config.max_body_bytes;
            ingest::store_parquet(&state.store, body, options, name, limit).await?
        }
        Some("application/json") => {
            if name.is_some()
                || !options.targets.is_empty()
                || options.na_values.is_some()
                || !options.types.is_empty()
            {
                return Err(Error::BadRequest(
                    "`name`, `target`, `na_values` and `types` query parameters apply to CSV and \
                     Parquet; a JSON body carries `name` and separate `features` and `targets`"
                        .into(),
                ));
            }
            let Json(body) = Json::<JsonDataset>::from_request(request, &state).await?;
            ingest::store_json(&state.store, body, state.config.dataset_chunk_bytes).await?
        }
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Type must be text/csv, {PARQUET} or application/json, got {}",
                other.unwrap_or("none")
            )))
        }
    };
    let mut response_headers = HeaderMap::new();
    let location = format!("/datasets/{}", dataset.id);
    response_headers.insert(header::LOCATION, location.parse().expect("ASCII URL"));
    Ok((StatusCode::CREATED, response_headers, Json(dataset.into())))
}

/// `zip:category` → ("zip", category).
fn column_type(pair: &str) -> Result<(String, ColumnType)> {
    let bad = || {
        Error::BadRequest(format!(
            "`types` entry {pair:?}: expected `column:number` or `column:category`"
        ))
    };
    let (column, kind) = pair.rsplit_once(':').ok_or_else(bad)?;
    let kind = match kind {
        "number" => ColumnType::Number,
        "category" => ColumnType::Category,
        _ => return Err(bad()),
    };
    if column.is_empty() {
        return Err(bad());
    }
    Ok((column.to_owned(), kind))
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
