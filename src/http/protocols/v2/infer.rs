//! An inference request's tensors as the model's input cells, and its predictions as the
//! outputs the request asks for.

use ndarray::Array2;
use serde_json::{Map, Value};

use super::request::{InferRequest, Tensor, Values};
use crate::http::error::Error;
use crate::http::models::predict::Predictions;
use crate::http::models::rows;
use crate::http::models::Classes;
use crate::serving::ServedModel;

/// The cells of the request's rows: for a numeric model one `[rows, features]` tensor, or
/// one tensor per feature; for a model that encodes its columns one tensor per column,
/// read as `/predict` reads rows (a column left out is missing in every row).
pub(super) fn cells(served: &ServedModel, mut tensors: Vec<Tensor>) -> Result<Array2<f32>, Error> {
    if let Some(names) = served.model.input_names() {
        let columns = columns(&names, tensors)?;
        let rows = columns.first().map_or(0, |(_, values)| values.len());
        let rows: Vec<Value> = (0..rows)
            .map(|r| {
                Value::Object(
                    columns
                        .iter()
                        .map(|(name, values)| (name.clone(), values.json(r)))
                        .collect::<Map<_, _>>(),
                )
            })
            .collect();
        return rows::cells(&served.model, &names, &rows, "inputs");
    }
    let width = served.feature_names.len();
    let x = match tensors.as_mut_slice() {
        [one] if one.shape.len() == 2 => {
            if one.shape[1] != width {
                return Err(Error::BadRequest(format!(
                    "input {:?} has the shape {:?}; the model takes [rows, {width}] ({})",
                    one.name,
                    one.shape,
                    served.feature_names.join(", ")
                )));
            }
            let Values::Numbers(values) = &mut one.values else {
                return Err(Error::BadRequest(format!(
                    "input {:?} is BYTES; the model's features are numbers (FP32)",
                    one.name
                )));
            };
            Array2::from_shape_vec((one.shape[0], width), std::mem::take(values))
                .expect("the request checked the shape")
        }
        _ => {
            let names: Vec<&str> = served.feature_names.iter().map(String::as_str).collect();
            let columns = columns(&names, tensors)?;
            let rows = columns.first().map_or(0, |(_, values)| values.len());
            let mut x = Array2::zeros((rows, width));
            for (name, values) in &columns {
                let c = served.feature_index[name];
                let Values::Numbers(values) = values else {
                    return Err(Error::BadRequest(format!(
                        "input {name:?} is BYTES; the model's features are numbers (FP32)"
                    )));
                };
                x.column_mut(c).assign(&ndarray::ArrayView1::from(values));
            }
            if let Some(missing) = names.iter().find(|n| !columns.iter().any(|(c, _)| c == *n)) {
                return Err(Error::BadRequest(format!(
                    "the request lacks the input {missing:?}; the model takes one [rows, \
                     {width}] tensor, or one tensor per feature: {names:?}"
                )));
            }
            x
        }
    };
    if x.nrows() == 0 {
        return Err(Error::BadRequest("the request has no rows".into()));
    }
    if let Some((at, value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::BadRequest(format!(
            "row {}, feature {:?} is {value}, not a finite number",
            at / width,
            served.feature_names[at % width]
        )));
    }
    Ok(x)
}

/// One-column tensors (`[rows]` or `[rows, 1]`) by column name, all of one length, each
/// named by one of `names`.
fn columns(names: &[&str], tensors: Vec<Tensor>) -> Result<Vec<(String, Values)>, Error> {
    let mut columns: Vec<(String, Values)> = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        if !names.contains(&tensor.name.as_str()) {
            return Err(Error::BadRequest(format!(
                "the input {:?} is not one of the model's columns {names:?}",
                tensor.name
            )));
        }
        if columns.iter().any(|(name, _)| *name == tensor.name) {
            return Err(Error::BadRequest(format!(
                "the input {:?} is given twice",
                tensor.name
            )));
        }
        let rows = match tensor.shape.as_slice() {
            [rows] | [rows, 1] => *rows,
            shape => {
                return Err(Error::BadRequest(format!(
                    "input {:?} has the shape {shape:?}; a column is [rows] or [rows, 1]",
                    tensor.name
                )))
            }
        };
        if let Some((first, values)) = columns.first() {
            let expected = values.len();
            if expected != rows {
                return Err(Error::BadRequest(format!(
                    "input {:?} has {rows} rows, input {first:?} {expected}",
                    tensor.name
                )));
            }
        }
        columns.push((tensor.name, tensor.values));
    }
    if columns.is_empty() {
        return Err(Error::BadRequest("the request has no inputs".into()));
    }
    Ok(columns)
}

impl Values {
    /// Row `r` as a JSON row value: NaN (a `null`) and `None` are missing.
    fn json(&self, r: usize) -> Value {
        match self {
            Values::Numbers(v) if v[r].is_nan() => Value::Null,
            Values::Numbers(v) => Value::from(f64::from(v[r])),
            Values::Texts(v) => v[r].clone().map_or(Value::Null, Value::String),
        }
    }
}

/// One output of the answer, its data borrowed from the predictions.
pub(super) struct Output<'a> {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Data<'a>,
    pub binary: bool,
}

pub(super) enum Data<'a> {
    Floats(&'a [f32]),
    Indices(&'a [usize]),
    Texts(&'a [String]),
}

impl Data<'_> {
    pub fn datatype(&self) -> &'static str {
        match self {
            Data::Floats(_) => "FP32",
            Data::Indices(_) => "INT64",
            Data::Texts(_) => "BYTES",
        }
    }
}

/// The outputs a model gives: `probabilities` and `class` for a classifier,
/// `predictions` for a regression; with their datatypes and shapes (`-1` rows).
pub(super) fn signature(served: &ServedModel) -> Vec<(&'static str, &'static str, Vec<i64>)> {
    let width = served.model.output_width() as i64;
    match served.model.class_count() {
        Some(_) => {
            let class = match served.model.class_names() {
                Some(_) => "BYTES",
                None => "INT64",
            };
            vec![
                ("probabilities", "FP32", vec![-1, width]),
                ("class", class, vec![-1]),
            ]
        }
        None => vec![("predictions", "FP32", vec![-1, width])],
    }
}

/// The outputs the request names (all the model gives when it names none), binary where
/// the request asks for it.
pub(super) fn outputs<'a>(
    request: &InferRequest,
    predictions: &'a Predictions,
) -> Result<Vec<Output<'a>>, Error> {
    let values = predictions
        .predictions
        .as_slice()
        .expect("predictions are in standard layout");
    let shape = predictions.predictions.shape().to_vec();
    let rows = shape[0];
    let mut available: Vec<Output<'a>> = Vec::new();
    let main = if predictions.classes.is_some() {
        "probabilities"
    } else {
        "predictions"
    };
    available.push(Output {
        name: main,
        shape,
        data: Data::Floats(values),
        binary: false,
    });
    if let Some(classes) = &predictions.classes {
        available.push(Output {
            name: "class",
            shape: vec![rows],
            data: match classes {
                Classes::Indices(indices) => Data::Indices(indices),
                Classes::Labels(labels) => Data::Texts(labels),
            },
            binary: false,
        });
    }
    let all_binary = request.parameters.binary_data_output.unwrap_or(false);
    if request.outputs.is_empty() {
        for output in &mut available {
            output.binary = all_binary;
        }
        return Ok(available);
    }
    let names: Vec<&str> = available.iter().map(|o| o.name).collect();
    let mut chosen = Vec::with_capacity(request.outputs.len());
    for requested in &request.outputs {
        let Some(at) = available.iter().position(|o| o.name == requested.name) else {
            return Err(Error::BadRequest(format!(
                "the output {:?} is not one of the model's: {names:?}",
                requested.name
            )));
        };
        let mut output = available.swap_remove(at);
        output.binary = requested.parameters.binary_data.unwrap_or(all_binary);
        chosen.push(output);
    }
    Ok(chosen)
}
