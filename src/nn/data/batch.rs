//! Where mini-batches come from. The training loop only sees `BatchSource`, so a
//! streaming source (datasets larger than memory) can replace the in-memory one.

use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

use crate::nn::ops::alloc::{filled, zeros2, OutOfMemory};
use crate::nn::ops::metrics::argmax;
use crate::nn::ops::rng::Rng;
use crate::nn::spec::LossKind;

/// A preallocated batch: the first `rows` rows of each buffer are valid.
#[derive(Debug)]
pub(crate) struct Batch {
    pub x: Array2<f32>,
    pub y: Array2<f32>,
    /// Per-row loss weight (class weights), 1 without them.
    pub w: Vec<f32>,
    pub rows: usize,
}

impl Batch {
    pub fn new(capacity: usize, features: usize, targets: usize) -> Result<Batch, OutOfMemory> {
        Ok(Batch {
            x: zeros2((capacity, features), "a batch's features")?,
            y: zeros2((capacity, targets), "a batch's targets")?,
            w: filled(capacity, 1.0, "a batch's row weights")?,
            rows: 0,
        })
    }

    pub fn x(&self) -> ArrayView2<'_, f32> {
        self.x.slice(ndarray::s![..self.rows, ..])
    }

    pub fn y(&self) -> ArrayView2<'_, f32> {
        self.y.slice(ndarray::s![..self.rows, ..])
    }
}

pub(crate) trait BatchSource {
    /// Rows delivered per epoch.
    fn rows(&self) -> usize;
    /// Start a pass; with an RNG, in a fresh random order.
    fn start_epoch(&mut self, shuffle: Option<&mut Rng>);
    /// Fill `batch` with up to its capacity of the next rows; false when the pass is over.
    fn next_batch(&mut self, batch: &mut Batch) -> bool;
}

/// A plain memcpy for the usual row-major input; any other layout element by element.
#[inline]
fn copy_row(from: ArrayView1<'_, f32>, mut to: ArrayViewMut1<'_, f32>) {
    match (from.as_slice(), to.as_slice_mut()) {
        (Some(src), Some(dst)) => dst.copy_from_slice(src),
        _ => to.assign(&from),
    }
}

/// Rows of arrays in memory, selected by index.
pub(crate) struct InMemory<'a> {
    x: ArrayView2<'a, f32>,
    y: ArrayView2<'a, f32>,
    rows: Vec<usize>,
    order: Vec<usize>,
    next: usize,
    class_weights: Option<(&'a [f32], LossKind)>,
    threads: usize,
}

impl<'a> InMemory<'a> {
    pub fn new(x: ArrayView2<'a, f32>, y: ArrayView2<'a, f32>, rows: Vec<usize>) -> InMemory<'a> {
        InMemory {
            x,
            y,
            order: rows.clone(),
            rows,
            next: 0,
            class_weights: None,
            threads: 1,
        }
    }

    /// Lets `next_batch` copy a large batch's rows on two threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    pub fn with_class_weights(mut self, weights: &'a [f32], loss: LossKind) -> Self {
        self.class_weights = Some((weights, loss));
        self
    }
}

/// A row's loss weight under the class weights (1 without them or for an unlisted class).
pub(crate) fn row_weight(class_weights: Option<(&[f32], LossKind)>, y: &[f32]) -> f32 {
    match class_weights {
        None => 1.0,
        Some((w, loss)) => {
            let class = match loss {
                LossKind::CategoricalCrossentropy => argmax(y),
                LossKind::BinaryCrossentropy => usize::from(y[0] > 0.5),
                _ => y[0] as usize,
            };
            w.get(class).copied().unwrap_or(1.0)
        }
    }
}

impl BatchSource for InMemory<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn start_epoch(&mut self, shuffle: Option<&mut Rng>) {
        // Always from the base order, so the permutation depends only on the RNG state.
        self.order.copy_from_slice(&self.rows);
        if let Some(rng) = shuffle {
            rng.shuffle(&mut self.order);
        }
        self.next = 0;
    }

    fn next_batch(&mut self, batch: &mut Batch) -> bool {
        let end = (self.next + batch.x.nrows()).min(self.order.len());
        let picked = &self.order[self.next..end];
        gather(
            self.x,
            self.y,
            self.class_weights,
            picked,
            batch,
            0,
            self.threads,
        );
        batch.rows = picked.len();
        self.next = end;
        batch.rows > 0
    }
}

/// Below this many values per batch one thread copies the rows: a fork-join costs more.
const PARALLEL_GATHER_MIN: usize = 1 << 14;

/// Copies rows `picked` of `x` and `y` into `batch` from its row `first` on, with each
/// row's loss weight. The copy is bound by memory latency (the rows are scattered over
/// the whole dataset or shuffle buffer), and it runs while the other core has nothing
/// to do: with `threads` > 1 a large one is split in two.
pub(crate) fn gather(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    class_weights: Option<(&[f32], LossKind)>,
    picked: &[usize],
    batch: &mut Batch,
    first: usize,
    threads: usize,
) {
    let end = first + picked.len();
    let (to_x, to_y, to_w) = (
        batch.x.slice_mut(s![first..end, ..]),
        batch.y.slice_mut(s![first..end, ..]),
        &mut batch.w[first..end],
    );
    let copy = |picked: &[usize], to_x, to_y, to_w: &mut [f32]| {
        gather_rows(x, y, class_weights, picked, to_x, to_y, to_w)
    };
    if threads > 1 && picked.len() * x.ncols() >= PARALLEL_GATHER_MIN {
        let mid = picked.len() / 2;
        let (x1, x2) = to_x.split_at(Axis(0), mid);
        let (y1, y2) = to_y.split_at(Axis(0), mid);
        let (w1, w2) = to_w.split_at_mut(mid);
        rayon::join(
            || copy(&picked[..mid], x1, y1, w1),
            || copy(&picked[mid..], x2, y2, w2),
        );
    } else {
        copy(picked, to_x, to_y, to_w);
    }
}

fn gather_rows(
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    class_weights: Option<(&[f32], LossKind)>,
    picked: &[usize],
    mut to_x: ArrayViewMut2<'_, f32>,
    mut to_y: ArrayViewMut2<'_, f32>,
    to_w: &mut [f32],
) {
    for (i, &r) in picked.iter().enumerate() {
        copy_row(x.row(r), to_x.row_mut(i));
        let mut target = to_y.row_mut(i);
        copy_row(y.row(r), target.view_mut());
        let y = target.as_slice().expect("batch rows are contiguous");
        to_w[i] = row_weight(class_weights, y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch of an epoch, as (x, y, w) of its valid rows.
    fn batches(
        source: &mut InMemory<'_>,
        capacity: usize,
    ) -> Vec<(Array2<f32>, Array2<f32>, Vec<f32>)> {
        let mut batch = Batch::new(capacity, source.x.ncols(), source.y.ncols()).unwrap();
        source.start_epoch(Some(&mut Rng::new(3, crate::nn::ops::rng::Stream::Shuffle)));
        let mut all = Vec::new();
        while source.next_batch(&mut batch) {
            let w = batch.w[..batch.rows].to_vec();
            all.push((batch.x().to_owned(), batch.y().to_owned(), w));
        }
        all
    }

    #[test]
    fn two_threads_gather_the_same_batches_as_one() {
        // 300 rows of 200 features: batches of 128 are large enough to be split, and
        // the last one (44 rows) is short.
        let x = Array2::from_shape_fn((300, 200), |(r, c)| (r * 1000 + c) as f32);
        let y = Array2::from_shape_fn((300, 1), |(r, _)| (r % 3) as f32);
        let weights = [0.5, 2.0, 3.0];
        let source = |threads| {
            InMemory::new(x.view(), y.view(), (0..300).collect())
                .with_class_weights(&weights, LossKind::SparseCategoricalCrossentropy)
                .with_threads(threads)
        };
        let (one, two) = (batches(&mut source(1), 128), batches(&mut source(2), 128));
        assert_eq!(one.len(), 3);
        assert_eq!(one[2].0.nrows(), 44);
        assert_eq!(one, two);
        // Each row is the source row its label and weight say it is.
        for (bx, by, bw) in &two {
            for ((row, label), &w) in bx.rows().into_iter().zip(by.column(0)).zip(bw) {
                let r = (row[0] / 1000.0) as usize;
                assert_eq!(row, x.row(r));
                assert_eq!(*label, (r % 3) as f32);
                assert_eq!(w, weights[r % 3]);
            }
        }
    }
}
