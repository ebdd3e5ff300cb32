//! Trained models: metadata, and weights as safetensors bytes.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::datasets::ColumnType;
use super::registry::{self, held_value, version_of, PromoteRequest, Promotion};
use super::training::end_training;
use super::{from_json, json, now, parse_id, Dialect, Result, Store, StoreError};

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
    /// The name its job gave it, and its version of that name (assigned when it is stored).
    pub name: Option<String>,
    pub version: Option<u32>,
    /// How the upload typed each feature column, in `feature_names` order; `None` for
    /// models stored before it was kept.
    pub input_types: Option<Vec<ColumnType>>,
    /// The aliases of its name that point at it, by alias (read only).
    pub aliases: Vec<String>,
    /// The size of its stored weights (safetensors), in bytes (read only).
    pub weights_bytes: u64,
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
    name: Option<String>,
    version: Option<i64>,
    input_types: Option<String>,
    /// A JSON list.
    aliases: String,
    weights_bytes: i64,
}

/// What a model is stored with, beside its weights.
const COLUMNS: &str = "id, job_id, dataset_id, task, feature_names, target_names, spec, summary, \
    batch_size, best_epoch, final_metrics, best_metrics, importance, created_at, name, version, \
    input_types";

/// What a model is read with: [`COLUMNS`], its aliases (a JSON list) and the size of its
/// weights (which both databases know without reading the blob: SQLite from the record
/// header, PostgreSQL from the value's header).
fn read_columns(dialect: Dialect) -> String {
    let (aliases, size) = match dialect {
        Dialect::Sqlite => ("json_group_array(alias)", "length(weights)"),
        Dialect::Postgres => (
            "COALESCE(json_agg(alias)::text, '[]')",
            "CAST(octet_length(weights) AS BIGINT)",
        ),
    };
    format!(
        "{COLUMNS}, \
         (SELECT {aliases} FROM model_aliases a WHERE a.model_id = models.id) AS aliases, \
         {size} AS weights_bytes"
    )
}

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
            name: row.name,
            version: row.version.map(version_of).transpose()?,
            input_types: row
                .input_types
                .as_deref()
                .map(|text| from_json(text, "model input types"))
                .transpose()?,
            aliases: {
                let mut aliases: Vec<String> = from_json(&row.aliases, "model aliases")?;
                aliases.sort();
                aliases
            },
            weights_bytes: row.weights_bytes.max(0) as u64,
        })
    }
}

/// What [`Store::complete_job`] stored.
pub struct Completed {
    /// With its version, when it is named.
    pub model: StoredModel,
    /// Whether the job's alias moved, when it asked for one.
    pub promotion: Option<Promotion>,
}

impl Store {
    /// Stores the model of a succeeded job and marks the job succeeded, atomically: a
    /// named model gets the next version of its name, and `promote` is decided and applied
    /// in the same transaction, so two jobs finishing at once get different versions and
    /// each compares against the alias's target as it is when it moves it.
    pub async fn complete_job(
        &self,
        mut model: StoredModel,
        weights: &[u8],
        outcome: &JobOutcome,
        promote: Option<&PromoteRequest>,
    ) -> Result<Completed> {
        let mut tx = self.begin().await?;
        // The counter only grows, and this write locks the name (on SQLite, the database)
        // until the transaction ends.
        model.version = match &model.name {
            Some(name) => {
                let version: i64 = on_tx!(&mut tx, conn => {
                    sqlx::query_scalar(
                        "INSERT INTO model_names (name, last_version, created_at) \
                         VALUES ($1, 1, $2) \
                         ON CONFLICT (name) DO UPDATE SET \
                         last_version = model_names.last_version + 1 \
                         RETURNING last_version",
                    )
                    .bind(name)
                    .bind(now())
                    .fetch_one(conn)
                    .await
                })?;
                Some(version_of(version)?)
            }
            None => None,
        };
        model.created_at = model.created_at.trunc_subsecs(6);
        let sql = format!(
            "INSERT INTO models ({COLUMNS}, weights) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        on_tx!(&mut tx, conn => {
            sqlx::query(&sql)
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
                .bind(&model.name)
                .bind(model.version.map(i64::from))
                .bind(model.input_types.as_ref().map(json))
                .bind(weights)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        model.weights_bytes = weights.len() as u64;
        let promotion = match (promote, &model.name, model.version) {
            (Some(request), Some(name), Some(version)) => {
                let value = held_value(
                    &model.spec,
                    &model.final_metrics,
                    model.best_metrics.as_ref(),
                    &request.monitor,
                );
                let promotion =
                    registry::promote(&mut tx, request, name, model.id, version, value).await?;
                if promotion.moved {
                    model.aliases.push(request.alias.clone());
                }
                Some(promotion)
            }
            _ => None,
        };
        on_tx!(&mut tx, conn => {
            sqlx::query(
                "UPDATE jobs SET status = 'succeeded', model_id = $1, best_trial = $2, \
                 best_epoch = $3, best_value = $4, stopped_early = $5, overfitting_epoch = $6, \
                 finished_at = $7, model_version = $8, promotion = $9 WHERE id = $10",
            )
            .bind(model.id.to_string())
            .bind(outcome.best_trial as i64)
            .bind(outcome.best_epoch.map(|v| v as i64))
            .bind(outcome.best_value)
            .bind(outcome.stopped_early)
            .bind(outcome.overfitting_epoch.map(|v| v as i64))
            .bind(now())
            .bind(model.version.map(i64::from))
            .bind(promotion.as_ref().map(json))
            .bind(model.job_id.to_string())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        end_training(&mut tx, model.job_id).await?;
        tx.commit().await?;
        Ok(Completed { model, promotion })
    }

    pub async fn model(&self, id: Uuid) -> Result<StoredModel> {
        let sql = format!(
            "SELECT {} FROM models WHERE id = $1",
            read_columns(self.dialect())
        );
        on_pool!(self, pool => {
            sqlx::query_as::<_, ModelRow>(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?
        .ok_or(StoreError::NotFound { kind: "model", id })?
        .try_into()
    }

    /// Newest first, with the total count for pagination; of one name, by version from
    /// the highest.
    pub async fn models(
        &self,
        name: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<StoredModel>, u64)> {
        let sql = format!(
            "SELECT {} FROM models WHERE CAST($1 AS TEXT) IS NULL OR name = $1 \
             ORDER BY CASE WHEN CAST($1 AS TEXT) IS NULL THEN 0 ELSE version END DESC, \
             created_at DESC, id LIMIT $2 OFFSET $3",
            read_columns(self.dialect())
        );
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, ModelRow>(&sql)
                .bind(name)
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(pool)
                .await
        })?;
        let total: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM models WHERE CAST($1 AS TEXT) IS NULL OR name = $1",
            )
            .bind(name)
            .fetch_one(pool)
            .await
        })?;
        let models = rows
            .into_iter()
            .map(StoredModel::try_from)
            .collect::<Result<_>>()?;
        Ok((models, total as u64))
    }

    pub async fn model_weights(&self, id: Uuid) -> Result<Vec<u8>> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT weights FROM models WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?
        .ok_or(StoreError::NotFound { kind: "model", id })
    }

    /// Deletes a model no alias points at ([`StoreError::Aliased`] names those that do).
    pub async fn delete_model(&self, id: Uuid) -> Result<()> {
        // An alias removed between a refused deletion and reading why: try again.
        for _ in 0..3 {
            // The check and the deletion are one statement: an alias set meanwhile either
            // comes first (and the model stays) or finds the model gone.
            let deleted = on_pool!(self, pool => {
                sqlx::query(
                    "DELETE FROM models WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM model_aliases WHERE model_id = $1)",
                )
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })?;
            if deleted == 1 {
                return Ok(());
            }
            let model: Option<(Option<String>, Option<i64>)> = on_pool!(self, pool => {
                sqlx::query_as("SELECT name, version FROM models WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await
            })?;
            let Some((name, version)) = model else {
                return Err(StoreError::NotFound { kind: "model", id });
            };
            let aliases: Vec<String> = on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT alias FROM model_aliases WHERE model_id = $1 ORDER BY alias",
                )
                .bind(id.to_string())
                .fetch_all(pool)
                .await
            })?;
            if !aliases.is_empty() {
                return Err(aliased(
                    &name.unwrap_or_default(),
                    version.unwrap_or_default(),
                    &aliases,
                ));
            }
        }
        Err(StoreError::Aliased(format!(
            "model {id} kept being aliased while it was being deleted; try again"
        )))
    }
}

/// The refusal to delete version `version` of `name`, which `aliases` point at.
fn aliased(name: &str, version: i64, aliases: &[String]) -> StoreError {
    let refs: Vec<String> = aliases.iter().map(|a| format!("{name}@{a}")).collect();
    let (verb, them) = match refs.len() {
        1 => ("points", "it"),
        _ => ("point", "them"),
    };
    StoreError::Aliased(format!(
        "model {name:?} version {version} is what {} {verb} at: move {them} to another \
         version (PUT /models/{name}/aliases/{{alias}} with another version) or delete {them} \
         first",
        refs.join(", "),
    ))
}
