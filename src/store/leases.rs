//! Which instance runs a job: a lease (owner, expiry) taken when the job is claimed,
//! renewed by the owner's heartbeat, and checked by every write a running job makes, so an
//! instance that lost its lease (it was paused, or cut off from the database, and another
//! instance took the job over) writes nothing more for it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::jobs::{JobRow, COLUMNS};
use super::{now, Dialect, Job, Result, Store, StoreError, Tx};

/// This instance, as the owner of the jobs it runs.
#[derive(Clone, Copy, Debug)]
pub struct Holder {
    pub instance: Uuid,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
}

/// How long a lease lasts by default: several heartbeats, so one slow renewal does not
/// lose it, and short enough that a dead instance's job resumes elsewhere soon.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

impl Default for Holder {
    fn default() -> Self {
        Holder {
            instance: Uuid::new_v4(),
            lease: DEFAULT_LEASE,
        }
    }
}

impl Holder {
    fn expiry(&self) -> i64 {
        clock_ms() + i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

/// Milliseconds since the Unix epoch: leases compare as integers on both backends.
pub(super) fn clock_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX / 2)
}

/// What the owner's heartbeat learns of one of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: Uuid,
    /// Some instance asked to cancel it.
    pub cancel_requested: bool,
}

/// Checks, inside a write's transaction, that this instance still holds `id`'s lease,
/// and extends it. On PostgreSQL the row stays locked until the transaction ends, so no
/// other instance can take the job over between the check and the write.
pub(super) async fn hold(tx: &mut Tx, holder: &Holder, id: Uuid) -> Result<()> {
    let held = on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE jobs SET lease_expires_ms = $1 \
             WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(holder.expiry())
        .bind(id.to_string())
        .bind(holder.instance.to_string())
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    if held == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost { id })
    }
}

impl Store {
    /// This store as used by `holder` (its writes for running jobs are checked against
    /// the leases it holds).
    pub fn held_by(mut self, holder: Holder) -> Self {
        self.holder = holder;
        self
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Whether other instances may use this database at the same time (PostgreSQL): then a
    /// job left running is not known to be orphaned until its lease expires.
    pub fn is_shared(&self) -> bool {
        self.dialect() == Dialect::Postgres
    }

    /// Takes the oldest job that is queued, or running under a lease that expired (its
    /// instance died or lost the database: that counts as a crash) or under none (left by
    /// a version before leases), and leases it to this instance. On PostgreSQL the row is locked by the claiming statement and skipped by
    /// any other claiming at the same time, so two instances never take the same job;
    /// SQLite has one writer.
    pub async fn claim_next_job(&self) -> Result<Option<Job>> {
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET started_at = COALESCE(started_at, $1), lease_owner = $2, \
             lease_expires_ms = $3, \
             crashes = crashes + CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
             status = 'running' \
             WHERE seq = (SELECT seq FROM jobs \
             WHERE status = 'queued' \
             OR (status = 'running' AND (lease_expires_ms IS NULL OR lease_expires_ms < $4)) \
             ORDER BY seq LIMIT 1{lock}) \
             RETURNING {COLUMNS}"
        );
        on_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&sql)
                .bind(now())
                .bind(self.holder.instance.to_string())
                .bind(self.holder.expiry())
                .bind(clock_ms())
                .fetch_optional(pool)
                .await
        })?
        .map(Job::try_from)
        .transpose()
    }

    /// The heartbeat: extends every lease this instance holds; the jobs it answers are
    /// those still held (any other was taken over, or ended), with their cancellation.
    pub async fn renew_leases(&self) -> Result<Vec<Held>> {
        let rows: Vec<(String, bool)> = on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE jobs SET lease_expires_ms = $1 \
                 WHERE lease_owner = $2 AND status = 'running' RETURNING id, cancel_requested",
            )
            .bind(self.holder.expiry())
            .bind(self.holder.instance.to_string())
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(id, cancel_requested)| {
                Ok(Held {
                    id: super::parse_id(&id)?,
                    cancel_requested,
                })
            })
            .collect()
    }

    /// Asks whichever instance runs `id` to cancel it; false when it is not running.
    pub async fn request_cancel(&self, id: Uuid) -> Result<bool> {
        let asked = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'",
            )
            .bind(id.to_string())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(asked == 1)
    }

    /// Puts a job this instance holds back in the queue and gives up its lease, so any
    /// instance may continue it at once (this one is stopping).
    pub async fn requeue(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin().await?;
        hold(&mut tx, &self.holder, id).await?;
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_ms = NULL \
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        tx.commit().await
    }
}
