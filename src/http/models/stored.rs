//! A stored dataset's rows in a model's terms: the dataset's columns found by name, and its
//! level codes (which index the dataset's own vocabulary) looked up again by their text in
//! the model's.

use ndarray::ArrayViewMut2;

use super::scores::Kept;
use crate::http::error::{Error, Result};
use crate::nn::cell::{self, Cell};
use crate::nn::{Model, RawValue};
use crate::store::{ColumnReport, ColumnType, Dataset};

/// Where a model input or a kept column is in a stored row, and how its cells read.
struct Source {
    at: usize,
    /// The column's levels in code order (empty for numbers).
    levels: Vec<String>,
    /// A text target is stored as plain level codes, not level cells.
    codes_as_numbers: bool,
}

impl Source {
    fn of(at: usize, report: Option<&ColumnReport>, is_target: bool) -> Source {
        let category = report.is_some_and(|r| r.kind == ColumnType::Category);
        Source {
            at,
            levels: report.map(|r| r.levels.clone()).unwrap_or_default(),
            codes_as_numbers: is_target && category,
        }
    }

    fn code(&self, value: f32) -> Option<u32> {
        match cell::decode(value) {
            Cell::Level(code) => Some(code),
            Cell::Number(v) if self.codes_as_numbers => Some(v as u32),
            _ => None,
        }
    }
}

/// A model input read from a stored column: its cells with the model's codes per stored
/// code, or a missing value for an input the dataset lacks and the model leaves out.
enum Input {
    Column { source: Source, recode: Vec<f32> },
    Absent,
}

pub(super) struct StoredColumns {
    width: usize,
    inputs: Vec<Input>,
    keep: Vec<Source>,
}

impl StoredColumns {
    /// Refuses a dataset that lacks a column the model reads, and a kept column that is
    /// unknown or whose values the dataset does not keep.
    pub fn new(
        dataset: &Dataset,
        model: &Model,
        names: &[&str],
        keep: &[String],
    ) -> Result<StoredColumns> {
        let stored: Vec<&String> = dataset
            .feature_names
            .iter()
            .chain(&dataset.target_names)
            .collect();
        let source = |name: &str| {
            let at = stored.iter().position(|s| *s == name)?;
            Some(Source::of(
                at,
                dataset.column_reports.get(at),
                at >= dataset.features(),
            ))
        };
        let mut absent = Vec::new();
        let mut inputs = Vec::with_capacity(names.len());
        for (c, name) in names.iter().enumerate() {
            let input = match source(name) {
                Some(source) => {
                    let recode = source
                        .levels
                        .iter()
                        .map(|level| model.cell_of(c, RawValue::Text(level)))
                        .collect::<std::result::Result<Vec<f32>, String>>()
                        .map_err(|e| {
                            Error::Unprocessable(format!(
                                "dataset {} column {name:?}: the model's column {e}",
                                dataset.id
                            ))
                        })?;
                    Input::Column { source, recode }
                }
                None if model.reads_input(c) => {
                    absent.push(*name);
                    Input::Absent
                }
                None => Input::Absent,
            };
            inputs.push(input);
        }
        if !absent.is_empty() {
            return Err(Error::Unprocessable(format!(
                "dataset {} has no column {absent:?}, which the model reads; its columns are \
                 {:?}",
                dataset.id, dataset.columns
            )));
        }
        let keep = keep
            .iter()
            .map(|name| {
                let source = source(name).ok_or_else(|| {
                    Error::Unprocessable(format!(
                        "keep names the column {name:?}, which dataset {} does not have; its \
                         columns are {:?}",
                        dataset.id, dataset.columns
                    ))
                })?;
                let sampled = dataset.column_reports.get(source.at).is_some_and(|r| {
                    r.kind == ColumnType::Identifier && r.levels.len() < r.distinct
                });
                if sampled {
                    return Err(Error::Unprocessable(format!(
                        "keep names {name:?}, an identifier column with too many values for \
                         a stored dataset to keep more than a sample; the answer's lines are \
                         in the dataset's row order, or score the CSV itself to keep it"
                    )));
                }
                Ok(source)
            })
            .collect::<Result<_>>()?;
        Ok(StoredColumns {
            width: stored.len(),
            inputs,
            keep,
        })
    }

    /// Rows in a stored chunk.
    pub fn rows(&self, chunk: &[f32]) -> usize {
        chunk.len() / self.width.max(1)
    }

    /// The model's cells of every row of `chunk` into `x` (rows × model inputs).
    pub fn cells(&self, chunk: &[f32], mut x: ArrayViewMut2<'_, f32>) {
        for (stored, mut row) in chunk.chunks_exact(self.width).zip(x.rows_mut()) {
            for (input, out) in self.inputs.iter().zip(row.iter_mut()) {
                *out = match input {
                    Input::Absent => cell::MISSING,
                    Input::Column { source, recode } => {
                        let value = stored[source.at];
                        match source.code(value) {
                            // A code past the stored vocabulary (a large identifier's, whose
                            // sample is all a dataset keeps) is a level the model never saw.
                            Some(code) => {
                                recode.get(code as usize).copied().unwrap_or(cell::UNSEEN)
                            }
                            None => value,
                        }
                    }
                };
            }
        }
    }

    /// Kept column `k` of row `row` of `chunk`.
    pub fn kept<'s>(&'s self, chunk: &[f32], row: usize, k: usize) -> Kept<'s> {
        let source = &self.keep[k];
        let value = chunk[row * self.width + source.at];
        match (source.code(value), cell::decode(value)) {
            (Some(code), _) => source
                .levels
                .get(code as usize)
                .map_or(Kept::Missing, |level| Kept::Text(level)),
            (None, Cell::Number(v)) => Kept::Number(v),
            (None, _) => Kept::Missing,
        }
    }
}
