//! Datasets sent as JSON arrays.

use serde::Deserialize;
use utoipa::ToSchema;

use super::columns::{Columns, SlotStats};
use super::{Chunk, Chunker, IngestError};
use crate::store::Table;

/// A dataset as JSON: one feature row per sample and its target(s).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonDataset {
    /// Defaults to "unnamed".
    pub name: Option<String>,
    /// One row of feature values per sample.
    pub features: Vec<Vec<f32>>,
    pub targets: JsonTargets,
    /// Defaults to x0, x1, ….
    pub feature_names: Option<Vec<String>>,
    /// Defaults to y (one target) or y0, y1, ….
    pub target_names: Option<Vec<String>>,
}

/// One value per sample, or one row of values per sample.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JsonTargets {
    Column(Vec<f32>),
    Rows(Vec<Vec<f32>>),
}

const STATS_BLOCK_ROWS: usize = 4096;

/// Checks a JSON dataset and hands its rows to `emit` in chunks.
pub fn parse_json(
    body: &JsonDataset,
    chunk_bytes: usize,
    emit: impl FnMut(Chunk) -> Result<(), IngestError>,
) -> Result<Table, IngestError> {
    let rows = body.features.len();
    let features = body.features.first().map_or(0, Vec::len);
    let targets = match &body.targets {
        JsonTargets::Column(_) => 1,
        JsonTargets::Rows(rows) => rows.first().map_or(0, Vec::len),
    };
    let target_rows = match &body.targets {
        JsonTargets::Column(values) => values.len(),
        JsonTargets::Rows(rows) => rows.len(),
    };
    if rows == 0 {
        return Err(IngestError::NoRows);
    }
    if features == 0 || targets == 0 {
        return Err(IngestError::Invalid(
            "features and targets need at least one value per row".into(),
        ));
    }
    if target_rows != rows {
        return Err(IngestError::Invalid(format!(
            "features has {rows} rows but targets has {target_rows}"
        )));
    }
    let feature_names = names(&body.feature_names, "feature_names", "x", features)?;
    let target_names = names(&body.target_names, "target_names", "y", targets)?;
    let mut columns = feature_names.clone();
    columns.extend(target_names.iter().cloned());
    for (i, name) in columns.iter().enumerate() {
        if columns[..i].contains(name) {
            return Err(IngestError::Invalid(format!(
                "column name {name:?} is used twice"
            )));
        }
    }

    let mut chunker = Chunker::new(features, targets, chunk_bytes, emit);
    let mut summary = Columns::new(features + targets);
    // Rows summarised together, so the statistics pass vectorises over a block.
    let mut block = Vec::with_capacity(STATS_BLOCK_ROWS * (features + targets));
    let mut row = Vec::with_capacity(features + targets);
    for (i, x) in body.features.iter().enumerate() {
        if x.len() != features {
            return Err(IngestError::Invalid(format!(
                "features[{i}] has {} values, expected {features} like features[0]",
                x.len()
            )));
        }
        row.clear();
        row.extend_from_slice(x);
        match &body.targets {
            JsonTargets::Column(values) => row.push(values[i]),
            JsonTargets::Rows(rows) if rows[i].len() == targets => row.extend_from_slice(&rows[i]),
            JsonTargets::Rows(rows) => {
                return Err(IngestError::Invalid(format!(
                    "targets[{i}] has {} values, expected {targets} like targets[0]",
                    rows[i].len()
                )))
            }
        }
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            let (field, index) = if j < features {
                ("features", j)
            } else {
                ("targets", j - features)
            };
            return Err(IngestError::Invalid(format!(
                "{field}[{i}][{index}] is outside the f32 range"
            )));
        }
        block.extend_from_slice(&row);
        if block.len() >= STATS_BLOCK_ROWS * row.len() {
            summary.add_stats(&SlotStats::of_rows(&block, row.len()));
            block.clear();
        }
        chunker.push_rows(&row)?;
    }
    summary.add_stats(&SlotStats::of_rows(&block, features + targets));
    let chunk_rows = chunker.chunk_rows();
    let (rows, unlabelled_rows, target_stats) = chunker.finish()?;
    let column_reports = summary.finish(columns.clone(), features)?;
    Ok(Table {
        rows,
        column_reports,
        unlabelled_rows,
        na_values: None,
        columns,
        feature_names,
        target_names,
        target_stats,
        chunk_rows,
    })
}

fn names(
    given: &Option<Vec<String>>,
    field: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<String>, IngestError> {
    match given {
        Some(names) if names.len() != count => Err(IngestError::Invalid(format!(
            "{field} has {} names for {count} columns",
            names.len()
        ))),
        Some(names) => match names.iter().position(|n| n.trim().is_empty()) {
            Some(i) => Err(IngestError::Invalid(format!("{field}[{i}] is empty"))),
            None => Ok(names.clone()),
        },
        None if count == 1 && prefix == "y" => Ok(vec!["y".into()]),
        None => Ok((0..count).map(|i| format!("{prefix}{i}")).collect()),
    }
}
