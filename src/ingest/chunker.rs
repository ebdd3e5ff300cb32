//! Packs rows into fixed-size little-endian f32 chunks and gathers target statistics.

use super::block::ParsedBlock;
use super::columns::Columns;
use super::layout::Layout;
use super::IngestError;
use crate::store::{chunk_codec, Table, TargetStats};

/// Chunk size aimed at: big enough that per-row overhead vanishes, small enough that a
/// chunk is cheap to hold while streaming batches from storage.
pub const CHUNK_BYTES: usize = 8 << 20;

/// `rows` consecutive rows, each the features then the targets, as little-endian f32.
#[derive(Debug)]
pub struct Chunk {
    pub rows: usize,
    pub data: Vec<u8>,
}

pub struct Chunker<F> {
    features: usize,
    chunk_rows: usize,
    buf: Vec<u8>,
    rows_in_chunk: usize,
    rows: usize,
    unlabelled: usize,
    stats: Vec<TargetStats>,
    emit: F,
}

impl<F: FnMut(Chunk) -> Result<(), IngestError>> Chunker<F> {
    /// Chunks of about `chunk_bytes` (at least one row each).
    pub fn new(features: usize, targets: usize, chunk_bytes: usize, emit: F) -> Self {
        let width = features + targets;
        let chunk_rows = (chunk_bytes / (4 * width.max(1))).max(1);
        let stats = vec![
            TargetStats {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                integral: true,
            };
            targets
        ];
        Self {
            features,
            chunk_rows,
            buf: Vec::with_capacity(chunk_rows * width * 4),
            rows_in_chunk: 0,
            rows: 0,
            unlabelled: 0,
            stats,
            emit,
        }
    }

    pub fn chunk_rows(&self) -> usize {
        self.chunk_rows
    }

    /// Appends whole rows of cells, each laid out as features then targets.
    pub fn push_rows(&mut self, values: &[f32]) -> Result<(), IngestError> {
        let width = self.stats.len() + self.features;
        for row in values.chunks_exact(width) {
            self.unlabelled += usize::from(row[self.features..].iter().any(|v| v.is_nan()));
            for (stats, &value) in self.stats.iter_mut().zip(&row[self.features..]) {
                // A missing label: the row is left out of training.
                if value.is_nan() {
                    continue;
                }
                let value = f64::from(value);
                stats.min = stats.min.min(value);
                stats.max = stats.max.max(value);
                stats.integral &= value.fract() == 0.0;
            }
        }
        let mut rest = values;
        while !rest.is_empty() {
            let room = (self.chunk_rows - self.rows_in_chunk) * width;
            let (now, later) = rest.split_at(room.min(rest.len()));
            chunk_codec::encode(now, &mut self.buf);
            let rows = now.len() / width;
            self.rows += rows;
            self.rows_in_chunk += rows;
            if self.rows_in_chunk == self.chunk_rows {
                self.flush()?;
            }
            rest = later;
        }
        Ok(())
    }

    /// Emits the last partial chunk; returns the row counts (all, and those without a
    /// target) and the target statistics.
    pub fn finish(mut self) -> Result<(usize, usize, Vec<TargetStats>), IngestError> {
        if self.rows == 0 {
            return Err(IngestError::NoRows);
        }
        self.flush()?;
        Ok((self.rows, self.unlabelled, self.stats))
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        if self.rows_in_chunk == 0 {
            return Ok(());
        }
        let capacity = self.buf.capacity();
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
        let chunk = Chunk {
            rows: std::mem::take(&mut self.rows_in_chunk),
            data,
        };
        (self.emit)(chunk)
    }
}

/// Where parsed blocks go, in upload order: their cells re-coded and summarised by
/// `columns`, then packed into chunks.
pub struct Sink<'l, F> {
    pub layout: &'l Layout,
    pub chunker: Chunker<F>,
    pub columns: Columns,
}

impl<'l, F: FnMut(Chunk) -> Result<(), IngestError>> Sink<'l, F> {
    pub fn new(layout: &'l Layout, chunk_bytes: usize, emit: F) -> Self {
        Sink {
            layout,
            chunker: Chunker::new(
                layout.features.len(),
                layout.targets.len(),
                chunk_bytes,
                emit,
            ),
            columns: Columns::new(layout.columns.len()),
        }
    }

    pub fn push(&mut self, mut block: ParsedBlock) -> Result<(), IngestError> {
        self.columns
            .absorb(self.layout, &mut block.values, block.levels, &block.stats)?;
        self.chunker.push_rows(&block.values)
    }

    /// Emits the last chunk; the table's description, once every block is in.
    pub fn finish(self) -> Result<Table, IngestError> {
        let layout = self.layout;
        let chunk_rows = self.chunker.chunk_rows();
        let (rows, unlabelled_rows, target_stats) = self.chunker.finish()?;
        let stored: Vec<String> = layout
            .features
            .iter()
            .chain(&layout.targets)
            .map(|&i| layout.columns[i].clone())
            .collect();
        let column_reports = self.columns.finish(stored, layout.features.len())?;
        Ok(Table {
            rows,
            feature_names: layout.names(&layout.features),
            target_names: layout.names(&layout.targets),
            columns: layout.columns.clone(),
            target_stats,
            chunk_rows,
            column_reports,
            unlabelled_rows,
            // The caller knows which markers it read with.
            na_values: None,
        })
    }
}
