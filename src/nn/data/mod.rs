//! What the engine sees of a dataset: its rows, or just its shape.

pub(in crate::nn) mod batch;
pub mod cell;
pub(in crate::nn) mod split;
pub(in crate::nn) mod stream;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::layers::encoding::check_cell;
use crate::nn::spec::LossKind;

/// Rows in memory: `x` is [rows, features], `y` is [rows, targets]
/// (class indices stored as f32 for sparse labels).
#[derive(Clone, Copy, Debug)]
pub struct Samples<'a> {
    pub x: ArrayView2<'a, f32>,
    pub y: ArrayView2<'a, f32>,
}

impl<'a> Samples<'a> {
    pub fn new(x: ArrayView2<'a, f32>, y: ArrayView2<'a, f32>) -> Self {
        Samples { x, y }
    }

    pub fn rows(&self) -> usize {
        self.x.nrows()
    }
}

/// What the engine needs to know about a dataset to validate a spec without its rows.
/// The service computes it once at upload and stores it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct DataShape {
    /// Labelled rows, before any validation split.
    pub rows: usize,
    pub features: usize,
    pub targets: usize,
    /// Per target column: min, max, and whether every value is an integer.
    pub target_min: Vec<f64>,
    pub target_max: Vec<f64>,
    pub target_integral: Vec<bool>,
    /// One per feature column, as typed at upload (empty for rows without column names).
    /// When some column is not complete numbers, or the job configures its columns, rows
    /// are cells (`cell`) and the engine encodes them before the first layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<Column>,
    /// The labels of a text target column, in the order of its class indices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// The texts the upload read as missing, when not the defaults
    /// ([`cell::MISSING_MARKERS`]): a model reads its clients' values the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_markers: Option<Vec<String>>,
}

/// A feature column as the upload typed it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// Whether some stored cell of it is missing.
    #[serde(default)]
    pub has_missing: bool,
}

impl Column {
    /// Whether its cells need the model's encoding even without a job asking for one:
    /// anything but complete numbers.
    pub(crate) fn is_typed(&self) -> bool {
        self.kind != ColumnKind::Number || self.has_missing
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers, some cells possibly missing.
    Number,
    /// Text levels stored as codes into `levels`; the column's cells may also hold numbers,
    /// which are levels by their value (a `"3+"` among counts).
    Category { levels: Vec<String> },
    /// Every value a distinct text (an id, a name): left out of training unless a job
    /// names it. `levels` is empty when there were too many for the upload to keep.
    Identifier {
        #[serde(default)]
        levels: Vec<String>,
    },
}

impl DataShape {
    /// Summarise labelled rows (one pass over `y`).
    pub fn of(samples: &Samples<'_>) -> DataShape {
        let targets = samples.y.ncols();
        let mut min = vec![f64::INFINITY; targets];
        let mut max = vec![f64::NEG_INFINITY; targets];
        let mut integral = vec![true; targets];
        for row in samples.y.rows() {
            for (j, &v) in row.iter().enumerate() {
                let v = f64::from(v);
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
                integral[j] &= v.fract() == 0.0;
            }
        }
        DataShape {
            rows: samples.rows(),
            features: samples.x.ncols(),
            targets,
            target_min: min,
            target_max: max,
            target_integral: integral,
            columns: Vec::new(),
            class_names: None,
            missing_markers: None,
        }
    }
}

/// The first (row, column) holding NaN or ±∞.
pub(crate) fn first_non_finite(x: ArrayView2<'_, f32>) -> Option<(usize, usize)> {
    // The usual answer is "none": a branch-free pass that vectorises says so at a fraction of
    // the indexed walk's cost, which then only runs to locate a bad value.
    if let Some(values) = x.as_slice() {
        if values
            .chunks(4096)
            .all(|chunk| chunk.iter().fold(true, |ok, v| ok & v.is_finite()))
        {
            return None;
        }
    }
    x.indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(at, _)| at)
}

/// The first feature cell that its column cannot hold, as a message naming row (counted
/// from `first_row`) and column: any non-finite value for plain numbers, or a cell of the
/// wrong kind for typed columns.
pub(crate) fn first_bad_feature(
    columns: &[Column],
    x: ArrayView2<'_, f32>,
    first_row: usize,
) -> Option<String> {
    if columns.is_empty() {
        return first_non_finite(x).map(|(r, c)| {
            format!(
                "feature row {}, column {c} is not a finite number",
                r + first_row
            )
        });
    }
    for (r, row) in x.rows().into_iter().enumerate() {
        for ((c, column), &value) in columns.iter().enumerate().zip(row) {
            if let Err(problem) = check_cell(&column.kind, value) {
                return Some(format!(
                    "feature row {}, column {c} ({:?}) {problem}",
                    r + first_row,
                    column.name
                ));
            }
        }
    }
    None
}

/// Do these targets fit a model with `outputs` units trained with `loss`?
pub(crate) fn check_targets(
    loss: LossKind,
    outputs: usize,
    y: ArrayView2<'_, f32>,
) -> Result<(), String> {
    check_targets_from(loss, outputs, y, 0)
}

/// `check_targets` for rows that start at row `first` of the dataset (a streamed chunk),
/// so that messages name the same row as for the whole dataset in memory.
pub(crate) fn check_targets_from(
    loss: LossKind,
    outputs: usize,
    y: ArrayView2<'_, f32>,
    first: usize,
) -> Result<(), String> {
    let sparse = loss == LossKind::SparseCategoricalCrossentropy;
    let width = if sparse { 1 } else { outputs };
    if y.ncols() != width {
        return Err(format!(
            "expected {width} target columns, got {}",
            y.ncols()
        ));
    }
    if let Some((r, c)) = first_non_finite(y) {
        let r = r + first;
        return Err(format!("target row {r}, column {c} is not a finite number"));
    }
    let bad = |r: usize, c: usize, v: f32, what: &str| {
        let r = r + first;
        Err(format!("target row {r}, column {c} is {v}, {what}"))
    };
    for ((r, c), &v) in y.indexed_iter() {
        match loss {
            LossKind::SparseCategoricalCrossentropy
                if v.fract() != 0.0 || v < 0.0 || v >= outputs as f32 =>
            {
                return bad(r, c, v, &format!("not a class index in [0, {outputs})"));
            }
            LossKind::BinaryCrossentropy | LossKind::CategoricalCrossentropy
                if !(0.0..=1.0).contains(&v) =>
            {
                return bad(r, c, v, "outside [0, 1]");
            }
            _ => {}
        }
    }
    Ok(())
}
