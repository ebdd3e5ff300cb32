//! The streaming sources against the rows they must deliver: every training row once per
//! epoch, seeded orders, the validation rows in order, the buffer within its budget.

use std::cell::RefCell;

use crate::nn::data::batch::{Batch, BatchSource};
use crate::nn::data::split::split;
use crate::nn::data::stream::source::StreamTrain;
use crate::nn::data::stream::validation::StreamValidation;
use crate::nn::data::stream::{scan, ChunkSource, Reader};
use crate::nn::layers::Normalization;
use crate::nn::ops::rng::{Rng, Stream};
use crate::nn::spec::check_model::ModelFacts;
use crate::nn::spec::LossKind;

/// Row r is [r, r²/1000 + 5000, r % 3]: two features (the second with a large offset,
/// for the normalization check) and a class label; chunks of uneven sizes.
struct Rows {
    rows: Vec<usize>,
    fail_at: Option<usize>,
}

impl ChunkSource for Rows {
    fn columns(&self) -> (usize, usize) {
        (2, 1)
    }

    fn chunk_rows(&self) -> &[usize] {
        &self.rows
    }

    fn read_chunk(&mut self, idx: usize, buf: &mut Vec<f32>) -> Result<(), String> {
        if self.fail_at == Some(idx) {
            return Err("disk on fire".to_owned());
        }
        let first: usize = self.rows[..idx].iter().sum();
        buf.clear();
        for r in first..first + self.rows[idx] {
            buf.extend([r as f32, (r * r) as f32 / 1000.0 + 5000.0, (r % 3) as f32]);
        }
        Ok(())
    }
}

const SIZES: [usize; 6] = [37, 100, 1, 62, 200, 100];
const TOTAL: usize = 500;
/// Bytes of `rows` rows of this source (3 f32 each).
const fn bytes(rows: usize) -> usize {
    rows * 12
}

fn source() -> Rows {
    Rows {
        rows: SIZES.to_vec(),
        fail_at: None,
    }
}

fn membership(validation: &[usize]) -> Vec<bool> {
    membership_of(TOTAL, validation)
}

fn membership_of(total: usize, validation: &[usize]) -> Vec<bool> {
    let mut v = vec![false; total];
    validation.iter().for_each(|&r| v[r] = true);
    v
}

/// The first feature (the row index) of every row of one pass.
fn pass(source: &mut dyn BatchSource, rng: Option<&mut Rng>, batch_rows: usize) -> Vec<usize> {
    let mut batch = Batch::new(batch_rows, 2, 1).unwrap();
    source.start_epoch(rng);
    let mut seen = Vec::new();
    while source.next_batch(&mut batch) {
        seen.extend(batch.x().column(0).iter().map(|&v| v as usize));
        for (x, y) in batch.x().rows().into_iter().zip(batch.y().rows()) {
            assert_eq!(
                y[0],
                (x[0] as usize % 3) as f32,
                "targets travel with their row"
            );
        }
    }
    seen
}

#[test]
fn every_training_row_once_per_epoch_in_a_seeded_order() {
    let parts = split(TOTAL, 0.2, 7);
    let is_val = membership(&parts.validation);
    let mut rows = source();
    let reader = RefCell::new(Reader::new(&mut rows));
    let budget = bytes(200) + bytes(200);
    let mut train = StreamTrain::new(&reader, &is_val, budget, None);
    assert_eq!(train.rows(), parts.train.len());
    let mut rng = Rng::new(1, Stream::Shuffle);
    let first = pass(&mut train, Some(&mut rng), 32);
    let second = pass(&mut train, Some(&mut rng), 32);
    for epoch in [&first, &second] {
        let mut sorted = epoch.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, parts.train);
    }
    assert_ne!(first, second, "each epoch draws a new order");
    assert_ne!(first, parts.train);
    // The first batch mixes rows of several chunks (the buffer holds more than one).
    let chunk_of = |r: usize| {
        SIZES
            .iter()
            .scan(0, |s, &n| {
                *s += n;
                Some(*s)
            })
            .position(|end| r < end)
    };
    let chunks: std::collections::BTreeSet<_> = first[..32].iter().map(|&r| chunk_of(r)).collect();
    assert!(chunks.len() > 1, "first batch from chunks {chunks:?}");
    // The same generator state gives the same order; another seed another.
    let again = pass(&mut train, Some(&mut Rng::new(1, Stream::Shuffle)), 32);
    assert_eq!(again, first);
    let other = pass(&mut train, Some(&mut Rng::new(2, Stream::Shuffle)), 32);
    assert_ne!(other, first);
    assert!(reader.borrow().error.is_none());
}

#[test]
fn without_shuffle_rows_come_in_dataset_order() {
    let parts = split(TOTAL, 0.3, 3);
    let is_val = membership(&parts.validation);
    let mut rows = source();
    let reader = RefCell::new(Reader::new(&mut rows));
    let mut train = StreamTrain::new(&reader, &is_val, 0, None);
    assert_eq!(pass(&mut train, None, 7), parts.train);
}

#[test]
fn the_validation_pass_is_the_split_validation_rows_in_order() {
    let parts = split(TOTAL, 0.25, 11);
    let is_val = membership(&parts.validation);
    let mut rows = source();
    let reader = RefCell::new(Reader::new(&mut rows));
    let mut val = StreamValidation::new(&reader, &is_val);
    assert_eq!(val.rows(), parts.validation.len());
    assert_eq!(pass(&mut val, None, 40), parts.validation);
    assert_eq!(pass(&mut val, None, 1000), parts.validation);
}

#[test]
fn the_buffer_holds_the_budget_but_at_least_the_largest_chunk() {
    let is_val = vec![false; TOTAL];
    let mut rows = source();
    let reader = RefCell::new(Reader::new(&mut rows));
    // Staging is one largest chunk (200 rows); the rest of the budget is the buffer.
    let capacity = |budget| StreamTrain::new(&reader, &is_val, budget, None).capacity();
    assert_eq!(capacity(0), 200);
    assert_eq!(capacity(bytes(200) + bytes(300)), 300);
    assert_eq!(capacity(usize::MAX), TOTAL);
}

/// What validation found for the test rows' spec: 3 classes, plain numbers.
fn facts() -> ModelFacts {
    ModelFacts {
        features: 2,
        outputs: 3,
        task: crate::nn::model::Task::Multiclass,
        class_weights: None,
        columns: Vec::new(),
        plans: Vec::new(),
        crosses: Vec::new(),
        class_names: None,
        missing_markers: None,
    }
}

#[test]
fn streamed_statistics_match_the_in_memory_adapt() {
    let parts = split(TOTAL, 0.2, 5);
    let is_val = membership(&parts.validation);
    let mut rows = source();
    let reader = RefCell::new(Reader::new(&mut rows));
    let norm = scan(
        &reader,
        &is_val,
        true,
        None,
        &facts(),
        LossKind::SparseCategoricalCrossentropy,
    )
    .expect("valid rows")
    .0
    .expect("adapted");
    let x = ndarray::Array2::from_shape_fn((TOTAL, 2), |(r, c)| match c {
        0 => r as f32,
        _ => (r * r) as f32 / 1000.0 + 5000.0,
    });
    let whole = Normalization::adapt(2, parts.train.iter().map(|&r| x.row(r)));
    for j in 0..2 {
        let rel = |a: f32, b: f32| ((a - b) / b).abs();
        assert!(rel(norm.mean[j], whole.mean[j]) <= 1e-6, "mean {j}");
        assert!(
            rel(norm.variance[j], whole.variance[j]) <= 1e-6,
            "variance {j}"
        );
    }
}

#[test]
fn a_failed_read_ends_the_pass_and_is_kept() {
    let is_val = vec![false; TOTAL];
    let mut rows = Rows {
        rows: SIZES.to_vec(),
        fail_at: Some(3),
    };
    let reader = RefCell::new(Reader::new(&mut rows));
    let mut train = StreamTrain::new(&reader, &is_val, 0, None);
    let seen = pass(&mut train, None, 16);
    assert_eq!(seen.len(), 138, "the rows of chunks 0..3");
    let err = reader.borrow_mut().take_error().unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading the training data failed: chunk 3: disk on fire"
    );
    let target = scan(
        &reader,
        &is_val,
        false,
        None,
        &facts(),
        LossKind::SparseCategoricalCrossentropy,
    );
    assert!(target.is_err());
}

/// Rows of 200 features, x[r][c] = 1000·r + c, and the label r % 3, in uneven chunks.
struct Wide {
    rows: Vec<usize>,
}

const WIDE: usize = 200;

impl ChunkSource for Wide {
    fn columns(&self) -> (usize, usize) {
        (WIDE, 1)
    }

    fn chunk_rows(&self) -> &[usize] {
        &self.rows
    }

    fn read_chunk(&mut self, idx: usize, buf: &mut Vec<f32>) -> Result<(), String> {
        let first: usize = self.rows[..idx].iter().sum();
        buf.clear();
        for r in first..first + self.rows[idx] {
            buf.extend((0..WIDE).map(|c| (r * 1000 + c) as f32));
            buf.push((r % 3) as f32);
        }
        Ok(())
    }
}

/// Batches of 128 wide rows are copied out of the buffer on two threads: the same batches
/// as one thread, every row whole although chunks keep refilling the slots drawn before.
#[test]
fn two_threads_copy_the_same_batches_out_of_the_buffer_as_one() {
    let sizes = vec![300, 150, 1, 400, 149];
    let total: usize = sizes.iter().sum();
    let parts = split(total, 0.1, 9);
    let is_val = membership_of(total, &parts.validation);
    let weights = [0.5, 2.0, 3.0];
    let row_bytes = 4 * (WIDE + 1);
    let epoch = |threads: usize| {
        let mut rows = Wide {
            rows: sizes.clone(),
        };
        let reader = RefCell::new(Reader::new(&mut rows));
        let budget = 400 * row_bytes + 500 * row_bytes;
        let class_weights = Some((&weights[..], LossKind::SparseCategoricalCrossentropy));
        let mut train =
            StreamTrain::new(&reader, &is_val, budget, class_weights).with_threads(threads);
        assert_eq!(train.capacity(), 500);
        let mut batch = Batch::new(128, WIDE, 1).unwrap();
        train.start_epoch(Some(&mut Rng::new(4, Stream::Shuffle)));
        let mut batches = Vec::new();
        while train.next_batch(&mut batch) {
            let w = batch.w[..batch.rows].to_vec();
            batches.push((batch.x().to_owned(), batch.y().to_owned(), w));
        }
        batches
    };
    let (one, two) = (epoch(1), epoch(2));
    assert_eq!(one, two);
    let mut seen = Vec::new();
    for (x, y, w) in &two {
        for ((row, label), &w) in x.rows().into_iter().zip(y.column(0)).zip(w) {
            let r = row[0] as usize / 1000;
            let whole = row
                .iter()
                .enumerate()
                .all(|(c, &v)| v == (r * 1000 + c) as f32);
            assert!(whole, "row {r} is whole");
            assert_eq!(*label, (r % 3) as f32);
            assert_eq!(w, weights[r % 3]);
            seen.push(r);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, parts.train);
}
