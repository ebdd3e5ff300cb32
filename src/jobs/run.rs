//! Running one job: load its dataset, train one trial per batch size on a blocking thread,
//! store every epoch as it ends, keep the best trial's model.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use ndarray::Array2;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use uuid::Uuid;

use super::stream::StoredRows;
use super::trial::Trial;
use super::{dataset_bytes, Inner, JobFlags};
use crate::nn::{
    self, EpochRecord, Model, ModelError, Samples, SpecError, TrainError, TrainingSpec, ValidSpec,
};
use crate::serving::ServedModel;
use crate::store::{
    ColumnType, DataPath, Dataset, Job, JobOutcome, JobStatus, PromoteRequest, StoreError,
    StoredModel, TrialResult,
};
use crate::telemetry::spawn_blocking_in_span;

#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error("the stored spec no longer validates: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Train(TrainError),
    #[error("stopped")]
    Stopped,
    #[error("the trained model does not load back: {0}")]
    Model(#[from] ModelError),
    #[error("the training thread panicked: {0}")]
    Panicked(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl From<TrainError> for JobError {
    fn from(err: TrainError) -> Self {
        match err {
            TrainError::Cancelled { .. } => Self::Stopped,
            other => Self::Train(other),
        }
    }
}

/// Runs `job` to its end and records how it ended; `_slot` frees the worker slot on return.
pub(super) async fn run(inner: Arc<Inner>, job: Job, flags: JobFlags, _slot: OwnedSemaphorePermit) {
    let id = job.id;
    let span = tracing::info_span!("job", id = %id);
    async {
        tracing::info!(status = "running", dataset = %job.dataset_id, "job started");
        let result = train(&inner, &job, &flags).await;
        let taken_over = flags.lost.load(Ordering::Relaxed)
            || matches!(result, Err(JobError::Store(StoreError::LeaseLost { .. })));
        let recorded = match result {
            Ok(model) => {
                tracing::info!(status = "succeeded", model = %model, "job finished");
                Ok(())
            }
            // Fenced: the instance that took the job over writes how it goes on.
            Err(_) if taken_over => {
                tracing::warn!(
                    status = "taken over",
                    "another instance holds the job's lease now; stopped without writing"
                );
                Ok(())
            }
            Err(JobError::Stopped) if flags.cancel.load(Ordering::Relaxed) => {
                tracing::info!(status = "cancelled", "job cancelled");
                inner.store.finish_job(id, JobStatus::Cancelled, None).await
            }
            Err(JobError::Stopped) => {
                tracing::info!(
                    status = "queued",
                    "job interrupted by shutdown; re-queued to resume"
                );
                inner.store.requeue(id).await
            }
            Err(err) => {
                tracing::warn!(status = "failed", error = %err, "job failed");
                let message = match &err {
                    JobError::Store(_) => {
                        "storage failed; the server log has the details".to_owned()
                    }
                    other => other.to_string(),
                };
                inner
                    .store
                    .finish_job(id, JobStatus::Failed, Some(&message))
                    .await
            }
        };
        if let Err(err) = recorded {
            tracing::error!(error = %err, "cannot record how the job ended");
        }
        inner.forget(id);
    }
    .instrument(span)
    .await
}

/// Rows of a dataset as the engine takes them.
pub(super) struct Matrix {
    pub x: Array2<f32>,
    pub y: Array2<f32>,
}

/// Where a job's rows come from: memory, or the store chunk by chunk when the dataset
/// is larger than the memory budget.
#[derive(Clone)]
pub(super) enum Rows {
    Memory(Arc<Matrix>),
    Streamed {
        rows: StoredRows,
        /// What the engine may hold of them (the budget less the read-ahead).
        memory_bytes: usize,
    },
}

async fn load(inner: &Inner, job: &Job, dataset: &Dataset) -> Result<Rows, JobError> {
    let store = &inner.store;
    let bytes = dataset_bytes(dataset) as usize;
    let budget = inner.limits.dataset_memory_bytes;
    if bytes > budget {
        let rows = StoredRows::open(store, dataset).await?;
        let memory_bytes = rows.engine_budget(budget);
        tracing::info!(
            path = "streamed",
            dataset_bytes = bytes,
            budget,
            "the dataset is larger than the memory budget: streaming it from the database"
        );
        store.set_data_path(job.id, DataPath::Streamed).await?;
        return Ok(Rows::Streamed { rows, memory_bytes });
    }
    tracing::info!(
        path = "in-memory",
        dataset_bytes = bytes,
        budget,
        "loading the dataset"
    );
    store.set_data_path(job.id, DataPath::Memory).await?;
    let (x, y) = store.dataset_matrix(dataset).await?;
    Ok(Rows::Memory(Arc::new(Matrix {
        x: Array2::from_shape_vec((dataset.labelled_rows(), dataset.features()), x)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        y: Array2::from_shape_vec((dataset.labelled_rows(), dataset.targets()), y)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })))
}

async fn train(inner: &Arc<Inner>, job: &Job, flags: &JobFlags) -> Result<Uuid, JobError> {
    let store = &inner.store;
    let mut dataset = store.dataset(job.dataset_id).await?;
    let spec = TrainingSpec::from_json(&job.spec.to_string())?;
    let valid = spec.validate(&super::data_shape(&dataset))?;
    let dropped = job.rows.map_or(0, |r| r.dropped);
    let spec = super::leave_out(&spec, valid, &mut dataset, dropped)?;
    let rows = load(inner, job, &dataset).await?;
    let mut checkpoint = store.checkpoint(job.id).await?;
    let finished = store.trials(job.id).await?;
    for (trial, &batch_size) in spec.batch_sizes().iter().enumerate() {
        if finished.iter().any(|t| t.trial == trial) {
            continue;
        }
        let stop = [&flags.cancel, &flags.lost, &inner.stopping];
        if stop.iter().any(|flag| flag.load(Ordering::Relaxed)) {
            return Err(JobError::Stopped);
        }
        let resume = match &checkpoint {
            Some(saved) if saved.trial == trial => checkpoint.take(),
            _ => None,
        };
        let trial_run = Trial {
            job: job.id,
            index: trial,
            batch_size,
            spec: spec.clone(),
            rows: rows.clone(),
        };
        let outcome = trial_run.run(inner, flags, resume).await?;
        let result = TrialResult {
            trial,
            batch_size,
            best_epoch: outcome.best_epoch,
            best_value: outcome.best_value,
            stopped_early: outcome.stopped_early,
            overfitting_epoch: outcome.overfitting_epoch,
        };
        let model = outcome.model.to_safetensors();
        inner
            .until_answered(job.id, || store.finish_trial(job.id, &result, &model))
            .await?;
        tracing::info!(trial, batch_size, best_epoch = ?outcome.best_epoch, best_value = ?outcome.best_value, "trial finished");
    }
    keep_best(inner, job, &dataset, &spec, &rows).await
}

/// Stores the best trial's model and marks the job succeeded.
async fn keep_best(
    inner: &Arc<Inner>,
    job: &Job,
    dataset: &Dataset,
    spec: &ValidSpec,
    rows: &Rows,
) -> Result<Uuid, JobError> {
    let store = &inner.store;
    let trials = store.trials(job.id).await?;
    let best = trials
        .iter()
        .reduce(|best, t| match (t.best_value, best.best_value) {
            (Some(v), Some(b)) if job.mode.better(v, b) => t,
            (Some(_), None) => t,
            _ => best,
        })
        .ok_or_else(|| StoreError::Corrupt(format!("job {} finished without trials", job.id)))?;
    let weights = store.trial_model(job.id, best.trial).await?;
    let model = Model::from_safetensors(&weights)?;
    let records: Vec<EpochRecord> = store
        .epochs(job.id)
        .await?
        .into_iter()
        .filter(|row| row.trial == best.trial)
        .map(|row| serde_json::from_value(row.record))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Corrupt(format!("epoch record: {e}")))?;
    let last = records
        .last()
        .ok_or_else(|| StoreError::Corrupt(format!("job {} has no epochs", job.id)))?;
    let best_record = best
        .best_epoch
        .and_then(|e| records.iter().find(|r| r.epoch == e));
    let importance = importance(&model, dataset, spec, rows).await?;
    let stored = StoredModel {
        id: Uuid::new_v4(),
        job_id: job.id,
        dataset_id: dataset.id,
        task: serde_json::to_value(model.task())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        feature_names: dataset.feature_names.clone(),
        target_names: dataset.target_names.clone(),
        spec: job.spec.clone(),
        summary: to_json(&model.summary())?,
        batch_size: best.batch_size,
        best_epoch: best.best_epoch,
        final_metrics: to_json(last)?,
        best_metrics: best_record.map(to_json).transpose()?,
        importance: Some(importance),
        created_at: Utc::now(),
        name: job.registry.name.clone(),
        version: None,
        input_types: Some(
            (0..dataset.features())
                .map(|c| {
                    dataset
                        .column_reports
                        .get(c)
                        .map_or(ColumnType::Number, |r| r.kind)
                })
                .collect(),
        ),
        aliases: Vec::new(),
        weights_bytes: 0,
    };
    let outcome = JobOutcome {
        best_trial: best.trial,
        best_epoch: best.best_epoch,
        best_value: best.best_value,
        stopped_early: best.stopped_early,
        overfitting_epoch: best.overfitting_epoch,
    };
    let promote = job.registry.promote.as_ref().map(|alias| PromoteRequest {
        alias: alias.clone(),
        if_better: job.registry.promote_if_better,
        monitor: job.monitor.clone(),
        mode: job.mode,
    });
    let completed = inner
        .until_answered(job.id, || {
            store.complete_job(stored.clone(), &weights, &outcome, promote.as_ref())
        })
        .await?;
    let stored = completed.model;
    inner
        .models
        .insert(stored.id, ServedModel::new(model, &stored));
    if stored.name.is_some() {
        // A new latest version, and perhaps a moved alias.
        inner.models.refs_changed();
    }
    if let (Some(version), Some(promotion)) = (stored.version, &completed.promotion) {
        tracing::info!(name = ?stored.name, version, alias = %promotion.alias, moved = promotion.moved, reason = %promotion.reason, "promotion");
    }
    Ok(stored.id)
}

/// Input columns up to which importance is computed: each costs `IMPORTANCE_REPEATS`
/// passes over the validation rows (an image's pixels, one column each, would cost more
/// than its training).
const IMPORTANCE_MAX_COLUMNS: usize = 64;
const IMPORTANCE_REPEATS: usize = 5;
/// Validation rows the importance passes read at most (the first ones of the split).
const IMPORTANCE_MAX_ROWS: usize = 5_000;

/// Permutation importance of the model's input columns on the validation split, or the
/// reason it was not computed.
async fn importance(
    model: &Model,
    dataset: &Dataset,
    spec: &ValidSpec,
    rows: &Rows,
) -> Result<serde_json::Value, JobError> {
    let reason = |why: &str| Ok(serde_json::json!({ "reason": why }));
    let Rows::Memory(matrix) = rows else {
        return reason("the dataset was streamed from the database: not computed");
    };
    if dataset.features() > IMPORTANCE_MAX_COLUMNS {
        return reason(&format!(
            "more than {IMPORTANCE_MAX_COLUMNS} input columns: not computed"
        ));
    }
    let mut validation = nn::validation_rows(spec, matrix.x.nrows());
    if validation.is_empty() {
        return reason("no validation split (validation_split is 0): not computed");
    }
    validation.truncate(IMPORTANCE_MAX_ROWS);
    let x = matrix.x.select(ndarray::Axis(0), &validation);
    let y = matrix.y.select(ndarray::Axis(0), &validation);
    let (model, names, seed) = (
        model.clone(),
        dataset.feature_names.clone(),
        spec.spec().seed,
    );
    let columns = spawn_blocking_in_span(move || {
        model.permutation_importance(
            Samples::new(x.view(), y.view()),
            &names,
            IMPORTANCE_REPEATS,
            seed,
        )
    })
    .await
    .map_err(|e| JobError::Panicked(e.to_string()))?;
    // The model is trained and good: a failure here is reported, not the job's end.
    match columns {
        Ok(columns) => Ok(serde_json::json!({
            "repeats": IMPORTANCE_REPEATS,
            "rows": validation.len(),
            "columns": columns,
        })),
        Err(err) => reason(&format!("not computed: {err}")),
    }
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}
