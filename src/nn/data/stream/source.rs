//! Training mini-batches streamed from chunks through a seeded shuffle buffer.

use ndarray::{s, ArrayView2};

use crate::nn::data::batch::{gather, Batch, BatchSource};
use crate::nn::data::stream::Shared;
use crate::nn::ops::rng::{Rng, Stream};
use crate::nn::spec::LossKind;

/// Training rows, each epoch visiting the chunks in a seeded random order. The buffer
/// holds up to `capacity` rows drawn at random: a chunk's rows enter as soon as there
/// is room for all of them, so a row can leave before or after rows of chunks read
/// much earlier or later. Without shuffling, chunks and rows come in dataset order.
///
/// Rows stay in the buffer slot they were loaded into: the draw shuffles slot numbers,
/// and a batch's rows are copied out of their slots once, on two threads (as in
/// memory). Moving the last row into a drawn row's place instead copied every row a
/// second time, on the training loop's thread.
pub(crate) struct StreamTrain<'r, 'a> {
    reader: &'r Shared<'a>,
    is_validation: &'r [bool],
    /// Training rows per chunk; chunks without any are never read.
    train_rows: Vec<usize>,
    rows: usize,
    order: Vec<usize>,
    next_chunk: usize,
    /// `capacity` slots of `width` values, a row's features then targets.
    buffer: Vec<f32>,
    /// Slot numbers: the first `len` hold the rows not handed out yet, in the order the
    /// draws see them; the rest are free.
    slots: Vec<usize>,
    /// The slots drawn for the batch being filled, not yet copied into it.
    picked: Vec<usize>,
    threads: usize,
    width: usize,
    features: usize,
    capacity: usize,
    len: usize,
    /// Next row to hand out when not shuffling.
    cursor: usize,
    draw: Option<Rng>,
    class_weights: Option<(&'r [f32], LossKind)>,
}

impl<'r, 'a> StreamTrain<'r, 'a> {
    /// `memory_bytes` bounds the shuffle buffer plus the staging chunk; the buffer
    /// always fits the largest chunk, whatever the budget.
    pub fn new(
        reader: &'r Shared<'a>,
        is_validation: &'r [bool],
        memory_bytes: usize,
        class_weights: Option<(&'r [f32], LossKind)>,
    ) -> StreamTrain<'r, 'a> {
        let r = reader.borrow();
        let train_rows = r.rows_per_chunk(is_validation, false);
        let rows = train_rows.iter().sum();
        let row_bytes = 4 * r.width.max(1);
        let staging = r.rows.iter().max().copied().unwrap_or(0) * row_bytes;
        let largest = train_rows.iter().max().copied().unwrap_or(0);
        let capacity = (memory_bytes.saturating_sub(staging) / row_bytes)
            .max(largest)
            .min(rows);
        StreamTrain {
            reader,
            is_validation,
            train_rows,
            rows,
            order: Vec::new(),
            next_chunk: 0,
            buffer: vec![0.0; capacity * r.width],
            slots: (0..capacity).collect(),
            picked: Vec::new(),
            threads: 1,
            width: r.width,
            features: r.features,
            capacity,
            len: 0,
            cursor: 0,
            draw: None,
            class_weights,
        }
    }

    /// Lets `next_batch` copy a large batch's rows on two threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends the training rows of the next chunk in the epoch's order.
    fn load_next(&mut self) -> bool {
        let idx = self.order[self.next_chunk];
        self.next_chunk += 1;
        let mut r = self.reader.borrow_mut();
        if !r.load(idx) {
            // Ends the pass; the training loop reports the kept error.
            self.next_chunk = self.order.len();
            self.len = 0;
            return false;
        }
        let first = r.first_row[idx];
        let w = self.width;
        for (i, row) in r.staging.chunks_exact(w).enumerate() {
            if !self.is_validation[first + i] {
                let slot = self.slots[self.len];
                self.buffer[slot * w..(slot + 1) * w].copy_from_slice(row);
                self.len += 1;
            }
        }
        true
    }

    /// Whether `refill` would load a chunk now, into slots that may still hold rows
    /// picked for the batch being filled.
    fn loads_next(&self) -> bool {
        let more = self.next_chunk < self.order.len();
        match self.draw {
            Some(_) => {
                more && self.len + self.train_rows[self.order[self.next_chunk]] <= self.capacity
            }
            None => more && self.cursor == self.len,
        }
    }

    /// Makes at least one row available unless the pass is over.
    fn refill(&mut self) -> bool {
        if self.draw.is_some() {
            while self.loads_next() {
                if !self.load_next() {
                    return false;
                }
            }
        } else if self.cursor == self.len {
            (self.cursor, self.len) = (0, 0);
            while self.len == 0 && self.next_chunk < self.order.len() {
                if !self.load_next() {
                    return false;
                }
            }
        }
        self.cursor < self.len
    }

    /// The slot of the next row. A drawn row's place in the order goes to the last row.
    fn take(&mut self) -> usize {
        let at = match self.draw.as_mut() {
            Some(rng) => {
                let pick = rng.below(self.len);
                self.len -= 1;
                self.slots.swap(pick, self.len);
                self.len
            }
            None => {
                self.cursor += 1;
                self.cursor - 1
            }
        };
        self.slots[at]
    }

    /// Copies the picked rows into `batch` from its row `first` on; returns how many.
    fn copy_picked(&mut self, batch: &mut Batch, first: usize) -> usize {
        let rows = ArrayView2::from_shape((self.capacity, self.width), &self.buffer)
            .expect("the buffer holds `capacity` slots");
        let (x, y) = (
            rows.slice(s![.., ..self.features]),
            rows.slice(s![.., self.features..]),
        );
        let n = self.picked.len();
        gather(
            x,
            y,
            self.class_weights,
            &self.picked,
            batch,
            first,
            self.threads,
        );
        self.picked.clear();
        n
    }
}

impl BatchSource for StreamTrain<'_, '_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn start_epoch(&mut self, shuffle: Option<&mut Rng>) {
        self.order = (0..self.train_rows.len())
            .filter(|&c| self.train_rows[c] > 0)
            .collect();
        // The row draws get their own generator seeded from the epoch's shuffle stream,
        // so a checkpoint (which stores that stream) resumes the same orders.
        self.draw = shuffle.map(|rng| {
            rng.shuffle(&mut self.order);
            Rng::new(rng.next_u64(), Stream::Shuffle)
        });
        (self.next_chunk, self.len, self.cursor) = (0, 0, 0);
        self.reader.borrow_mut().plan(&self.order);
    }

    fn next_batch(&mut self, batch: &mut Batch) -> bool {
        let mut rows = 0;
        while rows + self.picked.len() < batch.x.nrows() {
            if self.loads_next() {
                rows += self.copy_picked(batch, rows);
            }
            if !self.refill() {
                break;
            }
            let slot = self.take();
            self.picked.push(slot);
        }
        rows += self.copy_picked(batch, rows);
        batch.rows = rows;
        rows > 0
    }
}
