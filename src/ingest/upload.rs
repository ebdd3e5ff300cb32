//! Streaming a request body through a parser (CSV, or Parquet after spooling) into the store.
//!
//! Three stages run concurrently: the async pump forwards body frames into a bounded channel,
//! the parser (a blocking thread) reads them through [`ChannelReader`] and emits row chunks,
//! and the async sink writes each chunk into one open transaction. Memory stays bounded by
//! the channel capacities, whatever the body size.

use std::io::{self, Read};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::parquet_file::parse_parquet;
use super::{parse_csv, parse_json, Chunk, CsvOptions, IngestError, JsonDataset};
use crate::store::{Dataset, DatasetWriter, NewDataset, Store, Table};
use crate::telemetry::spawn_blocking_in_span;

const DEFAULT_NAME: &str = "unnamed";

/// Parses a CSV body as it arrives and stores it; on any error nothing is stored.
pub async fn store_csv<S, E>(
    store: &Store,
    body: S,
    options: CsvOptions,
    name: Option<String>,
    limit: usize,
) -> Result<Dataset, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let parse = move |reader: ChannelReader, emit: &mut Emit| parse_csv(reader, &options, emit);
    store_streamed(store, body, limit, name, "CSV", parse).await
}

/// Stores a Parquet body; on any error nothing is stored. A Parquet file is read from its
/// footer, so the body is first spooled to an unnamed temporary file (the OS deletes it when
/// it is closed), which keeps memory bounded whatever the file's size.
pub async fn store_parquet<S, E>(
    store: &Store,
    body: S,
    options: CsvOptions,
    name: Option<String>,
    limit: usize,
) -> Result<Dataset, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let parse = move |mut reader: ChannelReader, emit: &mut Emit| {
        let mut file = tempfile::tempfile().map_err(IngestError::Spool)?;
        // A failed read is the pump's error, which the caller reports first.
        io::copy(&mut reader, &mut file).map_err(IngestError::Spool)?;
        parse_parquet(file, &options, emit)
    };
    store_streamed(store, body, limit, name, "Parquet", parse).await
}

type Emit<'e> = dyn FnMut(Chunk) -> Result<(), IngestError> + 'e;

/// Runs `parse` on a blocking thread over the body as it arrives, writing the chunks it
/// emits into one transaction that is committed only when the body and every row were good.
async fn store_streamed<S, E, P>(
    store: &Store,
    body: S,
    limit: usize,
    name: Option<String>,
    format: &'static str,
    parse: P,
) -> Result<Dataset, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    P: FnOnce(ChannelReader, &mut Emit) -> Result<Table, IngestError> + Send + 'static,
{
    let started = Instant::now();
    let (bytes_tx, bytes_rx) = mpsc::channel(16);
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<Chunk>(2);
    let parser = spawn_blocking_in_span(move || {
        let reader = ChannelReader {
            rx: bytes_rx,
            current: Bytes::new(),
        };
        parse(reader, &mut |chunk| {
            chunks_tx
                .blocking_send(chunk)
                .map_err(|_| IngestError::Aborted)
        })
    });
    let sink = async {
        let mut writer = store.begin_dataset().await?;
        while let Some(chunk) = chunks_rx.recv().await {
            writer.insert_chunk(chunk.rows, &chunk.data).await?;
        }
        Ok::<_, IngestError>(writer)
    };
    let (pumped, written) = tokio::join!(pump(body, bytes_tx, limit), sink);
    let parsed = parser
        .await
        .map_err(|e| IngestError::Body(format!("{format} parser stopped: {e}")))?;
    // The first failure in pipeline order is the cause; later stages only saw its effect.
    pumped?;
    let (parsed, writer) = match (parsed, written) {
        (Err(IngestError::Aborted), Err(cause)) => return Err(cause),
        (Err(err), _) | (Ok(_), Err(err)) => return Err(err),
        (Ok(parsed), Ok(writer)) => (parsed, writer),
    };
    let parsed_in = started.elapsed();
    let dataset = commit(writer, parsed, name).await?;
    tracing::debug!(
        format,
        parse_and_insert_s = parsed_in.as_secs_f64(),
        commit_s = (started.elapsed() - parsed_in).as_secs_f64(),
        "upload timing"
    );
    Ok(dataset)
}

/// Stores a dataset sent as JSON (already in memory, so no streaming to do).
pub async fn store_json(
    store: &Store,
    body: JsonDataset,
    chunk_bytes: usize,
) -> Result<Dataset, IngestError> {
    let mut chunks = Vec::new();
    let parsed = parse_json(&body, chunk_bytes, |chunk| {
        chunks.push(chunk);
        Ok(())
    })?;
    let mut writer = store.begin_dataset().await?;
    for chunk in chunks {
        writer.insert_chunk(chunk.rows, &chunk.data).await?;
    }
    commit(writer, parsed, body.name).await
}

async fn commit(
    writer: DatasetWriter,
    table: Table,
    name: Option<String>,
) -> Result<Dataset, IngestError> {
    // PostgreSQL's text cannot hold NUL, and no other control character belongs in a name.
    if let Some(name) = name.as_deref().filter(|n| n.chars().any(char::is_control)) {
        return Err(IngestError::BadName(name.to_owned()));
    }
    let dataset = writer
        .commit(NewDataset {
            name: name.unwrap_or_else(|| DEFAULT_NAME.into()),
            table,
        })
        .await?;
    tracing::info!(dataset = %dataset.id, rows = dataset.rows, "dataset stored");
    Ok(dataset)
}

/// Forwards body frames to the parser, enforcing the size limit. A failure is sent down the
/// channel too, so the parser never mistakes a cut-off body for a complete one.
async fn pump<S, E>(
    mut body: S,
    tx: mpsc::Sender<io::Result<Bytes>>,
    limit: usize,
) -> Result<(), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut total = 0usize;
    while let Some(frame) = body.next().await {
        let frame = frame
            .map_err(|e| IngestError::Body(e.to_string()))
            .and_then(|bytes| {
                total += bytes.len();
                if total > limit {
                    Err(IngestError::TooLarge { limit })
                } else {
                    Ok(bytes)
                }
            });
        match frame {
            Ok(bytes) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    // The parser stopped early (bad row); its error is the answer.
                    return Ok(());
                }
            }
            Err(err) => {
                let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Blocking `Read` over the frames the pump sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(frame) => self.current = frame?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
