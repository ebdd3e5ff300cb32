//! What a running job writes: epoch rows, checkpoints, finished trials.

use serde_json::Value;
use uuid::Uuid;

use super::{from_json, json, Dialect, Result, Store, StoreError, Tx};

/// One finished epoch as stored.
#[derive(Debug, Clone)]
pub struct EpochRow {
    pub trial: usize,
    pub epoch: usize,
    pub batch_size: usize,
    /// The engine's epoch record (JSON).
    pub record: Value,
}

/// The training state saved after an epoch; resuming from it continues that trial.
pub struct Checkpoint {
    pub trial: usize,
    pub epoch: usize,
    pub state: Vec<u8>,
}

/// How one trial (one batch size) ended.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub trial: usize,
    pub batch_size: usize,
    pub best_epoch: Option<usize>,
    pub best_value: Option<f64>,
    pub stopped_early: bool,
    pub overfitting_epoch: Option<usize>,
}

type TrialRow = (i64, i64, Option<i64>, Option<f64>, bool, Option<i64>);

impl Store {
    /// Stores a finished epoch, its checkpoint and the job's progress in one transaction.
    /// `overfitting` flags an earlier epoch of the trial: overfitting is only recognised a
    /// few epochs after it began, when that epoch's row is already stored.
    pub async fn record_epoch(
        &self,
        id: Uuid,
        row: &EpochRow,
        checkpoint: &[u8],
        overfitting: Option<usize>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let job = id.to_string();
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO job_epochs (job_id, trial, epoch, batch_size, record) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&job)
            .bind(row.trial as i64)
            .bind(row.epoch as i64)
            .bind(row.batch_size as i64)
            .bind(json(&row.record))
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO job_checkpoints (job_id, trial, epoch, state) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (job_id) DO UPDATE SET trial = excluded.trial, \
                 epoch = excluded.epoch, state = excluded.state",
            )
            .bind(&job)
            .bind(row.trial as i64)
            .bind(row.epoch as i64)
            .bind(checkpoint)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        on_tx!(&mut tx, conn => {
            sqlx::query("UPDATE jobs SET epochs_done = epochs_done + 1, crashes = 0 WHERE id = $1")
                .bind(&job)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        if let Some(epoch) = overfitting {
            let flag = match self.dialect() {
                Dialect::Sqlite => "json_set(record, '$.overfitting', json('true'))",
                Dialect::Postgres => "jsonb_set(record::jsonb, '{overfitting}', 'true')::text",
            };
            let sql = format!(
                "UPDATE job_epochs SET record = {flag} \
                 WHERE job_id = $1 AND trial = $2 AND epoch = $3"
            );
            on_tx!(&mut tx, conn => {
                sqlx::query(&sql)
                    .bind(&job)
                    .bind(row.trial as i64)
                    .bind(epoch as i64)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn epochs(&self, id: Uuid) -> Result<Vec<EpochRow>> {
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, i64, i64, String)>(
                "SELECT trial, epoch, batch_size, record FROM job_epochs WHERE job_id = $1 \
                 ORDER BY trial, epoch",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(trial, epoch, batch_size, record)| {
                Ok(EpochRow {
                    trial: trial as usize,
                    epoch: epoch as usize,
                    batch_size: batch_size as usize,
                    record: from_json(&record, "epoch record")?,
                })
            })
            .collect()
    }

    pub async fn checkpoint(&self, id: Uuid) -> Result<Option<Checkpoint>> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, i64, Vec<u8>)>(
                "SELECT trial, epoch, state FROM job_checkpoints WHERE job_id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(trial, epoch, state)| Checkpoint {
            trial: trial as usize,
            epoch: epoch as usize,
            state,
        }))
    }

    /// Records a finished trial with its model; its checkpoint is no longer needed.
    pub async fn finish_trial(&self, id: Uuid, result: &TrialResult, model: &[u8]) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO job_trials (job_id, trial, batch_size, best_epoch, best_value, \
                 stopped_early, overfitting_epoch, model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.to_string())
            .bind(result.trial as i64)
            .bind(result.batch_size as i64)
            .bind(result.best_epoch.map(|v| v as i64))
            .bind(result.best_value)
            .bind(result.stopped_early)
            .bind(result.overfitting_epoch.map(|v| v as i64))
            .bind(model)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        delete_checkpoint(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn trials(&self, id: Uuid) -> Result<Vec<TrialResult>> {
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, TrialRow>(
                "SELECT trial, batch_size, best_epoch, best_value, stopped_early, \
                 overfitting_epoch FROM job_trials WHERE job_id = $1 ORDER BY trial",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(trial, batch_size, best_epoch, best_value, stopped_early, overfitting)| {
                    TrialResult {
                        trial: trial as usize,
                        batch_size: batch_size as usize,
                        best_epoch: best_epoch.map(|v| v as usize),
                        best_value,
                        stopped_early,
                        overfitting_epoch: overfitting.map(|v| v as usize),
                    }
                },
            )
            .collect())
    }

    pub async fn trial_model(&self, id: Uuid, trial: usize) -> Result<Vec<u8>> {
        on_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<Vec<u8>>>(
                "SELECT model FROM job_trials WHERE job_id = $1 AND trial = $2",
            )
            .bind(id.to_string())
            .bind(trial as i64)
            .fetch_optional(pool)
            .await
        })?
        .flatten()
        .ok_or_else(|| StoreError::Corrupt(format!("job {id} has no model for trial {trial}")))
    }

    /// Forgets a trial's epochs and checkpoint so it can start over.
    pub async fn reset_trial(&self, id: Uuid, trial: usize) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("DELETE FROM job_epochs WHERE job_id = $1 AND trial = $2")
                .bind(id.to_string())
                .bind(trial as i64)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE jobs SET epochs_done = (SELECT COUNT(*) FROM job_epochs WHERE job_id = $1) \
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        delete_checkpoint(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn delete_checkpoint(tx: &mut Tx, id: Uuid) -> Result<()> {
    on_tx!(tx, conn => {
        sqlx::query("DELETE FROM job_checkpoints WHERE job_id = $1")
            .bind(id.to_string())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Drops what only an unfinished job needs: its checkpoint and its trials' model copies.
pub(super) async fn end_training(tx: &mut Tx, id: Uuid) -> Result<()> {
    delete_checkpoint(tx, id).await?;
    on_tx!(tx, conn => {
        sqlx::query("UPDATE job_trials SET model = NULL WHERE job_id = $1")
            .bind(id.to_string())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
    })?;
    Ok(())
}
