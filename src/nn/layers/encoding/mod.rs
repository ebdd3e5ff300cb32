//! The encoding of a table's columns into the first layer's input, fitted on the training
//! split and kept in the model (Keras' `FeatureSpace`, applied by the model itself). By
//! default a number is standardised with its training mean and standard deviation, a
//! missing number becomes that mean plus a missing-indicator input (when the training
//! split had missing values); a category is one-hot over the levels seen in the training
//! split, the most frequent [`MAX_TOKENS`] kept, an empty cell a level of its own, slot 0
//! for every level not kept or never seen; identifiers are left out. A job's `features`
//! choose other encodings per column ([`spec`]), and `crosses` add hashed crosses. Not
//! trained: no parameters, no gradient. Rows arrive as cells (`data::cell`).

mod embedding;
mod fit;
pub(crate) mod hash;
pub(crate) mod spec;

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::nn::data::cell::{self, Cell};
use crate::nn::data::ColumnKind;

pub(crate) use self::embedding::TableGrads;
pub(crate) use self::fit::EncodingFit;
use self::spec::{CrossPlan, Plan, Scale};

pub(crate) const NAME: &str = "encoding";
pub(crate) const KIND: &str = "FeatureSpace";

/// The level name of an empty cell.
const EMPTY: &str = "";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Encoding {
    pub columns: Vec<EncodedColumn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crosses: Vec<Cross>,
    /// Text labels of the target, in the order of the outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// The texts the training upload read as missing, when not the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_markers: Option<Vec<String>>,
    /// Code → slot per categorical column, rebuilt from `columns` on load.
    #[serde(skip)]
    slots: Vec<Option<Slots>>,
    /// The trained table of each embedded column (`None` for the others): its tensors,
    /// drawn by `init_tables` or read by `read_tables`.
    #[serde(skip)]
    tables: Vec<Option<Array2<f32>>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct EncodedColumn {
    pub name: String,
    #[serde(flatten)]
    pub how: How,
    /// Trained only on rows that have it (`missing: "drop_row"`): a row without it has no
    /// answer the model learnt.
    #[serde(default, skip_serializing_if = "is_false")]
    pub drops_missing: bool,
}

/// A hashed cross: one-hot over `crossing_dim` buckets of its columns' slots.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Cross {
    /// Indices of the crossed columns.
    pub columns: Vec<usize>,
    pub crossing_dim: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub(crate) enum How {
    /// Left out (an identifier, or a column the job excludes).
    Skip,
    /// `(x − mean)·inv_std`; missing → `fill` (0, the mean, without one) and, with
    /// `indicator`, a second input that is 1 for a missing cell.
    Standardize {
        mean: f32,
        inv_std: f32,
        indicator: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<f32>,
    },
    /// `x·scale + offset`, missing → `fill` first.
    Rescale {
        scale: f32,
        offset: f32,
        fill: f32,
        indicator: bool,
    },
    /// One-hot over the bins the boundaries make (`x` in bin `i` when `i` boundaries are
    /// at most `x`), missing → `fill` first.
    Discretize {
        boundaries: Vec<f32>,
        fill: f32,
        indicator: bool,
    },
    /// One-hot: `num_oov` out-of-vocabulary slots first, then `kept` (most frequent first).
    OneHot {
        /// The dataset's vocabulary of the column: a level cell's code indexes it.
        vocabulary: Vec<String>,
        kept: Vec<String>,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        num_oov: usize,
        /// The level a missing cell counts as (default: the empty text).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing_level: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        indicator: bool,
    },
    /// A trained row of `dim` values per slot, the slots as `OneHot`'s (Keras'
    /// `Embedding` after `StringLookup`); the table is in the model's tensors.
    #[serde(rename = "embedding")]
    Embed {
        vocabulary: Vec<String>,
        kept: Vec<String>,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        num_oov: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing_level: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        indicator: bool,
        dim: usize,
    },
    /// One-hot over `num_bins` buckets of the level's text (a number's decimal text).
    Hashed {
        vocabulary: Vec<String>,
        num_bins: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing_level: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        indicator: bool,
    },
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where each code, number and missing cell of a categorical column goes.
#[derive(Clone, Debug, PartialEq)]
struct Slots {
    code_of_text: HashMap<String, u32>,
    slot_of_code: Vec<u32>,
    /// The kept levels that are numbers, by the bits of their f32: a number cell's slot
    /// without formatting it on every pass.
    slot_of_number: HashMap<u32, u32>,
    missing: u32,
    /// Text the vocabulary lacks travels as code `vocabulary.len() + k` for its slot `k`
    /// (below `extra`): the encoding alone knows its text's slot, and a cell holds no text.
    extra: u32,
    /// Hashed columns bucket numbers they have not listed; one-hot columns send them to
    /// the out-of-vocabulary slots.
    hashed: bool,
}

impl Slots {
    fn new(vocabulary: &[String], slot_of_text: impl Fn(&str) -> u32, missing: u32) -> Slots {
        Slots {
            code_of_text: vocabulary
                .iter()
                .enumerate()
                .map(|(code, level)| (level.clone(), code as u32))
                .collect(),
            slot_of_code: vocabulary.iter().map(|level| slot_of_text(level)).collect(),
            slot_of_number: HashMap::new(),
            missing,
            extra: 1,
            hashed: false,
        }
    }

    /// The slot of text the vocabulary lacks.
    fn slot_of_new_text(&self, text: &str) -> u32 {
        if self.extra > 1 {
            hash::bucket(text, self.extra as usize)
        } else {
            0
        }
    }

    fn slot(&self, value: f32) -> u32 {
        match cell::decode(value) {
            Cell::Level(code) => match self.slot_of_code.get(code as usize) {
                Some(&slot) => slot,
                None => {
                    let k = code as usize - self.slot_of_code.len();
                    if k < self.extra as usize {
                        k as u32
                    } else {
                        0
                    }
                }
            },
            Cell::Number(v) => match self.slot_of_number.get(&v.to_bits()) {
                Some(&slot) => slot,
                None if self.hashed || self.extra > 1 => self.slot_of_new_text(&number_level(v)),
                None => 0,
            },
            Cell::Missing => self.missing,
        }
    }
}

impl How {
    pub fn width(&self) -> usize {
        match self {
            How::Skip => 0,
            How::Standardize { indicator, .. } | How::Rescale { indicator, .. } => {
                1 + usize::from(*indicator)
            }
            How::Discretize {
                boundaries,
                indicator,
                ..
            } => boundaries.len() + 1 + usize::from(*indicator),
            How::OneHot {
                kept,
                num_oov,
                indicator,
                ..
            } => num_oov + kept.len() + usize::from(*indicator),
            How::Embed { dim, indicator, .. } => dim + usize::from(*indicator),
            How::Hashed {
                num_bins,
                indicator,
                ..
            } => num_bins + usize::from(*indicator),
        }
    }

    /// Whether a cell of the column is read as a number (not a level).
    fn reads_numbers(&self) -> bool {
        matches!(
            self,
            How::Standardize { .. } | How::Rescale { .. } | How::Discretize { .. }
        )
    }

    fn slots(&self) -> Option<Slots> {
        match self {
            How::OneHot {
                vocabulary,
                kept,
                num_oov,
                missing_level,
                ..
            }
            | How::Embed {
                vocabulary,
                kept,
                num_oov,
                missing_level,
                ..
            } => {
                let oov = *num_oov as u32;
                let slot_of_kept: HashMap<&str, u32> = kept
                    .iter()
                    .enumerate()
                    .map(|(i, level)| (level.as_str(), oov + i as u32))
                    .collect();
                let oov_slot = |text: &str| {
                    if oov > 1 {
                        hash::bucket(text, oov as usize)
                    } else {
                        0
                    }
                };
                let slot_of_text = |text: &str| {
                    slot_of_kept
                        .get(text)
                        .copied()
                        .unwrap_or_else(|| oov_slot(text))
                };
                let missing = slot_of_text(missing_level.as_deref().unwrap_or(EMPTY));
                let mut slots = Slots::new(vocabulary, slot_of_text, missing);
                slots.slot_of_number = kept
                    .iter()
                    .enumerate()
                    .filter_map(|(i, level)| {
                        let v: f32 = level.parse().ok()?;
                        (number_level(v) == *level).then_some((v.to_bits(), oov + i as u32))
                    })
                    .collect();
                slots.extra = oov;
                Some(slots)
            }
            How::Hashed {
                vocabulary,
                num_bins,
                missing_level,
                ..
            } => {
                let bucket = |text: &str| hash::bucket(text, *num_bins);
                let missing = bucket(missing_level.as_deref().unwrap_or(EMPTY));
                let mut slots = Slots::new(vocabulary, bucket, missing);
                slots.extra = *num_bins as u32;
                slots.hashed = true;
                Some(slots)
            }
            _ => None,
        }
    }
}

/// The text a number in a category column stands for (`3` for a cell parsed from `"3.0"`).
pub(crate) fn number_level(v: f32) -> String {
    format!("{v}")
}

impl Encoding {
    pub fn new(
        columns: Vec<EncodedColumn>,
        crosses: Vec<Cross>,
        class_names: Option<Vec<String>>,
    ) -> Encoding {
        let slots = columns.iter().map(|c| c.how.slots()).collect();
        let tables = vec![None; columns.len()];
        Encoding {
            columns,
            crosses,
            class_names,
            missing_markers: None,
            slots,
            tables,
        }
    }

    /// Rebuilds the lookups after deserialising; `None` when the crosses name columns
    /// that are not categorical.
    pub fn restored(self) -> Option<Encoding> {
        let mut restored = Encoding::new(self.columns, self.crosses, self.class_names);
        restored.missing_markers = self.missing_markers;
        let crosses_ok = restored.crosses.iter().all(|c| {
            c.crossing_dim > 0
                && c.columns
                    .iter()
                    .all(|&i| restored.slots.get(i).is_some_and(Option::is_some))
        });
        crosses_ok.then_some(restored)
    }

    /// Raw cells per row.
    pub fn input_width(&self) -> usize {
        self.columns.len()
    }

    /// Encoded values per row.
    pub fn width(&self) -> usize {
        let crosses: usize = self.crosses.iter().map(|c| c.crossing_dim).sum();
        self.columns.iter().map(|c| c.how.width()).sum::<usize>() + crosses
    }

    /// One row of cells into its encoding (`out` of [`Encoding::width`] values).
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let mut at = 0;
        let cells = self.columns.iter().zip(&self.slots).zip(&self.tables);
        for (((column, slots), table), &value) in cells.zip(x) {
            let width = column.how.width();
            let target = &mut out[at..at + width];
            // A numeric encoding reads anything but a number as missing; a categorical one
            // has a slot for text.
            let missing = match cell::decode(value) {
                Cell::Number(_) => false,
                Cell::Level(_) => column.how.reads_numbers(),
                Cell::Missing => true,
            };
            let indicator = match (&column.how, slots) {
                (How::Skip, _) => false,
                (
                    How::Standardize {
                        mean,
                        inv_std,
                        indicator,
                        fill,
                    },
                    _,
                ) => {
                    target[0] = match cell::decode(value) {
                        Cell::Number(v) => (v - mean) * inv_std,
                        _ => fill.map_or(0.0, |f| (f - mean) * inv_std),
                    };
                    *indicator
                }
                (
                    How::Rescale {
                        scale,
                        offset,
                        fill,
                        indicator,
                    },
                    _,
                ) => {
                    target[0] = number_or(value, *fill) * scale + offset;
                    *indicator
                }
                (
                    How::Discretize {
                        boundaries,
                        fill,
                        indicator,
                    },
                    _,
                ) => {
                    let v = number_or(value, *fill);
                    target.fill(0.0);
                    target[boundaries.partition_point(|&b| b <= v)] = 1.0;
                    *indicator
                }
                (How::OneHot { indicator, .. } | How::Hashed { indicator, .. }, Some(slots)) => {
                    target.fill(0.0);
                    target[slots.slot(value) as usize] = 1.0;
                    *indicator
                }
                (How::Embed { dim, indicator, .. }, Some(slots)) => {
                    let table = table.as_ref().expect("a table per embedded column");
                    let row = table.row(slots.slot(value) as usize);
                    target[..*dim].copy_from_slice(row.as_slice().expect("contiguous rows"));
                    *indicator
                }
                (How::OneHot { .. } | How::Hashed { .. } | How::Embed { .. }, None) => {
                    unreachable!("slots per categorical column")
                }
            };
            if indicator {
                target[width - 1] = f32::from(u8::from(missing));
            }
            at += width;
        }
        for cross in &self.crosses {
            let picked: SmallVec<[u32; 4]> = cross
                .columns
                .iter()
                .map(|&i| {
                    let slots = self.slots[i]
                        .as_ref()
                        .expect("crosses read categorical columns");
                    slots.slot(x[i])
                })
                .collect();
            let target = &mut out[at..at + cross.crossing_dim];
            target.fill(0.0);
            target[hash::cross_bucket(&picked, cross.crossing_dim) as usize] = 1.0;
            at += cross.crossing_dim;
        }
    }

    pub fn forward(&self, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        for (row, mut target) in x.rows().into_iter().zip(out.rows_mut()) {
            let row = row.as_slice().expect("contiguous rows");
            self.forward_row(row, target.as_slice_mut().expect("contiguous rows"));
        }
    }

    /// Whether a client's text is a missing-value marker, as the training upload read it
    /// (`"NA"` by default).
    pub fn is_marker(&self, text: &str) -> bool {
        let text = text.trim();
        match &self.missing_markers {
            Some(markers) => markers.iter().any(|m| m.trim() == text),
            None => cell::MISSING_MARKERS.contains(&text),
        }
    }

    /// The cell a client's value stands for in column `i`, or why it cannot be one (said
    /// of the column: the caller names where the value was).
    pub fn cell_of(&self, i: usize, value: RawValue<'_>) -> Result<f32, String> {
        let cell = self.present_cell_of(i, value)?;
        if self.columns[i].drops_missing && matches!(cell::decode(cell), Cell::Missing) {
            return Err(
                "is missing, and the model was trained only on rows that have it \
                        (missing: \"drop_row\")"
                    .to_owned(),
            );
        }
        Ok(cell)
    }

    /// The slot text `text` takes in categorical column `i` and whether it reads as a
    /// missing value there, as predict reads a client's text; `None` for other columns.
    pub fn slot_of_text(&self, i: usize, text: &str) -> Option<(u32, bool)> {
        let slots = self.slots.get(i)?.as_ref()?;
        let value = self.present_cell_of(i, RawValue::Text(text)).ok()?;
        Some((slots.slot(value), cell::decode(value) == Cell::Missing))
    }

    /// The slot of text categorical column `i` has never seen.
    pub fn unseen_slot(&self, i: usize) -> Option<u32> {
        Some(self.slots.get(i)?.as_ref()?.slot(cell::UNSEEN))
    }

    /// The texts a client sends for a missing value, as the training upload read them.
    pub fn markers(&self) -> Vec<&str> {
        match &self.missing_markers {
            Some(markers) => markers.iter().map(String::as_str).collect(),
            None => cell::MISSING_MARKERS.to_vec(),
        }
    }

    fn present_cell_of(&self, i: usize, value: RawValue<'_>) -> Result<f32, String> {
        let column = &self.columns[i];
        if matches!(value, RawValue::Missing) || column.how == How::Skip {
            return Ok(cell::MISSING);
        }
        if column.how.reads_numbers() {
            return match value {
                RawValue::Number(v) => finite(v),
                RawValue::Text(t) => match t.trim().parse::<f64>() {
                    Ok(v) if !v.is_nan() => finite(v),
                    _ if self.is_marker(t) => Ok(cell::MISSING),
                    _ => Err(format!("holds numbers, got the text {t:?}")),
                },
                RawValue::Missing => Ok(cell::MISSING),
            };
        }
        let slots = self.slots[i]
            .as_ref()
            .expect("slots per categorical column");
        match value {
            RawValue::Number(v) => finite(v),
            RawValue::Text(t) => Ok(match slots.code_of_text.get(t) {
                Some(&code) => cell::level(code),
                None => match t.trim().parse::<f32>() {
                    Ok(v) if v.is_finite() => v,
                    _ if self.is_marker(t) => cell::MISSING,
                    _ => {
                        let code = slots.slot_of_code.len() + slots.slot_of_new_text(t) as usize;
                        if slots.extra > 1 && code < cell::MAX_LEVELS as usize {
                            cell::level(code as u32)
                        } else {
                            cell::UNSEEN
                        }
                    }
                },
            }),
            RawValue::Missing => Ok(cell::MISSING),
        }
    }
}

/// A cell's number, or `fill` for a missing (or text) cell.
fn number_or(value: f32, fill: f32) -> f32 {
    match cell::decode(value) {
        Cell::Number(v) => v,
        _ => fill,
    }
}

fn finite(v: f64) -> Result<f32, String> {
    let v = v as f32;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("got {v}, not a finite number"))
    }
}

/// A value as a client sends it for one column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawValue<'a> {
    Number(f64),
    Text(&'a str),
    Missing,
}

/// The widest encoding `columns` can have under `plans`, before it is fitted: for memory
/// estimates.
pub(crate) fn width_bound(plans: &[Plan], crosses: &[CrossPlan]) -> usize {
    let columns: usize = plans
        .iter()
        .map(|plan| match plan {
            Plan::Skip => 0,
            Plan::Number { scale, .. } => {
                let values = match scale {
                    Scale::Quantiles(bins) => *bins,
                    Scale::Boundaries(b) => b.len() + 1,
                    _ => 1,
                };
                values + 1
            }
            // Every level (numeric ones included, which the vocabulary does not list) is
            // bounded by the kept count; the empty level is one of them.
            Plan::Lookup {
                max_tokens,
                num_oov,
                embedding_dim,
                indicator,
                ..
            } => embedding_dim.unwrap_or(max_tokens + num_oov) + usize::from(*indicator),
            Plan::Hashed {
                num_bins,
                indicator,
                ..
            } => num_bins + usize::from(*indicator),
        })
        .sum();
    columns + crosses.iter().map(|c| c.crossing_dim).sum::<usize>()
}

/// The most values the embedding tables of `plans` can hold, before fitting.
pub(crate) fn table_bound(plans: &[Plan]) -> usize {
    plans
        .iter()
        .map(|plan| match plan {
            Plan::Lookup {
                max_tokens,
                num_oov,
                embedding_dim: Some(dim),
                ..
            } => (max_tokens + num_oov) * dim,
            _ => 0,
        })
        .sum()
}

/// Whether a cell is one a column of this kind can hold; the problem otherwise.
pub(crate) fn check_cell(kind: &ColumnKind, value: f32) -> Result<(), &'static str> {
    match (kind, cell::decode(value)) {
        (_, Cell::Missing) | (ColumnKind::Identifier { .. }, _) => Ok(()),
        (_, Cell::Number(v)) if !v.is_finite() => Err("is not a finite number"),
        (ColumnKind::Number, Cell::Level(_)) => Err("is text in a column of numbers"),
        (ColumnKind::Category { levels }, Cell::Level(code)) if code as usize >= levels.len() => {
            Err("is a level code outside the column's vocabulary")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
