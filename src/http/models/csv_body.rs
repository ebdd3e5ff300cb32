//! A CSV body in the model's terms: columns matched by header name in any order, extras
//! ignored, each field the model reads turned into a cell as a JSON text value would be
//! (so a CSV row and the same row as a raw object predict alike), after trimming the
//! spaces around it as the upload does. Predict and evaluate both read CSV bodies here.

use ndarray::Array2;

use crate::http::error::{Error, Result};
use crate::ingest::IngestError;
use crate::nn::{cell, Model, RawValue};

/// The rows of a CSV body: cells, labels when targets were asked for, and the text of the
/// kept columns.
pub(super) struct CsvRows {
    pub x: Array2<f32>,
    /// One row of labels per row of `x`; no columns when no target was asked for.
    pub y: Array2<f32>,
    kept: Vec<String>,
    keep: usize,
}

impl CsvRows {
    /// The text of kept column `k` in row `row`, as the body had it.
    pub fn kept(&self, row: usize, k: usize) -> &str {
        &self.kept[row * self.keep + k]
    }
}

/// What to read from a CSV body besides the model's inputs.
pub(super) struct Wanted<'a> {
    /// Label columns: a row whose label is missing is left out, as in training.
    pub targets: &'a [String],
    /// Columns copied as text into the answer.
    pub keep: &'a [String],
}

/// Reads `body`. A column the model reads that the header lacks is refused rather than
/// taken as all missing: a whole column absent is far more often a renamed or forgotten
/// column than a deliberate one (a client meaning "missing" sends the column empty), and
/// predictions from it would be silently wrong. Columns the model leaves out (an
/// identifier) may be absent.
pub(super) fn read(
    body: &[u8],
    model: &Model,
    names: &[&str],
    wanted: &Wanted<'_>,
) -> Result<CsvRows> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| IngestError::Csv(e.to_string()))?
        .iter()
        .map(|name| name.trim().to_owned())
        .collect();
    if header.is_empty() || header == [""] {
        return Err(IngestError::Empty.into());
    }
    for (i, name) in header.iter().enumerate() {
        if let Some(first) = header[..i].iter().position(|n| n == name) {
            return Err(IngestError::DuplicateColumn {
                name: name.clone(),
                first: first + 1,
                second: i + 1,
            }
            .into());
        }
    }
    let at = |name: &str| header.iter().position(|h| h == name);
    let inputs: Vec<Option<usize>> = names.iter().map(|name| at(name)).collect();
    let absent: Vec<&str> = names
        .iter()
        .zip(&inputs)
        .enumerate()
        .filter(|(c, (_, at))| at.is_none() && model.reads_input(*c))
        .map(|(_, (name, _))| *name)
        .collect();
    if !absent.is_empty() {
        return Err(Error::Unprocessable(format!(
            "the CSV has no column {absent:?}, which the model reads; its header is {header:?}"
        )));
    }
    let find = |role: &str, wanted: &[String]| -> Result<Vec<usize>> {
        wanted
            .iter()
            .map(|name| {
                at(name).ok_or_else(|| {
                    Error::Unprocessable(format!(
                        "{role} names the column {name:?}, which the CSV does not have; its \
                         header is {header:?}"
                    ))
                })
            })
            .collect()
    };
    let targets = find("the model's target", wanted.targets)?;
    let keep = find("keep", wanted.keep)?;

    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut kept = Vec::new();
    let mut labels = Vec::with_capacity(targets.len());
    for record in reader.records() {
        let record = record.map_err(|e| IngestError::Csv(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(IngestError::Ragged {
                line,
                expected: header.len(),
                got: record.len(),
            }
            .into());
        }
        labels.clear();
        for (&t, name) in targets.iter().zip(wanted.targets) {
            let label = model
                .label_of(RawValue::Text(record[t].trim_ascii()))
                .map_err(|e| Error::Unprocessable(format!("line {line}, column {name:?}: {e}")))?;
            labels.push(label);
        }
        for (c, input) in inputs.iter().enumerate() {
            let value = match input {
                Some(i) => model
                    .cell_of(c, RawValue::Text(record[*i].trim_ascii()))
                    .map_err(|e| {
                        Error::Unprocessable(format!("line {line}, column {:?} {e}", names[c]))
                    })?,
                None => cell::MISSING,
            };
            x.push(value);
        }
        if labels.iter().any(Option::is_none) {
            x.truncate(x.len() - names.len());
            continue;
        }
        y.extend(labels.iter().flatten());
        kept.extend(keep.iter().map(|&k| record[k].to_owned()));
    }
    let rows = x.len() / names.len().max(1);
    if rows == 0 {
        return Err(Error::Unprocessable(
            if targets.is_empty() {
                "the CSV has no rows"
            } else {
                "no row of the CSV has a label"
            }
            .into(),
        ));
    }
    Ok(CsvRows {
        x: Array2::from_shape_vec((rows, names.len()), x).expect("whole rows"),
        y: Array2::from_shape_vec((rows, targets.len()), y).expect("whole rows"),
        kept,
        keep: keep.len(),
    })
}
