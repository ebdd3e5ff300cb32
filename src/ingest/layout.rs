//! Where each CSV column goes in a stored row, decided from the header and the options.

use std::collections::HashMap;

use super::columns::{FieldFault, FieldRules, DEFAULT_NA};
use super::{excerpt, CsvOptions, IngestError};
use crate::parse::csv_number::{parse_value, Fault};

/// Where each CSV column goes in a stored row (features first, then targets).
pub struct Layout {
    pub columns: Vec<String>,
    pub features: Vec<usize>,
    pub targets: Vec<usize>,
    /// Position in the stored row of each CSV column.
    pub slot: Vec<usize>,
    pub rules: FieldRules,
}

impl Layout {
    pub fn new(columns: Vec<String>, options: &CsvOptions) -> Result<Self, IngestError> {
        if columns.is_empty() || columns == [""] {
            return Err(IngestError::Empty);
        }
        let mut index = HashMap::new();
        for (i, name) in columns.iter().enumerate() {
            if name.is_empty() {
                return Err(IngestError::EmptyColumnName { column: i + 1 });
            }
            if let Some(first) = index.insert(name.as_str(), i) {
                return Err(IngestError::DuplicateColumn {
                    name: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
        if columns
            .iter()
            .all(|name| parse_value(name.as_bytes()).is_ok())
        {
            return Err(IngestError::HeaderIsNumeric);
        }
        let mut targets = Vec::new();
        for name in &options.targets {
            let &i = index
                .get(name.as_str())
                .ok_or_else(|| IngestError::UnknownTarget {
                    name: name.clone(),
                    columns: columns.clone(),
                })?;
            if targets.contains(&i) {
                return Err(IngestError::DuplicateTarget(name.clone()));
            }
            targets.push(i);
        }
        if targets.is_empty() {
            targets.push(columns.len() - 1);
        }
        let mut features: Vec<usize> = (0..columns.len())
            .filter(|i| !targets.contains(i))
            .collect();
        if features.is_empty() {
            return Err(IngestError::NoFeatures);
        }
        if let Some(order) = &options.feature_order {
            let present: Vec<&str> = features.iter().map(|&i| columns[i].as_str()).collect();
            let mut wanted: Vec<&str> = order.iter().map(String::as_str).collect();
            let mut sorted = present.clone();
            sorted.sort_unstable();
            wanted.sort_unstable();
            if sorted != wanted {
                return Err(IngestError::Columns(format!(
                    "the feature columns must be {order:?} (besides the targets), got {present:?}"
                )));
            }
            features = order.iter().map(|name| index[name.as_str()]).collect();
        }
        let mut forced = vec![None; columns.len()];
        for (name, kind) in &options.types {
            let &i = index
                .get(name.as_str())
                .ok_or_else(|| IngestError::UnknownTypedColumn {
                    name: name.clone(),
                    columns: columns.clone(),
                })?;
            forced[i] = Some(*kind);
        }
        let na_values = match &options.na_values {
            Some(list) => list.iter().map(|v| v.as_bytes().to_vec()).collect(),
            None => DEFAULT_NA.iter().map(|v| v.as_bytes().to_vec()).collect(),
        };
        let mut slot = vec![0; columns.len()];
        for (position, &column) in features.iter().chain(&targets).enumerate() {
            slot[column] = position;
        }
        Ok(Self {
            columns,
            features,
            targets,
            slot,
            rules: FieldRules::new(na_values, forced),
        })
    }

    pub fn names(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.columns[i].clone()).collect()
    }

    /// The error for a field that is not a storable value (`column` counts from 0).
    pub fn bad_value(
        &self,
        line: u64,
        column: usize,
        field: &[u8],
        fault: FieldFault,
    ) -> IngestError {
        let name = self.columns[column].clone();
        let value = excerpt(field);
        let fault = match fault {
            FieldFault::Number(fault) => fault,
            FieldFault::TooManyLevels => {
                return IngestError::Columns(format!(
                    "line {line}: column {name:?} has more distinct values than a column can hold"
                ))
            }
        };
        let column = column + 1;
        match fault {
            Fault::NotANumber => IngestError::NotANumber {
                line,
                column,
                name,
                value,
            },
            Fault::NotFinite => IngestError::NotFinite {
                line,
                column,
                name,
                value,
            },
        }
    }
}
