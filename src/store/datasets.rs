//! Datasets: metadata rows and f32 row chunks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{chunk_codec, from_json, json, now, Db, Result, Store, StoreError, Tx};
use crate::nn::{Column, ColumnKind};

/// What spec validation needs to know about one target column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetStats {
    pub min: f64,
    pub max: f64,
    /// Every value is a whole number (class labels are).
    pub integral: bool,
}

/// What a column holds, decided at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Every present value is a number.
    Number,
    /// Text levels (numbers among them are levels too).
    Category,
    /// Every value a distinct text: an id or a name, left out of training unless a job
    /// names it.
    Identifier,
}

/// One column as the upload found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Cells that were a missing marker.
    pub missing: u64,
    /// Cells holding a number, and their range, mean and population standard deviation.
    pub numbers: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Distinct text values.
    #[serde(default)]
    pub distinct: usize,
    /// The text levels in code order (the chunks' level cells index this list), each with
    /// the number of cells holding it; an identifier with more than [`IDENTIFIER_KEPT`]
    /// keeps only its first few, as a sample.
    pub levels: Vec<String>,
    pub level_counts: Vec<u64>,
}

/// The values of an identifier column a stored report keeps, as a sample.
const IDENTIFIER_SAMPLE: usize = 10;
/// Identifiers with at most this many values keep them all, so a job can still train on
/// one (a high-cardinality category in a small table looks like an identifier).
const IDENTIFIER_KEPT: usize = 10_000;

impl ColumnReport {
    /// Drops what a stored dataset never reads: a large identifier's million names would
    /// weigh on every read of the dataset, and a job can hardly learn from them.
    fn compact(&mut self) {
        if self.kind == ColumnType::Identifier && self.levels.len() > IDENTIFIER_KEPT {
            self.levels.truncate(IDENTIFIER_SAMPLE);
            self.level_counts.truncate(IDENTIFIER_SAMPLE);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub id: Uuid,
    pub name: String,
    pub rows: usize,
    /// Every column in upload order.
    pub columns: Vec<String>,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    pub target_stats: Vec<TargetStats>,
    pub chunk_rows: usize,
    /// Per stored column (features, then targets); empty for datasets stored before
    /// columns were typed, which hold complete numbers.
    pub column_reports: Vec<ColumnReport>,
    /// Rows whose target is missing (stored, left out of training).
    pub unlabelled_rows: usize,
    /// The missing-value markers the upload read (`None`: the defaults).
    pub na_values: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    /// What a job leaves out besides the unlabelled rows; not stored with the dataset.
    pub left_out: LeftOut,
}

/// The rows a job's `missing: "drop_row"` columns leave out of training.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftOut {
    /// Feature columns a trained row must have.
    pub required: Vec<usize>,
    /// Labelled rows missing one of them.
    pub rows: usize,
}

impl Dataset {
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn targets(&self) -> usize {
        self.target_names.len()
    }

    /// Rows training reads: those with a target and every required cell.
    pub fn labelled_rows(&self) -> usize {
        self.rows - self.unlabelled_rows - self.left_out.rows
    }

    /// Whether training reads fewer rows than are stored, so which depends on the cells.
    pub fn leaves_rows_out(&self) -> bool {
        self.unlabelled_rows > 0 || !self.left_out.required.is_empty()
    }

    /// The feature columns' types for the engine, when any is not a complete number
    /// column (else the engine takes the numbers as they are).
    pub fn feature_columns(&self) -> Vec<Column> {
        let features = &self.column_reports[..self.features().min(self.column_reports.len())];
        features
            .iter()
            .map(|r| Column {
                name: r.name.clone(),
                kind: match r.kind {
                    ColumnType::Number => ColumnKind::Number,
                    ColumnType::Category => ColumnKind::Category {
                        levels: r.levels.clone(),
                    },
                    ColumnType::Identifier => ColumnKind::Identifier {
                        levels: if r.levels.len() == r.distinct {
                            r.levels.clone()
                        } else {
                            Vec::new()
                        },
                    },
                },
                has_missing: r.missing > 0,
            })
            .collect()
    }

    /// Stored rows (cells, features then targets) as training reads them: without the
    /// rows whose target or a required cell is missing, and with text labels as class
    /// indices in the sorted order of the labels (the upload stored them in order of first
    /// appearance).
    pub fn training_rows(&self, values: &mut Vec<f32>) {
        let (features, width) = (self.features(), self.features() + self.targets());
        if self.leaves_rows_out() {
            chunk_codec::keep_complete(values, width, features, &self.left_out.required);
        }
        let targets = self.column_reports.get(features..).unwrap_or_default();
        for (j, report) in targets.iter().enumerate() {
            if report.kind != ColumnType::Category {
                continue;
            }
            let class_of_code = class_of_code(&report.levels);
            for row in values.chunks_exact_mut(width) {
                let code = row[features + j] as usize;
                if let Some(&class) = class_of_code.get(code) {
                    row[features + j] = class as f32;
                }
            }
        }
    }

    /// The name of a target column whose every value is a distinct text.
    pub fn identifier_target(&self) -> Option<&str> {
        let targets = self
            .column_reports
            .get(self.features()..)
            .unwrap_or_default();
        targets
            .iter()
            .find(|r| r.kind == ColumnType::Identifier)
            .map(|r| r.name.as_str())
    }

    /// The labels of a single text target column, in class-index order (sorted).
    pub fn class_names(&self) -> Option<Vec<String>> {
        match &self.column_reports[self.features().min(self.column_reports.len())..] {
            [target] if target.kind == ColumnType::Category => {
                let mut labels = target.levels.clone();
                labels.sort_unstable();
                Some(labels)
            }
            _ => None,
        }
    }
}

/// The class index of each label code: the label's rank in sorted order, so `no` is 0 and
/// `yes` 1, as a user of a yes/no label expects the probability to be of `yes`.
fn class_of_code(levels: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_unstable_by(|&a, &b| levels[a].cmp(&levels[b]));
    let mut class = vec![0; levels.len()];
    for (rank, code) in order.into_iter().enumerate() {
        class[code] = rank;
    }
    class
}

/// A table's shape, known once every row has been parsed (the rows went to the chunks).
#[derive(Debug, Clone)]
pub struct Table {
    pub rows: usize,
    /// Every column in upload order.
    pub columns: Vec<String>,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    pub target_stats: Vec<TargetStats>,
    pub chunk_rows: usize,
    pub column_reports: Vec<ColumnReport>,
    pub unlabelled_rows: usize,
    /// The missing-value markers it was read with (`None`: the defaults).
    pub na_values: Option<Vec<String>>,
}

/// What `DatasetWriter::commit` records beside the chunks.
#[derive(Debug, Clone)]
pub struct NewDataset {
    pub name: String,
    pub table: Table,
}

#[derive(sqlx::FromRow)]
struct DatasetRow {
    id: String,
    name: String,
    rows: i64,
    columns: String,
    feature_names: String,
    target_names: String,
    target_stats: String,
    chunk_rows: i64,
    column_reports: String,
    unlabelled_rows: i64,
    na_values: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<DatasetRow> for Dataset {
    type Error = StoreError;

    fn try_from(row: DatasetRow) -> Result<Self> {
        Ok(Self {
            id: super::parse_id(&row.id)?,
            name: row.name,
            rows: row.rows as usize,
            columns: from_json(&row.columns, "dataset columns")?,
            feature_names: from_json(&row.feature_names, "dataset feature names")?,
            target_names: from_json(&row.target_names, "dataset target names")?,
            target_stats: from_json(&row.target_stats, "dataset target stats")?,
            chunk_rows: row.chunk_rows as usize,
            column_reports: from_json(&row.column_reports, "dataset column reports")?,
            unlabelled_rows: row.unlabelled_rows as usize,
            na_values: row
                .na_values
                .as_deref()
                .map(|v| from_json(v, "dataset missing markers"))
                .transpose()?,
            created_at: row.created_at,
            left_out: LeftOut::default(),
        })
    }
}

const COLUMNS: &str = "id, name, rows, columns, feature_names, target_names, target_stats, \
                       chunk_rows, column_reports, unlabelled_rows, na_values, created_at";

/// An upload in progress: chunks go into one transaction, so an upload that fails at any
/// point (bad row, client gone, server stopped) leaves nothing behind.
pub struct DatasetWriter {
    tx: Tx,
    id: Uuid,
    chunks: i64,
    /// Where the checkpoint runs after the commit.
    store: Store,
}

impl DatasetWriter {
    /// Appends `rows` rows encoded as little-endian f32 (features, then targets, per row).
    pub async fn insert_chunk(&mut self, rows: usize, data: &[u8]) -> Result<()> {
        on_tx!(&mut self.tx, conn => {
            sqlx::query(
                "INSERT INTO dataset_chunks (dataset_id, idx, rows, data) VALUES ($1, $2, $3, $4)",
            )
            .bind(self.id.to_string())
            .bind(self.chunks)
            .bind(rows as i64)
            .bind(data)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        self.chunks += 1;
        Ok(())
    }

    pub async fn commit(mut self, meta: NewDataset) -> Result<Dataset> {
        let dataset = Dataset {
            id: self.id,
            name: meta.name,
            rows: meta.table.rows,
            columns: meta.table.columns,
            feature_names: meta.table.feature_names,
            target_names: meta.table.target_names,
            target_stats: meta.table.target_stats,
            chunk_rows: meta.table.chunk_rows,
            column_reports: {
                let mut reports = meta.table.column_reports;
                reports.iter_mut().for_each(ColumnReport::compact);
                reports
            },
            unlabelled_rows: meta.table.unlabelled_rows,
            na_values: meta.table.na_values,
            created_at: now(),
            left_out: LeftOut::default(),
        };
        let sql = format!(
            "INSERT INTO datasets ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        on_tx!(&mut self.tx, conn => {
            sqlx::query(&sql)
                .bind(dataset.id.to_string())
                .bind(&dataset.name)
                .bind(dataset.rows as i64)
                .bind(json(&dataset.columns))
                .bind(json(&dataset.feature_names))
                .bind(json(&dataset.target_names))
                .bind(json(&dataset.target_stats))
                .bind(dataset.chunk_rows as i64)
                .bind(json(&dataset.column_reports))
                .bind(dataset.unlabelled_rows as i64)
                .bind(dataset.na_values.as_ref().map(json))
                .bind(dataset.created_at)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        self.tx.commit().await?;
        // Moves the upload from the WAL into the database file off the request path;
        // should it fail, the next automatic checkpoint of the main pool does the same.
        if let Db::Sqlite { pool, .. } = self.store.db {
            tokio::spawn(async move {
                if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(%err, "checkpoint after an upload failed");
                }
            });
        }
        Ok(dataset)
    }
}

impl Store {
    pub async fn begin_dataset(&self) -> Result<DatasetWriter> {
        let tx = match &self.db {
            Db::Sqlite { uploads, .. } => Tx::Sqlite(uploads.begin().await?),
            Db::Postgres { .. } => self.begin().await?,
        };
        Ok(DatasetWriter {
            tx,
            id: Uuid::new_v4(),
            chunks: 0,
            store: self.clone(),
        })
    }

    pub async fn dataset(&self, id: Uuid) -> Result<Dataset> {
        let sql = format!("SELECT {COLUMNS} FROM datasets WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as::<_, DatasetRow>(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?
        .ok_or(StoreError::NotFound {
            kind: "dataset",
            id,
        })?
        .try_into()
    }

    /// Newest first, with the total count for pagination.
    pub async fn datasets(&self, limit: u32, offset: u64) -> Result<(Vec<Dataset>, u64)> {
        let sql = format!(
            "SELECT {COLUMNS} FROM datasets ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
        );
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, DatasetRow>(&sql)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(pool)
                .await
        })?;
        let total: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM datasets")
                .fetch_one(pool)
                .await
        })?;
        let datasets = rows
            .into_iter()
            .map(Dataset::try_from)
            .collect::<Result<_>>()?;
        Ok((datasets, total as u64))
    }

    /// Deletes a dataset unless a queued or running job needs it; the check and the delete
    /// are one statement, so a job submitted concurrently cannot slip in between.
    pub async fn delete_dataset(&self, id: Uuid) -> Result<()> {
        let deleted = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM datasets WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM jobs WHERE dataset_id = $1 AND status IN ('queued', 'running'))",
            )
            .bind(id.to_string())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        if deleted == 1 {
            return Ok(());
        }
        let jobs: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE dataset_id = $1 AND status IN ('queued', 'running')",
            )
            .bind(id.to_string())
            .fetch_one(pool)
            .await
        })?;
        if jobs > 0 {
            Err(StoreError::DatasetInUse { id, jobs })
        } else {
            Err(StoreError::NotFound {
                kind: "dataset",
                id,
            })
        }
    }

    /// Reads the whole matrix into separate feature and target buffers (row-major).
    pub async fn dataset_matrix(&self, dataset: &Dataset) -> Result<(Vec<f32>, Vec<f32>)> {
        use futures_util::TryStreamExt;

        let (features, targets) = (dataset.features(), dataset.targets());
        let width = features + targets;
        let mut x = Vec::with_capacity(dataset.rows * features);
        let mut y = Vec::with_capacity(dataset.rows * targets);
        let id = dataset.id.to_string();
        let mut values = Vec::new();
        on_pool!(self, pool => {
            let mut chunks = sqlx::query_as::<_, (i64, Vec<u8>)>(
                "SELECT rows, data FROM dataset_chunks WHERE dataset_id = $1 ORDER BY idx",
            )
            .bind(&id)
            .fetch(pool);
            while let Some((rows, data)) = chunks.try_next().await? {
                chunk_codec::check(&data, rows as usize, width).map_err(|e| {
                    StoreError::Corrupt(format!("dataset {} has {e}", dataset.id))
                })?;
                values.clear();
                values.extend(chunk_codec::values(&data));
                dataset.training_rows(&mut values);
                for row in values.chunks_exact(width) {
                    let (xs, ys) = row.split_at(features);
                    x.extend_from_slice(xs);
                    y.extend_from_slice(ys);
                }
            }
        });
        if x.len() != dataset.labelled_rows() * features {
            return Err(StoreError::Corrupt(format!(
                "dataset {} should have {} labelled rows but its chunks hold {}",
                dataset.id,
                dataset.labelled_rows(),
                x.len() / features.max(1)
            )));
        }
        Ok((x, y))
    }
}
