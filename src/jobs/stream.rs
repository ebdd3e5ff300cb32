//! A dataset over the memory budget, read from the store chunk by chunk while training
//! runs: the engine announces the chunks of each pass, and an async task reads one
//! chunk ahead so the database read overlaps the computation on the previous one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::nn::ChunkSource;
use crate::store::{Dataset, Store, StoreError};

/// Chunks read at once. A blob read is CPU-bound in SQLite (a walk over its overflow
/// pages, ~160 MB/s per thread here), so two readers keep up with training better than one.
const PARALLEL_READS: usize = 2;

/// Decoded chunks the reader may hold beyond the engine's own: one queued, the ones being
/// read, and sqlx's copy of their bytes. Taken off the budget the engine gets.
const READ_AHEAD_CHUNKS: usize = 2 * PARALLEL_READS + 1;

/// The most a streamed job holds of its rows: the budget, or when chunks are large
/// beside it, the read-ahead plus the engine's minimum (a shuffle buffer of one chunk and
/// one staging chunk), which no budget can go below.
pub(super) fn streamed_peak_bytes(budget: u64, largest_chunk: u64) -> u64 {
    budget.max((READ_AHEAD_CHUNKS as u64 + 2).saturating_mul(largest_chunk))
}

/// What a streamed trial needs to open its reader; cheap to clone.
#[derive(Clone)]
pub(super) struct StoredRows {
    store: Store,
    dataset: Arc<Dataset>,
    chunk_rows: Arc<[usize]>,
}

impl StoredRows {
    pub async fn open(store: &Store, dataset: &Dataset) -> Result<Self, StoreError> {
        let chunk_rows = store.dataset_chunk_rows(dataset).await?;
        Ok(Self {
            store: store.clone(),
            dataset: Arc::new(dataset.clone()),
            chunk_rows: chunk_rows.into(),
        })
    }

    /// What the engine may hold of the rows once the read-ahead is paid for.
    pub fn engine_budget(&self, memory_bytes: usize) -> usize {
        let width = self.dataset.features() + self.dataset.targets();
        let largest = self.chunk_rows.iter().max().copied().unwrap_or(0) * width * 4;
        memory_bytes.saturating_sub(READ_AHEAD_CHUNKS * largest)
    }

    /// A reader for the blocking training thread; `runtime` runs the database reads.
    pub fn reader(&self, runtime: Handle) -> StoreChunks {
        StoreChunks {
            rows: self.clone(),
            runtime,
            ahead: None,
            spare: Spare::default(),
        }
    }
}

pub(super) struct StoreChunks {
    rows: StoredRows,
    runtime: Handle,
    ahead: Option<ReadAhead>,
    /// Buffers of chunks the engine is done with, for the next reads to fill.
    spare: Spare,
}

/// At most this many spare buffers are kept: one per read in flight (each read takes one
/// for its output, which `READ_AHEAD_CHUNKS` counts).
const SPARE_BUFFERS: usize = PARALLEL_READS;

#[derive(Clone, Default)]
struct Spare(Arc<Mutex<Vec<Vec<f32>>>>);

impl Spare {
    fn take(&self) -> Vec<f32> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, buffer: Vec<f32>) {
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_BUFFERS && buffer.capacity() > 0 {
            spare.push(buffer);
        }
    }
}

/// The chunks of the current plan not yet handed out, and the task reading them.
struct ReadAhead {
    order: VecDeque<usize>,
    chunks: mpsc::Receiver<Result<Vec<f32>, StoreError>>,
    task: JoinHandle<()>,
}

impl StoreChunks {
    fn stop_reading(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.task.abort();
        }
    }
}

impl Drop for StoreChunks {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

impl ChunkSource for StoreChunks {
    fn columns(&self) -> (usize, usize) {
        (self.rows.dataset.features(), self.rows.dataset.targets())
    }

    fn chunk_rows(&self) -> &[usize] {
        &self.rows.chunk_rows
    }

    fn plan(&mut self, order: &[usize]) {
        self.stop_reading();
        let (sender, chunks) = mpsc::channel(1);
        let (store, dataset) = (self.rows.store.clone(), self.rows.dataset.clone());
        let spare = self.spare.clone();
        let planned = order.to_vec();
        let task = self.runtime.spawn(async move {
            let mut reads = futures_util::stream::iter(planned)
                .map(|idx| {
                    let (store, dataset, buffer) = (store.clone(), dataset.clone(), spare.take());
                    async move { store.dataset_chunk(&dataset, idx, buffer).await }
                })
                .buffered(PARALLEL_READS);
            while let Some(chunk) = reads.next().await {
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        self.ahead = Some(ReadAhead {
            order: order.iter().copied().collect(),
            chunks,
            task,
        });
    }

    fn read_chunk(&mut self, idx: usize, buf: &mut Vec<f32>) -> Result<(), String> {
        // The engine is done with the chunk in `buf`. Given back before waiting, its
        // buffer is there when taking this chunk lets the reader start its next read, so
        // the buffers in use stay those `READ_AHEAD_CHUNKS` counts.
        self.spare.give(std::mem::take(buf));
        let chunk = match self.ahead.as_mut() {
            Some(ahead) if ahead.order.front() == Some(&idx) => {
                ahead.order.pop_front();
                ahead
                    .chunks
                    .blocking_recv()
                    .unwrap_or_else(|| Err(StoreError::Corrupt("the chunk reader stopped".into())))
            }
            // Off the plan: read it directly.
            _ => {
                self.stop_reading();
                let rows = &self.rows;
                self.runtime.block_on(rows.store.dataset_chunk(
                    &rows.dataset,
                    idx,
                    self.spare.take(),
                ))
            }
        };
        *buf = chunk.map_err(|e| e.to_string())?;
        Ok(())
    }
}
