//! The typed columns' encoding as ONNX: one named input per column read, `[n, 1]`; a
//! number column takes FLOAT (NaN for a missing value), a category column STRING (the
//! level's text, a missing marker for a missing value).

use crate::nn::{ColumnEncoding, ColumnPart, Lookup, NumberScale};
use crate::onnx::graph::{self, Graph};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::ExportError;

/// The encoded row `[n, width]` of `columns` and the names of the inputs it reads.
pub fn columns(
    graph: &mut Graph,
    columns: &[ColumnPart<'_>],
) -> Result<(String, Vec<String>), ExportError> {
    let mut encoded = Vec::new();
    let mut names = Vec::new();
    for column in columns {
        let refuse = |why| ExportError::Column {
            column: column.name.to_owned(),
            why,
        };
        let missing = if column.drops_missing {
            " Trained only on rows that have it (missing: \"drop_row\"): predict refuses a \
             missing value, this model encodes it as its fill."
        } else {
            ""
        };
        match &column.encoding {
            ColumnEncoding::Skip => continue,
            ColumnEncoding::Hashed => {
                return Err(refuse("is hashed (string_hashed, integer_hashed)"))
            }
            ColumnEncoding::Lookup(lookup) if lookup.num_oov > 1 => {
                return Err(refuse(
                    "hashes unseen levels into several out-of-vocabulary slots \
                     (num_oov_indices > 1)",
                ))
            }
            ColumnEncoding::Number {
                fill,
                scale,
                indicator,
            } => {
                let doc = format!("a number; NaN for a missing value.{missing}");
                let x = graph.input(column.name, DataType::Float, 1, doc);
                encoded.extend(number(graph, &x, *fill, scale, *indicator));
            }
            ColumnEncoding::Lookup(lookup) => {
                let doc = format!(
                    "a category: the level's text as the training data has it (a number's \
                     shortest decimal text); a missing-value marker such as \"NA\" for a \
                     missing value, any other text the out-of-vocabulary slot.{missing}"
                );
                let x = graph.input(column.name, DataType::String, 1, doc);
                encoded.extend(category(graph, &x, lookup));
            }
        }
        names.push(column.name.to_owned());
    }
    let refs: Vec<&str> = encoded.iter().map(String::as_str).collect();
    Ok((
        graph.node("Concat", &refs, vec![graph::int("axis", 1)]),
        names,
    ))
}

/// A number column's values: the scaled (or binned) number, then its missing indicator.
fn number(
    graph: &mut Graph,
    x: &str,
    fill: f32,
    scale: &NumberScale<'_>,
    indicator: bool,
) -> Vec<String> {
    let is_missing = graph.node("IsNaN", &[x], vec![]);
    let fill = graph.floats("fill", &[], &[fill]);
    let v = graph.node("Where", &[&is_missing, &fill, x], vec![]);
    let value = match scale {
        NumberScale::Standardize { mean, inv_std } => {
            let mean = graph.floats("mean", &[], &[*mean]);
            let inv_std = graph.floats("inv_std", &[], &[*inv_std]);
            let centred = graph.node("Sub", &[&v, &mean], vec![]);
            graph.node("Mul", &[&centred, &inv_std], vec![])
        }
        NumberScale::Rescale { scale, offset } => {
            let scale = graph.floats("scale", &[], &[*scale]);
            let offset = graph.floats("offset", &[], &[*offset]);
            let scaled = graph.node("Mul", &[&v, &scale], vec![]);
            graph.node("Add", &[&scaled, &offset], vec![])
        }
        NumberScale::Discretize { boundaries } => {
            let bins = boundaries.len() + 1;
            // Without boundaries every number is in the one bin: a boundary no finite
            // number reaches keeps the comparison's shape.
            let compared = match boundaries.is_empty() {
                true => vec![f32::INFINITY],
                false => boundaries.to_vec(),
            };
            let b = graph.floats("boundaries", &[1, compared.len()], &compared);
            let below = graph.node("LessOrEqual", &[&b, &v], vec![]);
            let counted = graph.node(
                "Cast",
                &[&below],
                vec![graph::int("to", DataType::Int64 as i64)],
            );
            let axis = graph.ints("axis", &[1], &[1]);
            let bin = graph.node(
                "ReduceSum",
                &[&counted, &axis],
                vec![graph::int("keepdims", 0)],
            );
            one_hot(graph, &bin, bins)
        }
    };
    let mut values = vec![value];
    if indicator {
        let to = graph::int("to", DataType::Float as i64);
        values.push(graph.node("Cast", &[&is_missing], vec![to]));
    }
    values
}

/// A category column's values: its slot one-hot or its embedding row, then its missing
/// indicator; the slots are the encoding's own for every text it knows.
fn category(graph: &mut Graph, x: &str, lookup: &Lookup<'_>) -> Vec<String> {
    let keys = || graph::strings("keys_strings", lookup.texts.iter().map(|t| t.text.clone()));
    let slots = lookup.texts.iter().map(|t| i64::from(t.slot)).collect();
    let slot = graph.ml_node(
        "LabelEncoder",
        &[x],
        vec![
            keys(),
            graph::ints("values_int64s", slots),
            graph::int("default_int64", i64::from(lookup.unseen_slot)),
        ],
    );
    let flat = graph.ints("flat", &[1], &[-1]);
    let slot = graph.node("Reshape", &[&slot, &flat], vec![]);
    let value = match lookup.embedding {
        Some(table) => {
            let values: Vec<f32> = table.iter().copied().collect();
            let table = graph.floats("embeddings", table.shape(), &values);
            graph.node("Gather", &[&table, &slot], vec![graph::int("axis", 0)])
        }
        None => one_hot(graph, &slot, lookup.slots),
    };
    let mut values = vec![value];
    if lookup.indicator {
        let missing = lookup
            .texts
            .iter()
            .map(|t| f32::from(u8::from(t.missing)))
            .collect();
        values.push(graph.ml_node(
            "LabelEncoder",
            &[x],
            vec![
                keys(),
                graph::floats("values_floats", missing),
                graph::float("default_float", 0.0),
            ],
        ));
    }
    values
}

/// `[n]` indices as `[n, depth]` one-hot rows.
fn one_hot(graph: &mut Graph, index: &str, depth: usize) -> String {
    let depth = graph.ints("depth", &[], &[depth as i64]);
    let off_on = graph.floats("off_on", &[2], &[0.0, 1.0]);
    graph.node(
        "OneHot",
        &[index, &depth, &off_on],
        vec![graph::int("axis", -1)],
    )
}
