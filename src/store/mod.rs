//! The storage repository: every SQL statement of the service lives below this module, and
//! nothing above it knows which database runs: SQLite (embedded, the default) or PostgreSQL
//! (shared by several instances).
//!
//! Each statement is written once, in the SQL both take (`$N` parameters, `RETURNING`,
//! `ON CONFLICT`), and compiled for each backend by [`on_pool!`] and [`on_tx!`]; the few
//! places where the dialects differ ask [`Store::dialect`]. Ids are stored as hyphenated
//! text so the database stays readable with the `sqlite3` and `psql` shells; timestamps as
//! RFC 3339 text on SQLite and `timestamptz` on PostgreSQL, both to the microsecond.

/// Runs `$body` with `$pool` bound to the store's connection pool, once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { pool: $pool, .. } => $body,
            $crate::store::Db::Postgres { pool: $pool } => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection, once per backend.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub mod chunk_codec;
mod chunks;
mod datasets;
mod events;
mod jobs;
mod leases;
mod models;
mod registry;
mod training;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

pub use datasets::{
    ColumnReport, ColumnType, Dataset, DatasetWriter, LeftOut, NewDataset, Table, TargetStats,
};
pub use events::{ModelEvent, Notices};
pub use jobs::{
    crash_message, DataPath, Job, JobRegistry, JobRows, JobStatus, NewJob, Requeued, MAX_CRASHES,
};
pub use leases::{Held, Holder, DEFAULT_LEASE};
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
    /// Another instance took the job over: this one writes nothing more for it.
    #[error("this instance no longer holds the lease of job {id}")]
    LeaseLost { id: Uuid },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The database does not answer now (its server is down or unreachable, or every
    /// connection is busy past the wait): the request may succeed when retried.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Whose leases its writes for running jobs check.
    holder: Holder,
}

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite {
        pool: SqlitePool,
        /// Connections for dataset uploads only (see `Store::connect_sqlite`).
        uploads: SqlitePool,
    },
    Postgres {
        pool: PgPool,
    },
}

/// Where the two backends' SQL differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A transaction on either backend; [`on_tx!`] runs a statement in it.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Connections each instance keeps to PostgreSQL at most, by default (SQLite's pools are
/// fixed: see `Store::connect_sqlite`).
pub const DEFAULT_PG_CONNECTIONS: u32 = 16;

impl Store {
    /// Opens (creating if missing) and migrates the database: `postgres://…` (or
    /// `postgresql://…`) is PostgreSQL, with up to `pg_connections` connections;
    /// `sqlite:PATH` or a plain path is SQLite.
    pub async fn connect(url: &str, pg_connections: u32) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, pg_connections).await
        } else {
            Self::connect_sqlite(url).await
        }
    }

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
    async fn connect_sqlite(url: &str) -> Result<Self> {
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
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let uploads = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(
                options
                    .synchronous(SqliteSynchronous::Full)
                    .pragma("wal_autocheckpoint", "0"),
            );
        Ok(Self {
            db: Db::Sqlite { pool, uploads },
            holder: Holder::default(),
        })
    }

    /// Migrations take PostgreSQL's advisory lock, so instances starting together on one
    /// database migrate it once.
    async fn connect_postgres(url: &str, connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("nnserve");
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2))
            // A request waits this long for a connection while the server is down, then is a 503.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            db: Db::Postgres { pool },
            holder: Holder::default(),
        })
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.db {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(match &self.db {
            Db::Sqlite { pool, .. } => Tx::Sqlite(pool.begin().await?),
            Db::Postgres { pool } => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { pool, uploads } => {
                uploads.close().await;
                pool.close().await;
            }
            Db::Postgres { pool } => pool.close().await,
        }
    }
}

/// Now, to the microsecond: what PostgreSQL keeps, so a time reads back as it was written on
/// either backend.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
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
