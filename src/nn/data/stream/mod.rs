//! Datasets larger than memory: rows stored in chunks that the engine asks for one at
//! a time. The service implements `ChunkSource` over its storage; the engine reads each
//! chunk into one staging buffer and keeps no more than its memory budget of rows.

pub(in crate::nn) mod source;
pub(in crate::nn) mod validation;

#[cfg(test)]
mod tests;

use std::cell::RefCell;

use ndarray::{s, ArrayView2};

use crate::nn::data::{check_targets_from, first_bad_feature};
use crate::nn::error::TrainError;
use crate::nn::layers::encoding::EncodingFit;
use crate::nn::layers::{Encoding, Moments, Normalization};
use crate::nn::spec::check_model::ModelFacts;
use crate::nn::spec::LossKind;

/// A dataset stored as consecutive chunks of rows (features, then targets, per row).
/// Reads are synchronous and may fail; a failure ends training with `TrainError::Read`.
pub trait ChunkSource {
    /// Feature and target columns of every row.
    fn columns(&self) -> (usize, usize);
    /// Rows in each chunk, in storage order (known without reading the chunks).
    fn chunk_rows(&self) -> &[usize];
    /// The chunks the next `read_chunk` calls will ask for, in that order, so that the
    /// source can read ahead while the engine computes. Replaces any earlier plan.
    fn plan(&mut self, order: &[usize]) {
        let _ = order;
    }
    /// Chunk `idx`'s rows, row-major, into `buf` (which the source may replace).
    fn read_chunk(&mut self, idx: usize, buf: &mut Vec<f32>) -> Result<(), String>;
}

/// The source behind a staging buffer, shared by the training and validation passes;
/// the first read failure is kept for the training loop to report.
pub(crate) struct Reader<'a> {
    source: &'a mut dyn ChunkSource,
    pub features: usize,
    pub width: usize,
    /// Per chunk: its first row in the dataset, and its row count.
    pub first_row: Vec<usize>,
    pub rows: Vec<usize>,
    pub staging: Vec<f32>,
    pub error: Option<String>,
}

pub(crate) type Shared<'a> = RefCell<Reader<'a>>;

impl<'a> Reader<'a> {
    pub fn new(source: &'a mut dyn ChunkSource) -> Reader<'a> {
        let (features, targets) = source.columns();
        let rows = source.chunk_rows().to_vec();
        let first_row = rows
            .iter()
            .scan(0, |next, &r| {
                let first = *next;
                *next += r;
                Some(first)
            })
            .collect();
        Reader {
            source,
            features,
            width: features + targets,
            first_row,
            rows,
            staging: Vec::new(),
            error: None,
        }
    }

    pub fn total_rows(&self) -> usize {
        self.rows.iter().sum()
    }

    /// Per chunk, how many of its rows are on one side of the split (`validation`).
    pub fn rows_per_chunk(&self, is_validation: &[bool], validation: bool) -> Vec<usize> {
        self.first_row
            .iter()
            .zip(&self.rows)
            .map(|(&first, &n)| {
                is_validation[first..first + n]
                    .iter()
                    .filter(|&&v| v == validation)
                    .count()
            })
            .collect()
    }

    pub fn plan(&mut self, order: &[usize]) {
        self.source.plan(order);
    }

    /// Reads chunk `idx` into the staging buffer; false (and the error kept) on failure.
    pub fn load(&mut self, idx: usize) -> bool {
        if self.error.is_some() {
            return false;
        }
        let expected = self.rows[idx] * self.width;
        match self.source.read_chunk(idx, &mut self.staging) {
            Ok(()) if self.staging.len() == expected => true,
            Ok(()) => {
                self.error = Some(format!(
                    "chunk {idx} holds {} values, expected {} rows of {} ({expected})",
                    self.staging.len(),
                    self.rows[idx],
                    self.width
                ));
                false
            }
            Err(message) => {
                self.error = Some(format!("chunk {idx}: {message}"));
                false
            }
        }
    }

    pub fn staged(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.staging.len() / self.width, self.width), &self.staging)
            .expect("load checked the length")
    }

    pub fn take_error(&mut self) -> Result<(), TrainError> {
        match self.error.take() {
            Some(message) => Err(TrainError::Read(message)),
            None => Ok(()),
        }
    }
}

/// One pass over all chunks: the checks `fit` makes on rows in memory (the first bad
/// feature anywhere wins over a bad target, as there) and, with `adapt`, the
/// normalization statistics of the training rows.
pub(crate) fn scan(
    reader: &Shared<'_>,
    is_validation: &[bool],
    adapt: bool,
    mut fit: Option<EncodingFit>,
    facts: &ModelFacts,
    loss: LossKind,
) -> Result<(Option<Normalization>, Option<Encoding>), TrainError> {
    let outputs = facts.outputs;
    let mut r = reader.borrow_mut();
    let chunks: Vec<usize> = (0..r.rows.len()).collect();
    r.plan(&chunks);
    let mut moments = Moments::new(r.features);
    let mut target_error = None;
    for idx in chunks {
        if !r.load(idx) {
            break;
        }
        let first = r.first_row[idx];
        let staged = r.staged();
        let x = staged.slice(s![.., ..r.features]);
        if let Some(m) = first_bad_feature(&facts.columns, x, first) {
            return Err(TrainError::Data(format!("training data: {m}")));
        }
        if target_error.is_none() {
            let y = staged.slice(s![.., r.features..]);
            target_error = check_targets_from(loss, outputs, y, first).err();
        }
        if let Some(fit) = &mut fit {
            let rows = staged.rows().into_iter().enumerate();
            let train = rows.filter(|&(i, _)| !is_validation[first + i]);
            fit.add_rows(train.map(|(_, row)| row.to_slice().expect("staged rows are contiguous")));
        }
        if adapt {
            let train: Vec<&[f32]> = staged
                .rows()
                .into_iter()
                .enumerate()
                .filter(|&(i, _)| !is_validation[first + i])
                .map(|(_, row)| row.to_slice().expect("staged rows are contiguous"))
                .collect();
            moments.add_part(&train);
        }
    }
    r.take_error()?;
    if let Some(message) = target_error {
        return Err(TrainError::Data(format!("training data: {message}")));
    }
    Ok((
        adapt.then(|| Normalization::from_moments(&moments)),
        fit.map(EncodingFit::finish),
    ))
}
