//! The encoding of a table's columns into the first layer's input, fitted on the training
//! split and kept in the model (Keras' `FeatureSpace`, applied by the model itself): a
//! number is standardised with its training mean and standard deviation, a missing number
//! becomes that mean plus a missing-indicator input (when the training split had missing
//! values); a category is one-hot over the levels seen in the training split, the most
//! frequent [`MAX_TOKENS`] kept, an empty cell a level of its own, slot 0 for every level
//! not kept or never seen; identifiers are left out. Not trained: no parameters, no
//! gradient. Rows arrive as cells (`data::cell`).

use std::collections::HashMap;

use ndarray::{ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::nn::data::cell::{self, Cell};
use crate::nn::data::{Column, ColumnKind};

pub(crate) const NAME: &str = "encoding";
pub(crate) const KIND: &str = "FeatureSpace";

/// Levels kept per category column (Keras' `max_tokens` for `string_categorical`).
pub(crate) const MAX_TOKENS: usize = 100;

/// The level name of an empty cell.
const EMPTY: &str = "";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Encoding {
    pub columns: Vec<EncodedColumn>,
    /// Text labels of the target, in the order of the outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Code → slot per category column, rebuilt from `columns` on load.
    #[serde(skip)]
    lookup: Vec<Option<Lookup>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct EncodedColumn {
    pub name: String,
    #[serde(flatten)]
    pub how: How,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub(crate) enum How {
    /// Left out (an identifier).
    Skip,
    /// `(x − mean)·inv_std`; missing → 0 (the mean) and, with `indicator`, a second input
    /// that is 1 for a missing cell.
    Standardize {
        mean: f32,
        inv_std: f32,
        indicator: bool,
    },
    /// One-hot: slot 0 out of vocabulary, then `kept` (most frequent first).
    OneHot {
        /// The dataset's vocabulary of the column: a level cell's code indexes it.
        vocabulary: Vec<String>,
        kept: Vec<String>,
    },
}

/// Where each code (and each numeric level) of a one-hot column goes.
#[derive(Clone, Debug, PartialEq)]
struct Lookup {
    code_of_text: HashMap<String, u32>,
    slot_of_code: Vec<u32>,
    slot_of_text: HashMap<String, u32>,
    /// The kept levels that are numbers, by the bits of their f32: a number cell's slot
    /// without formatting it on every pass.
    slot_of_number: HashMap<u32, u32>,
    missing: u32,
}

impl How {
    pub fn width(&self) -> usize {
        match self {
            How::Skip => 0,
            How::Standardize { indicator, .. } => 1 + usize::from(*indicator),
            How::OneHot { kept, .. } => 1 + kept.len(),
        }
    }
}

/// The text a number in a category column stands for (`3` for a cell parsed from `"3.0"`).
fn number_level(v: f32) -> String {
    format!("{v}")
}

impl Encoding {
    pub fn new(columns: Vec<EncodedColumn>, class_names: Option<Vec<String>>) -> Encoding {
        let lookup = columns
            .iter()
            .map(|c| match &c.how {
                How::OneHot { vocabulary, kept } => {
                    let slot_of_text: HashMap<String, u32> = kept
                        .iter()
                        .enumerate()
                        .map(|(i, level)| (level.clone(), i as u32 + 1))
                        .collect();
                    let slot_of_code = vocabulary
                        .iter()
                        .map(|level| slot_of_text.get(level).copied().unwrap_or(0))
                        .collect();
                    let missing = slot_of_text.get(EMPTY).copied().unwrap_or(0);
                    let slot_of_number = kept
                        .iter()
                        .enumerate()
                        .filter_map(|(i, level)| {
                            let v: f32 = level.parse().ok()?;
                            (number_level(v) == *level).then_some((v.to_bits(), i as u32 + 1))
                        })
                        .collect();
                    let code_of_text = vocabulary
                        .iter()
                        .enumerate()
                        .map(|(code, level)| (level.clone(), code as u32))
                        .collect();
                    Some(Lookup {
                        code_of_text,
                        slot_of_code,
                        slot_of_text,
                        slot_of_number,
                        missing,
                    })
                }
                _ => None,
            })
            .collect();
        Encoding {
            columns,
            class_names,
            lookup,
        }
    }

    /// Rebuilds the lookups after deserialising.
    pub fn restored(self) -> Encoding {
        Encoding::new(self.columns, self.class_names)
    }

    /// Raw cells per row.
    pub fn input_width(&self) -> usize {
        self.columns.len()
    }

    /// Encoded values per row.
    pub fn width(&self) -> usize {
        self.columns.iter().map(|c| c.how.width()).sum()
    }

    /// One row of cells into its encoding (`out` of [`Encoding::width`] values).
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let mut at = 0;
        for ((column, lookup), &value) in self.columns.iter().zip(&self.lookup).zip(x) {
            match (&column.how, lookup) {
                (How::Skip, _) => {}
                (
                    How::Standardize {
                        mean,
                        inv_std,
                        indicator,
                    },
                    _,
                ) => {
                    let (v, missing) = match cell::decode(value) {
                        Cell::Number(v) => ((v - mean) * inv_std, 0.0),
                        Cell::Level(_) | Cell::Missing => (0.0, 1.0),
                    };
                    out[at] = v;
                    if *indicator {
                        out[at + 1] = missing;
                    }
                }
                (How::OneHot { kept, .. }, Some(lookup)) => {
                    let slots = &mut out[at..at + 1 + kept.len()];
                    slots.fill(0.0);
                    let slot = match cell::decode(value) {
                        Cell::Level(code) => lookup.slot_of_code.get(code as usize).copied(),
                        Cell::Number(v) => lookup.slot_of_number.get(&v.to_bits()).copied(),
                        Cell::Missing => Some(lookup.missing),
                    };
                    slots[slot.unwrap_or(0) as usize] = 1.0;
                }
                (How::OneHot { .. }, None) => unreachable!("a lookup per one-hot column"),
            }
            at += column.how.width();
        }
    }

    pub fn forward(&self, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        for (row, mut target) in x.rows().into_iter().zip(out.rows_mut()) {
            let row = row.as_slice().expect("contiguous rows");
            self.forward_row(row, target.as_slice_mut().expect("contiguous rows"));
        }
    }

    /// The cell a client's value stands for in column `i`, or why it cannot be one (said
    /// of the column: the caller names where the value was).
    pub fn cell_of(&self, i: usize, value: RawValue<'_>) -> Result<f32, String> {
        let column = &self.columns[i];
        match (&column.how, value) {
            (_, RawValue::Missing) | (How::Skip, _) => Ok(cell::MISSING),
            (How::Standardize { .. }, RawValue::Number(v)) => finite(v),
            (How::Standardize { .. }, RawValue::Text(t)) => match t.trim().parse::<f64>() {
                Ok(v) if !v.is_nan() => finite(v),
                _ if is_marker(t) => Ok(cell::MISSING),
                _ => Err(format!("holds numbers, got the text {t:?}")),
            },
            (How::OneHot { .. }, RawValue::Text(t)) => {
                let lookup = self.lookup[i]
                    .as_ref()
                    .expect("a lookup per one-hot column");
                Ok(match lookup.code_of_text.get(t) {
                    Some(&code) => cell::level(code),
                    None => match t.trim().parse::<f32>() {
                        Ok(v) if v.is_finite() => v,
                        _ if is_marker(t) => cell::MISSING,
                        _ => cell::UNSEEN,
                    },
                })
            }
            (How::OneHot { .. }, RawValue::Number(v)) => finite(v),
        }
    }
}

/// A missing-value marker sent as text (`"NA"`), as the upload read it by default.
fn is_marker(text: &str) -> bool {
    cell::MISSING_MARKERS.contains(&text.trim())
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

/// The statistics of the training rows an encoding is fitted on, gathered part by part
/// (the rows in memory at once, or a streamed dataset chunk by chunk).
pub(crate) struct EncodingFit {
    columns: Vec<Column>,
    class_names: Option<Vec<String>>,
    stats: Vec<ColumnFit>,
}

enum ColumnFit {
    Skip,
    Number {
        n: u64,
        mean: f64,
        m2: f64,
        missing: u64,
    },
    Category {
        counts: Vec<u64>,
        numbers: HashMap<u32, u64>,
        missing: u64,
    },
}

impl EncodingFit {
    pub fn new(columns: &[Column], class_names: Option<Vec<String>>) -> EncodingFit {
        let stats = columns
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Number => ColumnFit::Number {
                    n: 0,
                    mean: 0.0,
                    m2: 0.0,
                    missing: 0,
                },
                ColumnKind::Category { levels } => ColumnFit::Category {
                    counts: vec![0; levels.len()],
                    numbers: HashMap::new(),
                    missing: 0,
                },
                ColumnKind::Identifier => ColumnFit::Skip,
            })
            .collect();
        EncodingFit {
            columns: columns.to_vec(),
            class_names,
            stats,
        }
    }

    /// Adds training rows (cells; each at least as wide as the columns).
    pub fn add_rows<'r>(&mut self, rows: impl Iterator<Item = &'r [f32]>) {
        for row in rows {
            for (stats, &value) in self.stats.iter_mut().zip(row) {
                match (stats, cell::decode(value)) {
                    (ColumnFit::Skip, _) => {}
                    (ColumnFit::Number { n, mean, m2, .. }, Cell::Number(v)) => {
                        // Welford's update: one pass, stable for large offsets.
                        *n += 1;
                        let v = f64::from(v);
                        let delta = v - *mean;
                        *mean += delta / *n as f64;
                        *m2 += delta * (v - *mean);
                    }
                    (ColumnFit::Number { missing, .. }, _) => *missing += 1,
                    (ColumnFit::Category { counts, .. }, Cell::Level(code)) => {
                        if let Some(c) = counts.get_mut(code as usize) {
                            *c += 1;
                        }
                    }
                    (ColumnFit::Category { numbers, .. }, Cell::Number(v)) => {
                        *numbers.entry(v.to_bits()).or_default() += 1;
                    }
                    (ColumnFit::Category { missing, .. }, Cell::Missing) => *missing += 1,
                }
            }
        }
    }

    pub fn finish(self) -> Encoding {
        let columns = self
            .columns
            .into_iter()
            .zip(self.stats)
            .map(|(column, stats)| {
                let how = match (stats, column.kind) {
                    (
                        ColumnFit::Number {
                            n,
                            mean,
                            m2,
                            missing,
                        },
                        _,
                    ) => {
                        let std = if n > 0 { (m2 / n as f64).sqrt() } else { 0.0 };
                        How::Standardize {
                            mean: mean as f32,
                            // A constant column keeps scale 1, as `Normalization` does.
                            inv_std: if std > 1e-7 { (1.0 / std) as f32 } else { 1.0 },
                            indicator: missing > 0,
                        }
                    }
                    (
                        ColumnFit::Category {
                            counts,
                            numbers,
                            missing,
                        },
                        ColumnKind::Category { levels },
                    ) => {
                        let mut seen: Vec<(u64, String)> = counts
                            .iter()
                            .zip(&levels)
                            .filter(|(&n, _)| n > 0)
                            .map(|(&n, level)| (n, level.clone()))
                            .collect();
                        let mut numeric: Vec<(u32, u64)> = numbers.into_iter().collect();
                        numeric.sort_unstable();
                        seen.extend(
                            numeric
                                .into_iter()
                                .map(|(bits, n)| (n, number_level(f32::from_bits(bits)))),
                        );
                        if missing > 0 {
                            seen.push((missing, EMPTY.to_owned()));
                        }
                        // Most frequent first; ties keep vocabulary order (a stable sort).
                        seen.sort_by_key(|s| std::cmp::Reverse(s.0));
                        seen.truncate(MAX_TOKENS);
                        How::OneHot {
                            vocabulary: levels,
                            kept: seen.into_iter().map(|(_, level)| level).collect(),
                        }
                    }
                    _ => How::Skip,
                };
                EncodedColumn {
                    name: column.name,
                    how,
                }
            })
            .collect();
        Encoding::new(columns, self.class_names)
    }
}

/// The widest encoding `columns` can have, before it is fitted: for memory estimates.
pub(crate) fn width_bound(columns: &[Column]) -> usize {
    columns
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Number => 2,
            // Every level (numeric ones included, which the vocabulary does not list) is
            // bounded by the kept count; one for empty cells, one out of vocabulary.
            ColumnKind::Category { .. } => MAX_TOKENS + 1,
            ColumnKind::Identifier => 0,
        })
        .sum()
}

/// Whether a cell is one a column of this kind can hold; the problem otherwise.
pub(crate) fn check_cell(kind: &ColumnKind, value: f32) -> Result<(), &'static str> {
    match (kind, cell::decode(value)) {
        (_, Cell::Missing) | (ColumnKind::Identifier, _) => Ok(()),
        (_, Cell::Number(v)) if !v.is_finite() => Err("is not a finite number"),
        (ColumnKind::Number, Cell::Level(_)) => Err("is text in a column of numbers"),
        (ColumnKind::Category { levels }, Cell::Level(code)) if code as usize >= levels.len() => {
            Err("is a level code outside the column's vocabulary")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        vec![
            Column {
                name: "age".into(),
                kind: ColumnKind::Number,
            },
            Column {
                name: "plan".into(),
                kind: ColumnKind::Category {
                    levels: vec!["basic".into(), "pro".into(), "gold".into()],
                },
            },
            Column {
                name: "id".into(),
                kind: ColumnKind::Identifier,
            },
        ]
    }

    /// Worked by hand: ages 10, 30 and one missing → mean 20, population std 10; plans
    /// pro ×2, basic ×1, gold never in training.
    #[test]
    fn fitted_on_the_given_rows_and_applied_to_cells() {
        let rows = [
            [10.0, cell::level(1), cell::level(0)],
            [30.0, cell::level(1), cell::level(1)],
            [cell::MISSING, cell::level(0), cell::level(2)],
        ];
        let mut fit = EncodingFit::new(&columns(), None);
        fit.add_rows(rows.iter().map(|r| &r[..]));
        let enc = fit.finish();
        // age + indicator, OOV + pro + basic, nothing for the id.
        assert_eq!(enc.width(), 5);
        let encode = |row: [f32; 3]| {
            let mut out = vec![f32::NAN; 5];
            enc.forward_row(&row, &mut out);
            out
        };
        assert_eq!(
            encode([40.0, cell::level(1), 0.0]),
            [2.0, 0.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(
            encode([cell::MISSING, cell::level(0), 0.0]),
            [0.0, 1.0, 0.0, 0.0, 1.0]
        );
        // A level of the vocabulary never seen in training, a text first seen now, and an
        // empty cell (none in training): all out of vocabulary.
        for plan in [cell::level(2), cell::UNSEEN, cell::MISSING] {
            assert_eq!(encode([20.0, plan, 0.0]), [0.0, 0.0, 1.0, 0.0, 0.0]);
        }
        let json = serde_json::to_string(&enc).unwrap();
        let back: Encoding = serde_json::from_str::<Encoding>(&json).unwrap().restored();
        assert_eq!(back, enc);
    }

    #[test]
    fn only_the_most_frequent_levels_are_kept_and_numbers_are_levels_by_value() {
        let levels: Vec<String> = (0..150).map(|i| format!("l{i}")).collect();
        let column = Column {
            name: "c".into(),
            kind: ColumnKind::Category { levels },
        };
        let mut fit = EncodingFit::new(std::slice::from_ref(&column), None);
        // Level i appears i + 1 times; the number 3 appears 1000 times.
        let mut rows: Vec<[f32; 1]> = (0..150u32)
            .flat_map(|i| std::iter::repeat_n([cell::level(i)], i as usize + 1))
            .collect();
        rows.extend(std::iter::repeat_n([3.0], 1000));
        fit.add_rows(rows.iter().map(|r| &r[..]));
        let enc = fit.finish();
        let How::OneHot { kept, .. } = &enc.columns[0].how else {
            panic!()
        };
        assert_eq!(kept.len(), MAX_TOKENS);
        assert_eq!((kept[0].as_str(), kept[1].as_str()), ("3", "l149"));
        assert_eq!(kept.last().map(String::as_str), Some("l51"));
        let mut out = vec![f32::NAN; enc.width()];
        enc.forward_row(&[3.0], &mut out);
        assert_eq!(
            (out[1], out.iter().sum::<f32>()),
            (1.0, 1.0),
            "3 is the top level"
        );
        let cell_of = |text| enc.cell_of(0, RawValue::Text(text)).map(f32::to_bits);
        assert_eq!(cell_of("3"), Ok(3.0f32.to_bits()));
        assert_eq!(cell_of("l7"), Ok(cell::level(7).to_bits()));
        assert_eq!(cell_of("new"), Ok(cell::UNSEEN.to_bits()));
        assert_eq!(cell_of("NA"), Ok(cell::MISSING.to_bits()));
    }
}
