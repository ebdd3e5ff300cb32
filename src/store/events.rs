//! What changed in the model registry, for the model caches of every instance on the
//! database: each change is a row written in the transaction that makes it, and each
//! instance reads the rows after the last it saw. On PostgreSQL the writer also sends a
//! notification, so the others need not wait for their next look.

use uuid::Uuid;

use super::leases::clock_ms;
use super::{Dialect, Result, Store, Tx};

/// The channel of PostgreSQL's NOTIFY that tells instances to read the events.
pub const CHANNEL: &str = "nnserve_model_events";

/// How long events are kept: far longer than any instance goes without reading them.
const KEEP_MS: i64 = 3_600_000;

/// A change to the models: one was deleted (its id), or what references resolve to moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelEvent {
    Deleted(Uuid),
    RefsChanged,
}

/// Records `event` in the transaction that makes the change, dropping events older than an
/// hour.
pub(super) async fn record(tx: &mut Tx, dialect: Dialect, event: ModelEvent) -> Result<()> {
    let model = match event {
        ModelEvent::Deleted(id) => Some(id.to_string()),
        ModelEvent::RefsChanged => None,
    };
    let now = clock_ms();
    on_tx!(&mut *tx, conn => {
        sqlx::query("INSERT INTO model_events (model_id, created_ms) VALUES ($1, $2)")
            .bind(&model)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    on_tx!(&mut *tx, conn => {
        sqlx::query("DELETE FROM model_events WHERE created_ms < $1")
            .bind(now - KEEP_MS)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    if dialect == Dialect::Postgres {
        // Delivered when the transaction commits, and only then.
        on_tx!(&mut *tx, conn => {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
    }
    Ok(())
}

impl Store {
    /// The events after `seq` in order, and the last one's number (`seq` when none).
    pub async fn model_events_after(&self, seq: i64) -> Result<(Vec<ModelEvent>, i64)> {
        let rows: Vec<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, model_id FROM model_events WHERE seq > $1 ORDER BY seq")
                .bind(seq)
                .fetch_all(pool)
                .await
        })?;
        let last = rows.last().map_or(seq, |(s, _)| *s);
        let events = rows
            .into_iter()
            .map(|(_, model)| match model {
                Some(id) => super::parse_id(&id).map(ModelEvent::Deleted),
                None => Ok(ModelEvent::RefsChanged),
            })
            .collect::<Result<_>>()?;
        Ok((events, last))
    }

    /// The number of the last event so far: a cache starting now has seen them all.
    pub async fn last_model_event(&self) -> Result<i64> {
        let last: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(seq) FROM model_events")
                .fetch_one(pool)
                .await
        })?;
        Ok(last.unwrap_or(0))
    }

    /// PostgreSQL's notifications of new events (`None` on SQLite, whose one instance
    /// makes every change itself).
    pub async fn model_event_notices(&self) -> Result<Option<Notices>> {
        match &self.db {
            super::Db::Postgres { pool } => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                Ok(Some(Notices(listener)))
            }
            super::Db::Sqlite { .. } => Ok(None),
        }
    }
}

/// A connection that hears of new model events as they commit.
pub struct Notices(sqlx::postgres::PgListener);

impl Notices {
    /// Waits for the next notice; an error means the connection dropped (it reconnects on
    /// the next call, and notices sent meanwhile are lost: read the events anyway).
    pub async fn next(&mut self) -> Result<()> {
        self.0.recv().await?;
        Ok(())
    }
}
