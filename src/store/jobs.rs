//! Training jobs: the persisted FIFO queue, per-epoch rows, checkpoints and trial results.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::nn::Mode;

use super::registry::{version_of, Promotion};
use super::training::end_training;
use super::{from_json, json, now, parse_id, Dialect, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("unknown job status {other:?}"))),
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub dataset_id: Uuid,
    /// The training spec as submitted (JSON).
    pub spec: Value,
    pub status: JobStatus,
    /// One trial per batch size.
    pub batch_sizes: Vec<usize>,
    /// Epochs per trial.
    pub epochs: usize,
    /// Finished epochs over all trials.
    pub epochs_done: usize,
    /// The quantity that picks the best epoch and trial ("val_loss", ...).
    pub monitor: String,
    /// Whether a larger monitored value is better.
    pub mode: Mode,
    pub best_trial: Option<usize>,
    pub best_epoch: Option<usize>,
    pub best_value: Option<f64>,
    pub stopped_early: Option<bool>,
    pub overfitting_epoch: Option<usize>,
    pub error: Option<String>,
    pub model_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How the latest run reads the rows; `None` before it starts.
    pub data_path: Option<DataPath>,
    /// The admission estimate of the peak memory, in bytes.
    pub estimated_peak_bytes: Option<u64>,
    /// `None` for jobs queued before rows were counted.
    pub rows: Option<JobRows>,
    pub registry: JobRegistry,
    /// The version of `registry.name` its model became, once it succeeded.
    pub model_version: Option<u32>,
    /// Whether `registry.promote` moved, once it succeeded.
    pub promotion: Option<Promotion>,
}

/// What a job asks of the model registry, beside its training spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRegistry {
    /// The name its model becomes the next version of.
    pub name: Option<String>,
    /// The alias of `name` to move to its model when it succeeds.
    pub promote: Option<String>,
    /// Move `promote` only if the model's monitored value is at least as good as the
    /// alias's current target's.
    pub promote_if_better: bool,
}

/// How a job uses its dataset's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobRows {
    pub training: usize,
    pub validation: usize,
    /// Rows of the dataset whose target is missing: left out of training.
    pub unlabelled: usize,
    /// Labelled rows missing a value of a `missing: "drop_row"` column: left out too.
    pub dropped: usize,
}

/// Where a running job's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataPath {
    /// Loaded whole into memory.
    Memory,
    /// Read chunk by chunk from the database (over --dataset-memory-bytes).
    Streamed,
}

impl DataPath {
    fn as_str(self) -> &'static str {
        match self {
            DataPath::Memory => "memory",
            DataPath::Streamed => "streamed",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "memory" => Ok(DataPath::Memory),
            "streamed" => Ok(DataPath::Streamed),
            other => Err(StoreError::Corrupt(format!("unknown data path {other:?}"))),
        }
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    dataset_id: String,
    spec: String,
    status: String,
    batch_sizes: String,
    epochs: i64,
    epochs_done: i64,
    monitor: String,
    monitor_mode: String,
    best_trial: Option<i64>,
    best_epoch: Option<i64>,
    best_value: Option<f64>,
    stopped_early: Option<bool>,
    overfitting_epoch: Option<i64>,
    error: Option<String>,
    model_id: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    data_path: Option<String>,
    estimated_peak_bytes: Option<i64>,
    training_rows: Option<i64>,
    validation_rows: Option<i64>,
    unlabelled_rows: Option<i64>,
    dropped_rows: i64,
    name: Option<String>,
    promote: Option<String>,
    promote_if_better: bool,
    model_version: Option<i64>,
    promotion: Option<String>,
}

const COLUMNS: &str = "id, dataset_id, spec, status, batch_sizes, epochs, epochs_done, \
    monitor, monitor_mode, \
    best_trial, best_epoch, best_value, stopped_early, overfitting_epoch, error, model_id, \
    created_at, started_at, finished_at, data_path, estimated_peak_bytes, \
    training_rows, validation_rows, unlabelled_rows, dropped_rows, \
    name, promote, promote_if_better, model_version, promotion";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self> {
        Ok(Self {
            id: parse_id(&row.id)?,
            dataset_id: parse_id(&row.dataset_id)?,
            spec: from_json(&row.spec, "job spec")?,
            status: JobStatus::parse(&row.status)?,
            batch_sizes: from_json(&row.batch_sizes, "job batch sizes")?,
            epochs: row.epochs as usize,
            epochs_done: row.epochs_done as usize,
            monitor: row.monitor,
            mode: Mode::from_name(&row.monitor_mode).ok_or_else(|| {
                StoreError::Corrupt(format!("monitor mode {:?}", row.monitor_mode))
            })?,
            best_trial: row.best_trial.map(|v| v as usize),
            best_epoch: row.best_epoch.map(|v| v as usize),
            best_value: row.best_value,
            stopped_early: row.stopped_early,
            overfitting_epoch: row.overfitting_epoch.map(|v| v as usize),
            error: row.error,
            model_id: row.model_id.as_deref().map(parse_id).transpose()?,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            data_path: row.data_path.as_deref().map(DataPath::parse).transpose()?,
            estimated_peak_bytes: row.estimated_peak_bytes.map(|b| b as u64),
            rows: match (row.training_rows, row.validation_rows, row.unlabelled_rows) {
                (Some(training), Some(validation), Some(unlabelled)) => Some(JobRows {
                    training: training as usize,
                    validation: validation as usize,
                    unlabelled: unlabelled as usize,
                    dropped: row.dropped_rows as usize,
                }),
                _ => None,
            },
            registry: JobRegistry {
                name: row.name,
                promote: row.promote,
                promote_if_better: row.promote_if_better,
            },
            model_version: row.model_version.map(version_of).transpose()?,
            promotion: row
                .promotion
                .as_deref()
                .map(|text| from_json(text, "job promotion"))
                .transpose()?,
        })
    }
}

/// Consecutive deaths of the process while running a job after which it is failed.
pub const MAX_CRASHES: i64 = 3;

/// What [`Store::requeue_running`] did.
#[derive(Debug, Default)]
pub struct Requeued {
    pub requeued: u64,
    /// Jobs failed by the crash rule.
    pub failed: Vec<Uuid>,
}

pub struct NewJob {
    pub dataset_id: Uuid,
    pub spec: Value,
    pub batch_sizes: Vec<usize>,
    pub epochs: usize,
    pub monitor: String,
    pub mode: Mode,
    pub estimated_peak_bytes: u64,
    pub rows: JobRows,
    pub registry: JobRegistry,
}

impl Store {
    /// Queues a job for an existing dataset (checked in the same statement, so the dataset
    /// cannot be deleted in between).
    pub async fn insert_job(&self, new: NewJob) -> Result<Job> {
        let sql = format!(
            "INSERT INTO jobs (id, dataset_id, spec, status, batch_sizes, epochs, monitor, \
             monitor_mode, created_at, estimated_peak_bytes, training_rows, validation_rows, \
             unlabelled_rows, dropped_rows, name, promote, promote_if_better) \
             SELECT $1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16 \
             WHERE EXISTS (SELECT 1 FROM datasets WHERE id = $2) \
             RETURNING {COLUMNS}"
        );
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql)
                .bind(Uuid::new_v4().to_string())
                .bind(new.dataset_id.to_string())
                .bind(json(&new.spec))
                .bind(json(&new.batch_sizes))
                .bind(new.epochs as i64)
                .bind(&new.monitor)
                .bind(new.mode.name())
                .bind(now())
                .bind(i64::try_from(new.estimated_peak_bytes).unwrap_or(i64::MAX))
                .bind(new.rows.training as i64)
                .bind(new.rows.validation as i64)
                .bind(new.rows.unlabelled as i64)
                .bind(new.rows.dropped as i64)
                .bind(&new.registry.name)
                .bind(&new.registry.promote)
                .bind(new.registry.promote_if_better)
                .fetch_optional(pool)
                .await
        })?;
        row.ok_or(StoreError::NotFound {
            kind: "dataset",
            id: new.dataset_id,
        })?
        .try_into()
    }

    pub async fn job(&self, id: Uuid) -> Result<Job> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?
        .ok_or(StoreError::NotFound { kind: "job", id })?
        .try_into()
    }

    /// Newest first, optionally of one status, with the total count for pagination.
    pub async fn jobs(
        &self,
        status: Option<JobStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<Job>, u64)> {
        let status = status.map(JobStatus::as_str);
        // PostgreSQL infers no type for a parameter only compared with NULL: the cast names it.
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE CAST($1 AS TEXT) IS NULL OR status = $1 \
             ORDER BY seq DESC LIMIT $2 OFFSET $3"
        );
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql)
                .bind(status)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(pool)
                .await
        })?;
        let total: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE CAST($1 AS TEXT) IS NULL OR status = $1",
            )
            .bind(status)
            .fetch_one(pool)
            .await
        })?;
        let jobs = rows.into_iter().map(Job::try_from).collect::<Result<_>>()?;
        Ok((jobs, total as u64))
    }

    /// Marks the oldest queued job running and returns it. On PostgreSQL the oldest
    /// queued row is locked by the claiming statement and skipped by any other claiming
    /// at the same time, so two instances never take the same job; SQLite has one writer.
    pub async fn claim_next_job(&self) -> Result<Option<Job>> {
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $1) \
             WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1{lock}) \
             RETURNING {COLUMNS}"
        );
        on_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql)
                .bind(now())
                .fetch_optional(pool)
                .await
        })?
        .map(Job::try_from)
        .transpose()
    }

    /// Jobs left `running` by a process that is gone: each counts one more crash; those
    /// at [`MAX_CRASHES`] in a row fail, the others go back in the queue (in their
    /// original order) and resume from their last checkpoint.
    pub async fn requeue_running(&self) -> Result<Requeued> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("UPDATE jobs SET crashes = crashes + 1 WHERE status = 'running'")
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        let error = format!(
            "the service process died {MAX_CRASHES} times in a row while running this job, \
             each time before it finished another epoch; it is not resumed again"
        );
        let failed: Vec<String> = on_tx!(&mut tx, conn => {
            sqlx::query_scalar(
                "UPDATE jobs SET status = 'failed', error = $1, finished_at = $2 \
                 WHERE status = 'running' AND crashes >= $3 RETURNING id",
            )
            .bind(&error)
            .bind(now())
            .bind(MAX_CRASHES)
            .fetch_all(conn)
            .await
        })?;
        let mut failed_ids = Vec::with_capacity(failed.len());
        for id in failed {
            let id = parse_id(&id)?;
            end_training(&mut tx, id).await?;
            failed_ids.push(id);
        }
        let requeued = on_tx!(&mut tx, conn => {
            sqlx::query("UPDATE jobs SET status = 'queued' WHERE status = 'running'")
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        tx.commit().await?;
        Ok(Requeued {
            requeued,
            failed: failed_ids,
        })
    }

    /// Records how a running job reads its rows.
    pub async fn set_data_path(&self, id: Uuid, path: DataPath) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE jobs SET data_path = $1 WHERE id = $2")
                .bind(path.as_str())
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Jobs waiting to run.
    pub async fn queued_jobs(&self) -> Result<u64> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                .fetch_one(pool)
                .await
        })?;
        Ok(n as u64)
    }

    /// Puts one running job back in the queue (its process is stopping).
    pub async fn requeue(&self, id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE jobs SET status = 'queued' WHERE id = $1 AND status = 'running'")
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Cancels a job if it is still queued; false when it is not (any more).
    pub async fn cancel_queued(&self, id: Uuid) -> Result<bool> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', finished_at = $1 \
                 WHERE id = $2 AND status = 'queued'",
            )
            .bind(now())
            .bind(id.to_string())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Ends a job as failed or cancelled.
    pub async fn finish_job(&self, id: Uuid, status: JobStatus, error: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("UPDATE jobs SET status = $1, error = $2, finished_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(error)
                .bind(now())
                .bind(id.to_string())
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        end_training(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }
}
