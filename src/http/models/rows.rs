//! Rows a client sends as JSON, in the model's terms: each row an object keyed by column
//! name (a key left out is a missing value) or an array in column order, values numbers,
//! text or `null`; labels numbers, class names or `null`. Predict and evaluate read them
//! alike.

use ndarray::Array2;
use serde_json::Value;

use crate::http::error::{Error, Result};
use crate::nn::{Model, RawValue};
use crate::serving::ServedModel;

/// The model's input columns by name, in input order.
pub(in crate::http) fn input_names(served: &ServedModel) -> Vec<&str> {
    served
        .model
        .input_names()
        .unwrap_or_else(|| served.feature_names.iter().map(String::as_str).collect())
}

/// The cells of `rows` (named `field` in messages: `instances`, `features`).
pub(in crate::http) fn cells(
    model: &Model,
    names: &[&str],
    rows: &[Value],
    field: &str,
) -> Result<Array2<f32>> {
    if rows.is_empty() {
        return Err(Error::Unprocessable(format!(
            "{field} is empty: there are no rows"
        )));
    }
    let width = names.len();
    let mut x = Array2::zeros((rows.len(), width));
    for (r, instance) in rows.iter().enumerate() {
        let mut row = x.row_mut(r);
        let cell = |c: usize, v: &Value| -> Result<f32> {
            let raw = raw_value(v).ok_or_else(|| {
                Error::Unprocessable(format!(
                    "{field}[{r}].{}: expected a number, a text or null, got {v}",
                    names[c]
                ))
            })?;
            model.cell_of(c, raw).map_err(|e| {
                Error::Unprocessable(format!("{field}[{r}] column {:?} {e}", names[c]))
            })
        };
        match instance {
            Value::Object(fields) => {
                if let Some(unknown) = fields.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(Error::Unprocessable(format!(
                        "{field}[{r}] has the unknown column {unknown:?}; the model's columns \
                         are {names:?}"
                    )));
                }
                for (c, name) in names.iter().enumerate() {
                    row[c] = cell(c, fields.get(*name).unwrap_or(&Value::Null))?;
                }
            }
            Value::Array(values) if values.len() == width => {
                for (c, v) in values.iter().enumerate() {
                    row[c] = cell(c, v)?;
                }
            }
            Value::Array(values) => {
                return Err(Error::Unprocessable(format!(
                    "{field}[{r}] has {} values; the model takes {width} columns: {names:?}",
                    values.len()
                )))
            }
            other => {
                return Err(Error::Unprocessable(format!(
                    "{field}[{r}] must be an object keyed by column name or an array, got {other}"
                )))
            }
        }
    }
    Ok(x)
}

/// The target cells of `labels`, one value per row for a single target or an array per
/// row; `None` for a row with a missing label, which evaluation leaves out as training did.
pub(super) fn labels(
    model: &Model,
    targets: &[String],
    labels: &[Value],
) -> Result<Vec<Option<Vec<f32>>>> {
    let label = |r: usize, t: usize, v: &Value| -> Result<Option<f32>> {
        let raw = raw_value(v).ok_or_else(|| {
            Error::Unprocessable(format!(
                "targets[{r}]: expected a number, a class name or null, got {v}"
            ))
        })?;
        model
            .label_of(raw)
            .map_err(|e| Error::Unprocessable(format!("targets[{r}] ({:?}): {e}", targets[t])))
    };
    labels
        .iter()
        .enumerate()
        .map(|(r, v)| {
            let row = match (v, targets.len()) {
                (Value::Array(values), n) if values.len() == n => values
                    .iter()
                    .enumerate()
                    .map(|(t, v)| label(r, t, v))
                    .collect::<Result<Vec<_>>>()?,
                (Value::Array(values), n) => {
                    return Err(Error::Unprocessable(format!(
                        "targets[{r}] has {} values, the model has {n} targets: {targets:?}",
                        values.len()
                    )))
                }
                (v, 1) => vec![label(r, 0, v)?],
                (_, n) => {
                    return Err(Error::Unprocessable(format!(
                        "targets[{r}] must be an array of {n} labels, one per target: {targets:?}"
                    )))
                }
            };
            Ok(row.into_iter().collect::<Option<Vec<f32>>>())
        })
        .collect()
}

fn raw_value(v: &Value) -> Option<RawValue<'_>> {
    match v {
        Value::Null => Some(RawValue::Missing),
        Value::Number(n) => Some(RawValue::Number(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(t) => Some(RawValue::Text(t)),
        _ => None,
    }
}
