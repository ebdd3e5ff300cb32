//! Batch scoring: a CSV body, or every row of a stored dataset, answered line by line in
//! the input's order (see [`super::scores`]).

use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ndarray::Array2;
use uuid::Uuid;

use super::csv_body::{self, Wanted};
use super::rows::input_names;
use super::scores::{Format, Kept, ScoreWriter};
use super::stored::StoredColumns;
use crate::http::error::{Error, Result};
use crate::http::AppState;
use crate::nn::human;
use crate::serving::ServedModel;
use crate::store::{Dataset, Store};
use crate::telemetry::spawn_blocking_in_span;

/// Scores a CSV body. The body is in memory already, so its answer is built whole: the
/// predictions of all rows at once, bit for bit those of the same rows sent as objects.
pub(super) async fn score_csv(
    served: Arc<ServedModel>,
    body: Bytes,
    keep: Vec<String>,
    format: Format,
) -> Result<Response> {
    let answer = spawn_blocking_in_span(move || -> Result<Bytes> {
        let model = &served.model;
        let mut writer = ScoreWriter::new(format, &keep, model, &served.target_names)?;
        let wanted = Wanted {
            targets: &[],
            keep: &keep,
        };
        let rows = csv_body::read(&body, model, &input_names(&served), &wanted)?;
        let predictions = model.predict_parallel(rows.x.view(), crate::config::cores())?;
        let classes = model.classes(predictions.view());
        writer.rows(predictions.view(), classes.as_deref(), |r, k| {
            Kept::Text(rows.kept(r, k))
        });
        Ok(writer.finish())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, format.content_type())], answer).into_response())
}

/// Scores every stored row of dataset `dataset_id` (unlabelled ones too), one chunk at a
/// time as the client reads the answer, so the memory it takes is a chunk's whatever the
/// dataset's size. A failure once the answer has begun can only cut it short: the
/// connection is closed before the last chunk, and the log says why.
pub(super) async fn score_dataset(
    state: &AppState,
    served: Arc<ServedModel>,
    dataset_id: Uuid,
    keep: Vec<String>,
    format: Format,
) -> Result<Response> {
    let dataset = state.store.dataset(dataset_id).await?;
    let writer = ScoreWriter::new(format, &keep, &served.model, &served.target_names)?;
    let columns = StoredColumns::new(&dataset, &served.model, &input_names(&served), &keep)?;
    let estimate = served.model.predict_memory(dataset.chunk_rows);
    let limit = state.config.job_memory_limit();
    if estimate.bytes > limit {
        return Err(Error::TooLarge(format!(
            "scoring dataset {dataset_id} {} rows at a time would need an estimated \
             {estimate}, over the limit of {} (--max-job-memory-bytes)",
            dataset.chunk_rows,
            human(limit)
        )));
    }
    let chunks = state.store.dataset_chunk_count(&dataset).await?;
    let scoring = Scoring {
        store: state.store.clone(),
        dataset: Arc::new(dataset),
        served,
        columns: Arc::new(columns),
        writer: Some(writer),
        next: 0,
        chunks,
        buffer: Vec::new(),
    };
    let lines = futures_util::stream::try_unfold(scoring, |mut scoring| async move {
        let block = scoring.next_block().await.map_err(|e| {
            tracing::error!(error = %e, "scoring a stored dataset stopped");
            std::io::Error::other(e.to_string())
        })?;
        Ok::<_, std::io::Error>(block.map(|bytes| (bytes, scoring)))
    });
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Where a streamed scoring of a stored dataset is.
struct Scoring {
    store: Store,
    dataset: Arc<Dataset>,
    served: Arc<ServedModel>,
    columns: Arc<StoredColumns>,
    /// Taken while a block is written on a blocking thread; `None` once finished.
    writer: Option<ScoreWriter>,
    next: usize,
    chunks: usize,
    /// The last chunk's buffer, reused for the next read.
    buffer: Vec<f32>,
}

impl Scoring {
    /// The answer's next lines, or `None` once it is complete.
    async fn next_block(&mut self) -> Result<Option<Bytes>> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(None);
        };
        if self.next == self.chunks {
            return Ok(Some(writer.finish()));
        }
        let buffer = std::mem::take(&mut self.buffer);
        let chunk = self
            .store
            .stored_chunk(&self.dataset, self.next, buffer)
            .await?;
        self.next += 1;
        let (served, columns) = (self.served.clone(), self.columns.clone());
        let (writer, chunk, bytes) = spawn_blocking_in_span(move || -> Result<_> {
            let mut x = Array2::zeros((columns.rows(&chunk), served.model.input_width()));
            columns.cells(&chunk, x.view_mut());
            let predictions = served
                .model
                .predict_parallel(x.view(), crate::config::cores())?;
            let classes = served.model.classes(predictions.view());
            writer.rows(predictions.view(), classes.as_deref(), |r, k| {
                columns.kept(&chunk, r, k)
            });
            let bytes = writer.take();
            Ok((writer, chunk, bytes))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.writer = Some(writer);
        self.buffer = chunk;
        Ok(Some(bytes))
    }
}
