//! Trained models: metadata, and weights as safetensors bytes.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::training::end_training;
use super::{from_json, json, parse_id, Result, Store, StoreError};

#[derive(Debug, Clone)]
pub struct StoredModel {
    pub id: Uuid,
    pub job_id: Uuid,
    pub dataset_id: Uuid,
    /// "regression", "binary" or "multiclass".
    pub task: String,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    /// The training spec (JSON).
    pub spec: Value,
    /// Layers, output shapes and parameter counts (JSON).
    pub summary: Value,
    pub batch_size: usize,
    pub best_epoch: Option<usize>,
    /// The last epoch's record.
    pub final_metrics: Value,
    /// The best epoch's record.
    pub best_metrics: Option<Value>,
    /// Permutation importance on the validation split, or why there is none.
    pub importance: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// How a job ended, beside the model it produced.
pub struct JobOutcome {
    pub best_trial: usize,
    pub best_epoch: Option<usize>,
    pub best_value: Option<f64>,
    pub stopped_early: bool,
    pub overfitting_epoch: Option<usize>,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: String,
    job_id: String,
    dataset_id: String,
    task: String,
    feature_names: String,
    target_names: String,
    spec: String,
    summary: String,
    batch_size: i64,
    best_epoch: Option<i64>,
    final_metrics: String,
    best_metrics: Option<String>,
    importance: Option<String>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, job_id, dataset_id, task, feature_names, target_names, spec, summary, \
    batch_size, best_epoch, final_metrics, best_metrics, importance, created_at";

impl TryFrom<ModelRow> for StoredModel {
    type Error = StoreError;

    fn try_from(row: ModelRow) -> Result<Self> {
        Ok(Self {
            id: parse_id(&row.id)?,
            job_id: parse_id(&row.job_id)?,
            dataset_id: parse_id(&row.dataset_id)?,
            task: row.task,
            feature_names: from_json(&row.feature_names, "model feature names")?,
            target_names: from_json(&row.target_names, "model target names")?,
            spec: from_json(&row.spec, "model spec")?,
            summary: from_json(&row.summary, "model summary")?,
            batch_size: row.batch_size as usize,
            best_epoch: row.best_epoch.map(|v| v as usize),
            final_metrics: from_json(&row.final_metrics, "model final metrics")?,
            best_metrics: row
                .best_metrics
                .as_deref()
                .map(|text| from_json(text, "model best metrics"))
                .transpose()?,
            importance: row
                .importance
                .as_deref()
                .map(|text| from_json(text, "model importance"))
                .transpose()?,
            created_at: row.created_at,
        })
    }
}

impl Store {
    /// Stores the model of a succeeded job and marks the job succeeded, atomically.
    pub async fn complete_job(
        &self,
        model: StoredModel,
        weights: &[u8],
        outcome: &JobOutcome,
    ) -> Result<StoredModel> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO models ({COLUMNS}, weights) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(model.id.to_string())
        .bind(model.job_id.to_string())
        .bind(model.dataset_id.to_string())
        .bind(&model.task)
        .bind(json(&model.feature_names))
        .bind(json(&model.target_names))
        .bind(json(&model.spec))
        .bind(json(&model.summary))
        .bind(model.batch_size as i64)
        .bind(model.best_epoch.map(|v| v as i64))
        .bind(json(&model.final_metrics))
        .bind(model.best_metrics.as_ref().map(json))
        .bind(model.importance.as_ref().map(json))
        .bind(model.created_at)
        .bind(weights)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET status = 'succeeded', model_id = ?, best_trial = ?, best_epoch = ?, \
             best_value = ?, stopped_early = ?, overfitting_epoch = ?, finished_at = ? WHERE id = ?",
        )
        .bind(model.id.to_string())
        .bind(outcome.best_trial as i64)
        .bind(outcome.best_epoch.map(|v| v as i64))
        .bind(outcome.best_value)
        .bind(outcome.stopped_early)
        .bind(outcome.overfitting_epoch.map(|v| v as i64))
        .bind(Utc::now())
        .bind(model.job_id.to_string())
        .execute(&mut *tx)
        .await?;
        end_training(&mut tx, model.job_id).await?;
        tx.commit().await?;
        Ok(model)
    }

    pub async fn model(&self, id: Uuid) -> Result<StoredModel> {
        sqlx::query_as::<_, ModelRow>(&format!("SELECT {COLUMNS} FROM models WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { kind: "model", id })?
            .try_into()
    }

    /// Newest first, with the total count for pagination.
    pub async fn models(&self, limit: u32, offset: u64) -> Result<(Vec<StoredModel>, u64)> {
        let rows = sqlx::query_as::<_, ModelRow>(&format!(
            "SELECT {COLUMNS} FROM models ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        ))
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM models")
            .fetch_one(&self.pool)
            .await?;
        let models = rows
            .into_iter()
            .map(StoredModel::try_from)
            .collect::<Result<_>>()?;
        Ok((models, total as u64))
    }

    pub async fn model_weights(&self, id: Uuid) -> Result<Vec<u8>> {
        sqlx::query_scalar("SELECT weights FROM models WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { kind: "model", id })
    }

    pub async fn delete_model(&self, id: Uuid) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM models WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound { kind: "model", id });
        }
        Ok(())
    }
}
