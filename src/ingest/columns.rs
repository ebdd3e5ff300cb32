//! Typing columns as they are parsed: a field is a number, a missing marker, or text, which
//! becomes a level of the column's vocabulary. Blocks parsed on different threads intern
//! their texts in a vocabulary of their own ([`BlockLevels`]); [`Columns::absorb`] maps those
//! codes to the upload's in block order, so codes are the order in which levels first
//! appear in the file.

use std::collections::{HashMap, HashSet};

use super::layout::Layout;
use super::IngestError;
use crate::parse::csv_number::Fault;
use crate::store::chunk_codec::cell::{self, Cell, MAX_LEVELS};
use crate::store::{ColumnReport, ColumnType};

/// pandas' and R's missing markers (an empty field is the first).
pub use crate::store::chunk_codec::cell::MISSING_MARKERS as DEFAULT_NA;

/// What an upload's options say about fields: the missing markers, and the columns whose
/// type is fixed (`?types=`).
#[derive(Debug, Clone)]
pub struct FieldRules {
    /// A set: a client may send thousands, each looked up for every text field.
    pub na_values: HashSet<Vec<u8>>,
    /// Per CSV column.
    pub forced: Vec<Option<ColumnType>>,
    /// Whether any column is typed `category`, which the fast path asks once per line
    /// rather than once per field.
    pub any_category: bool,
}

impl FieldRules {
    pub fn new(na_values: HashSet<Vec<u8>>, forced: Vec<Option<ColumnType>>) -> FieldRules {
        let any_category = forced.contains(&Some(ColumnType::Category));
        FieldRules {
            na_values,
            forced,
            any_category,
        }
    }

    pub fn is_category(&self, column: usize) -> bool {
        self.forced[column] == Some(ColumnType::Category)
    }

    fn is_na(&self, field: &[u8]) -> bool {
        self.na_values.contains(field)
    }
}

/// Why a field cannot be stored, beyond the number faults.
pub enum FieldFault {
    Number(Fault),
    TooManyLevels,
}

/// The texts one block interned, per CSV column, in local code order, with their counts.
#[derive(Default)]
pub struct BlockLevels {
    columns: Vec<LocalVocabulary>,
}

#[derive(Default)]
struct LocalVocabulary {
    codes: HashMap<Box<[u8]>, u32>,
    texts: Vec<Box<[u8]>>,
    counts: Vec<u64>,
}

impl BlockLevels {
    pub fn new(columns: usize) -> BlockLevels {
        BlockLevels {
            columns: (0..columns).map(|_| LocalVocabulary::default()).collect(),
        }
    }

    fn intern(&mut self, column: usize, text: &[u8]) -> Result<f32, FieldFault> {
        let v = &mut self.columns[column];
        let code = match v.codes.get(text) {
            Some(&code) => code,
            None => {
                let code = v.texts.len() as u32;
                if code >= MAX_LEVELS {
                    return Err(FieldFault::TooManyLevels);
                }
                v.codes.insert(text.into(), code);
                v.texts.push(text.into());
                v.counts.push(0);
                code
            }
        };
        v.counts[code as usize] += 1;
        Ok(cell::level(code))
    }

    fn is_empty(&self) -> bool {
        self.columns.iter().all(|c| c.texts.is_empty())
    }
}

/// The cell of a field that did not parse as a number (`fault` says why), or of any field
/// of a column typed `category`.
pub fn text_cell(
    rules: &FieldRules,
    levels: &mut BlockLevels,
    column: usize,
    field: &[u8],
    fault: Option<Fault>,
) -> Result<f32, FieldFault> {
    let field = field.trim_ascii();
    if rules.is_na(field) {
        return Ok(cell::MISSING);
    }
    match (rules.forced[column], fault) {
        (Some(ColumnType::Number), Some(fault)) => Err(FieldFault::Number(fault)),
        // Infinities and out-of-range numbers are not text that happens to look odd.
        (None, Some(Fault::NotFinite)) => Err(FieldFault::Number(Fault::NotFinite)),
        _ => levels.intern(column, field),
    }
}

/// Number statistics of stored slots, gathered per block.
#[derive(Clone, Copy, Debug)]
pub struct SlotStats {
    /// NaN cells: missing values and levels (the vocabulary counts the levels).
    nans: u64,
    numbers: u64,
    min: f64,
    max: f64,
    sum: f64,
    sum_sq: f64,
}

impl Default for SlotStats {
    fn default() -> Self {
        SlotStats {
            nans: 0,
            numbers: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }
}

impl SlotStats {
    /// The statistics of `values` (rows of `width` cells), per slot. Branch-free over
    /// separate arrays, so the loop vectorises: it runs over every cell of every upload.
    pub fn of_rows(values: &[f32], width: usize) -> Vec<SlotStats> {
        let mut count = vec![0u32; width];
        let mut min = vec![f32::INFINITY; width];
        let mut max = vec![f32::NEG_INFINITY; width];
        let (mut sum, mut sum_sq) = (vec![0f64; width], vec![0f64; width]);
        for row in values.chunks_exact(width) {
            let lanes = row
                .iter()
                .zip(&mut count)
                .zip(min.iter_mut().zip(&mut max))
                .zip(sum.iter_mut().zip(&mut sum_sq));
            for (((&v, n), (lo, hi)), (s, q)) in lanes {
                let number = !v.is_nan();
                let x = if number { v } else { 0.0 };
                *n += u32::from(number);
                // `f32::min` and `max` ignore a NaN operand.
                *lo = lo.min(v);
                *hi = hi.max(v);
                let x = f64::from(x);
                *s += x;
                *q += x * x;
            }
        }
        let rows = (values.len() / width.max(1)) as u64;
        (0..width)
            .map(|j| SlotStats {
                nans: rows - u64::from(count[j]),
                numbers: u64::from(count[j]),
                min: f64::from(min[j]),
                max: f64::from(max[j]),
                sum: sum[j],
                sum_sq: sum_sq[j],
            })
            .collect()
    }

    fn merge(&mut self, o: &SlotStats) {
        self.nans += o.nans;
        self.numbers += o.numbers;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
    }
}

/// The upload's vocabularies and statistics, in stored slot order.
pub struct Columns {
    codes: Vec<HashMap<Box<[u8]>, u32>>,
    levels: Vec<Vec<String>>,
    counts: Vec<Vec<u64>>,
    stats: Vec<SlotStats>,
}

impl Columns {
    pub fn new(width: usize) -> Columns {
        Columns {
            codes: vec![HashMap::new(); width],
            levels: vec![Vec::new(); width],
            counts: vec![Vec::new(); width],
            stats: vec![SlotStats::default(); width],
        }
    }

    /// Takes in a parsed block: its level cells re-coded into the upload's vocabularies
    /// (targets' levels become plain class indices), its statistics merged.
    pub fn absorb(
        &mut self,
        layout: &Layout,
        values: &mut [f32],
        levels: BlockLevels,
        stats: &[SlotStats],
    ) -> Result<(), IngestError> {
        self.add_stats(stats);
        if levels.is_empty() {
            return Ok(());
        }
        let width = layout.columns.len();
        let features = layout.features.len();
        for (column, local) in levels.columns.into_iter().enumerate() {
            if local.texts.is_empty() {
                continue;
            }
            let slot = layout.slot[column];
            let mut global = Vec::with_capacity(local.texts.len());
            for (text, count) in local.texts.into_iter().zip(local.counts) {
                let codes = &mut self.codes[slot];
                let next = codes.len() as u32;
                if next >= MAX_LEVELS {
                    return Err(IngestError::Columns(format!(
                        "column {:?} has more than {MAX_LEVELS} distinct values",
                        layout.columns[column]
                    )));
                }
                let code = *codes.entry(text.clone()).or_insert_with(|| {
                    self.levels[slot].push(String::from_utf8_lossy(&text).into_owned());
                    self.counts[slot].push(0);
                    next
                });
                self.counts[slot][code as usize] += count;
                global.push(code);
            }
            let is_target = slot >= features;
            for row in values.chunks_exact_mut(width) {
                if let Cell::Level(local) = cell::decode(row[slot]) {
                    let code = global[local as usize];
                    row[slot] = if is_target {
                        code as f32
                    } else {
                        cell::level(code)
                    };
                }
            }
        }
        Ok(())
    }

    /// Merges a block's statistics (a block of numbers only needs nothing else).
    pub fn add_stats(&mut self, stats: &[SlotStats]) {
        for (s, b) in self.stats.iter_mut().zip(stats) {
            s.merge(b);
        }
    }

    /// The report of every column in stored order; errors for a target that mixes numbers
    /// and text labels.
    pub fn finish(
        self,
        names: Vec<String>,
        features: usize,
    ) -> Result<Vec<ColumnReport>, IngestError> {
        let mut reports = Vec::with_capacity(names.len());
        let parts = names
            .into_iter()
            .zip(self.levels)
            .zip(self.counts)
            .zip(self.stats);
        for (slot, (((name, levels), level_counts), s)) in parts.enumerate() {
            let texts: u64 = level_counts.iter().sum();
            let kind = if levels.is_empty() {
                ColumnType::Number
            } else if s.numbers == 0 && texts > 1 && level_counts.iter().all(|&n| n == 1) {
                ColumnType::Identifier
            } else {
                ColumnType::Category
            };
            let is_target = slot >= features;
            if is_target && kind != ColumnType::Number && s.numbers > 0 {
                return Err(IngestError::Columns(format!(
                    "target column {name:?} mixes numbers and text labels: class labels must \
                     be all numbers or all text"
                )));
            }
            let distinct = levels.len();
            let numbers = s.numbers;
            let n = numbers as f64;
            let mean = (numbers > 0).then(|| s.sum / n);
            reports.push(ColumnReport {
                name,
                kind,
                missing: s.nans - texts,
                numbers,
                min: (numbers > 0).then_some(s.min),
                max: (numbers > 0).then_some(s.max),
                mean,
                std: mean.map(|m| (s.sum_sq / n - m * m).max(0.0).sqrt()),
                distinct,
                levels,
                level_counts,
            });
        }
        Ok(reports)
    }
}
