//! Where mini-batches come from. The training loop only sees `BatchSource`, so a
//! streaming source (datasets larger than memory) can replace the in-memory one.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1};

use super::metrics::argmax;
use super::rng::Rng;
use super::spec::LossKind;

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
    pub fn new(capacity: usize, features: usize, targets: usize) -> Batch {
        Batch {
            x: Array2::zeros((capacity, features)),
            y: Array2::zeros((capacity, targets)),
            w: vec![1.0; capacity],
            rows: 0,
        }
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
        }
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
        for (i, &r) in picked.iter().enumerate() {
            copy_row(self.x.row(r), batch.x.row_mut(i));
            let mut target = batch.y.row_mut(i);
            copy_row(self.y.row(r), target.view_mut());
            let y = target.as_slice().expect("batch rows are contiguous");
            batch.w[i] = row_weight(self.class_weights, y);
        }
        batch.rows = picked.len();
        self.next = end;
        batch.rows > 0
    }
}
