//! The storage repository: every SQL statement of the service lives below this module.
//!
//! Ids are stored as hyphenated text and timestamps as RFC 3339 text so the database stays
//! readable with the `sqlite3` shell.

pub mod chunk_codec;
mod chunks;
mod datasets;
mod jobs;
mod models;
mod registry;
mod training;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use uuid::Uuid;

pub use datasets::{
    ColumnReport, ColumnType, Dataset, DatasetWriter, LeftOut, NewDataset, Table, TargetStats,
};
pub use jobs::{DataPath, Job, JobRegistry, JobRows, JobStatus, NewJob, Requeued, MAX_CRASHES};
pub use models::{Completed, JobOutcome, StoredModel};
pub use registry::{
    check_alias, check_name, check_slug, Alias, ModelRef, PromoteRequest, Promotion, RefError,
    LATEST, MAX_SLUG,
};
pub use training::{Checkpoint, EpochRow, TrialResult};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: Uuid },
    /// A name, alias or version that does not exist (the message says which).
    #[error("{0}")]
    Missing(String),
    /// A model an alias points at, which may not be deleted (the message names the aliases).
    #[error("{0}")]
    Aliased(String),
    #[error("dataset {id} is used by {jobs} queued or running job(s); cancel them first")]
    DatasetInUse { id: Uuid, jobs: i64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Connections for dataset uploads only (see [`Store::connect`]).
    uploads: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) and migrates the database.
    ///
    /// WAL lets readers (metrics polls, predictions loading a model) proceed while a job or an
    /// upload writes; the long busy timeout lets an epoch write wait out a large upload's
    /// transaction instead of failing. Pages of 64 KiB (taken only when the file is created)
    /// halve the cost of writing the multi-megabyte row chunks compared with 4 KiB.
    ///
    /// Uploads get connections of their own that commit with a full sync of the WAL and do
    /// not checkpoint on commit: the committing connection would otherwise copy the whole
    /// dataset a second time into the database file before answering. The chunks are
    /// durable in the synced WAL; [`DatasetWriter::commit`] starts the checkpoint in the
    /// background instead.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let options = options
            .create_if_missing(true)
            .page_size(1 << 16)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(60));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!().run(&pool).await?;
        let uploads = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(
                options
                    .synchronous(SqliteSynchronous::Full)
                    .pragma("wal_autocheckpoint", "0"),
            );
        Ok(Self { pool, uploads })
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.uploads.close().await;
        self.pool.close().await;
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn parse_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("bad id {text:?}: {e}")))
}
