//! `GET /jobs/{id}/metrics`: every finished epoch so far.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::http::error::{Error, Problem, Result};
use crate::http::extract::{Json, Path};
use crate::http::AppState;
use crate::nn::EpochRecord;
use crate::store::{EpochRow, Job, JobStatus};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_metrics))
}

/// Which trial an epoch belongs to (only for jobs with several batch sizes).
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialTag {
    pub batch_size: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EpochView {
    #[serde(flatten)]
    pub record: EpochRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialTag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsView {
    pub job_id: Uuid,
    pub status: JobStatus,
    /// Every finished epoch so far, trial by trial, in order.
    pub epochs: Vec<EpochView>,
    /// The best epoch so far (of the best trial so far).
    pub best_epoch: Option<usize>,
    pub best_batch_size: Option<usize>,
    /// The epoch where validation loss started rising while training loss kept falling.
    pub overfitting_epoch: Option<usize>,
}

/// Per-epoch metrics, readable while the job trains.
#[utoipa::path(get, path = "/jobs/{id}/metrics", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "Finished epochs", body = MetricsView),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn job_metrics(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<MetricsView>> {
    let job = state.store.job(id).await?;
    let rows = state.store.epochs(id).await?;
    Ok(Json(metrics(job, rows)?))
}

pub(super) fn records(rows: Vec<EpochRow>) -> Result<Vec<(EpochRow, EpochRecord)>> {
    rows.into_iter()
        .map(|mut row| {
            let record = serde_json::from_value(std::mem::take(&mut row.record))
                .map_err(|e| Error::Internal(format!("stored epoch record: {e}")))?;
            Ok((row, record))
        })
        .collect()
}

fn metrics(job: Job, rows: Vec<EpochRow>) -> Result<MetricsView> {
    let records = records(rows)?;
    let several = job.batch_sizes.len() > 1;
    // While training, the best epoch so far by the job's monitor (earliest on ties).
    let mut best: Option<(&EpochRow, f64)> = None;
    for (row, record) in &records {
        if let Some(value) = record.get(&job.monitor) {
            let better = best.is_none_or(|(_, b)| job.mode.better(value, b));
            if better {
                best = Some((row, value));
            }
        }
    }
    let (best_epoch, best_batch_size) = match (job.best_epoch, job.best_trial) {
        (Some(epoch), Some(trial)) => (Some(epoch), job.batch_sizes.get(trial).copied()),
        _ => (
            best.map(|(row, _)| row.epoch),
            best.map(|(row, _)| row.batch_size),
        ),
    };
    let overfitting_epoch = job.overfitting_epoch.or_else(|| {
        let current = records.last().map(|(row, _)| row.trial);
        records
            .iter()
            .find(|(row, record)| Some(row.trial) == current && record.overfitting)
            .map(|(_, record)| record.epoch)
    });
    Ok(MetricsView {
        job_id: job.id,
        status: job.status,
        epochs: records
            .into_iter()
            .map(|(row, record)| EpochView {
                record,
                trial: several.then_some(TrialTag {
                    batch_size: row.batch_size,
                }),
            })
            .collect(),
        best_epoch,
        best_batch_size: if several { best_batch_size } else { None },
        overfitting_epoch,
    })
}
