//! Validation mini-batches streamed from chunks, in dataset order.

use crate::nn::data::batch::{Batch, BatchSource};
use crate::nn::data::stream::Shared;
use crate::nn::ops::rng::Rng;

/// The validation rows in dataset order, a chunk at a time, so batches hold the same
/// rows in the same order as the in-memory validation pass.
pub(crate) struct StreamValidation<'r, 'a> {
    reader: &'r Shared<'a>,
    is_validation: &'r [bool],
    chunks: Vec<usize>,
    rows: usize,
    next_chunk: usize,
    /// Validation rows of the staged chunk still to deliver (staging indices).
    pending: Vec<usize>,
    next: usize,
}

impl<'r, 'a> StreamValidation<'r, 'a> {
    pub fn new(reader: &'r Shared<'a>, is_validation: &'r [bool]) -> StreamValidation<'r, 'a> {
        let r = reader.borrow();
        let counts = r.rows_per_chunk(is_validation, true);
        StreamValidation {
            reader,
            is_validation,
            chunks: (0..counts.len()).filter(|&c| counts[c] > 0).collect(),
            rows: counts.iter().sum(),
            next_chunk: 0,
            pending: Vec::new(),
            next: 0,
        }
    }
}

impl BatchSource for StreamValidation<'_, '_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn start_epoch(&mut self, _shuffle: Option<&mut Rng>) {
        (self.next_chunk, self.next) = (0, 0);
        self.pending.clear();
        self.reader.borrow_mut().plan(&self.chunks);
    }

    fn next_batch(&mut self, batch: &mut Batch) -> bool {
        let mut r = self.reader.borrow_mut();
        let (w, f) = (r.width, r.features);
        let mut rows = 0;
        while rows < batch.x.nrows() {
            if self.next == self.pending.len() {
                if self.next_chunk == self.chunks.len() {
                    break;
                }
                let idx = self.chunks[self.next_chunk];
                self.next_chunk += 1;
                if !r.load(idx) {
                    self.next_chunk = self.chunks.len();
                    self.pending.clear();
                    self.next = 0;
                    break;
                }
                let first = r.first_row[idx];
                self.pending.clear();
                self.pending
                    .extend((0..r.rows[idx]).filter(|&i| self.is_validation[first + i]));
                self.next = 0;
            }
            let i = self.pending[self.next];
            self.next += 1;
            let (x, y) = r.staging[i * w..(i + 1) * w].split_at(f);
            copy(x, batch.x.row_mut(rows));
            copy(y, batch.y.row_mut(rows));
            rows += 1;
        }
        batch.rows = rows;
        rows > 0
    }
}

fn copy(from: &[f32], mut to: ndarray::ArrayViewMut1<'_, f32>) {
    to.as_slice_mut()
        .expect("batch rows are contiguous")
        .copy_from_slice(from);
}
