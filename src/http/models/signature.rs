//! What a model takes and gives, for its view: each input column with its type and
//! encoding, and each output of predict's answer with its shape and meaning.

use serde::Serialize;
use utoipa::ToSchema;

use crate::nn::ModelSummary;
use crate::store::{ColumnType, StoredModel};

/// One column a client sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct InputView {
    /// The column's name, as instances' objects and CSV headers give it.
    pub column: String,
    /// What the upload typed it as: `number`, `category` (text levels, numbers among them
    /// levels too) or `identifier` (every value distinct).
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// How the model turns it into input values: `none` (the number as it is; a
    /// `normalization` first layer, when the spec has one, standardises it),
    /// `standardize`, `rescale`, `discretize`, `one_hot`, `hashed`, or `skip` (left out: an
    /// identifier or an excluded column, which a client need not send).
    pub encoding: String,
    /// Input values it becomes (0 for `skip`).
    pub width: usize,
}

/// One output of predict's JSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputView {
    /// Its key in the answer: `predictions` or `classes`.
    pub name: String,
    /// `[null, width]` for `predictions`, `[null]` for `classes`: the batch dimension is
    /// open (one row per instance).
    pub shape: Vec<Option<usize>>,
    /// `float32`, or for `classes` `string` (a text target's labels) or `int64` (class
    /// indices).
    pub dtype: String,
    /// `values` (regression), `probabilities` (one per class, or per target of a
    /// multi-label model), `probability` (one sigmoid output: of the second class, or of
    /// class 1), or `class` (the predicted class).
    pub meaning: String,
    /// What each column (or each class) is: the class names, or the target columns;
    /// null when they are class indices.
    pub labels: Option<Vec<String>>,
}

/// The columns of `model` with their types and encodings.
pub fn inputs(model: &StoredModel, summary: Option<&ModelSummary>) -> Vec<InputView> {
    let encoded: Vec<_> = summary
        .map(|s| s.inputs.iter().filter(|i| i.encoding != "cross").collect())
        .unwrap_or_default();
    if encoded.is_empty() {
        return model
            .feature_names
            .iter()
            .map(|column| InputView {
                column: column.clone(),
                kind: ColumnType::Number,
                encoding: "none".into(),
                width: 1,
            })
            .collect();
    }
    encoded
        .into_iter()
        .enumerate()
        .map(|(c, input)| InputView {
            column: input.column.clone(),
            kind: model
                .input_types
                .as_ref()
                .and_then(|types| types.get(c).copied())
                .unwrap_or_else(|| type_of_encoding(&input.encoding)),
            encoding: input.encoding.clone(),
            width: input.width,
        })
        .collect()
}

/// A column's type for a model stored before types were kept, from its encoding.
fn type_of_encoding(encoding: &str) -> ColumnType {
    match encoding {
        "one_hot" | "hashed" => ColumnType::Category,
        "skip" => ColumnType::Identifier,
        _ => ColumnType::Number,
    }
}

/// Predict's outputs for `model`.
pub fn outputs(model: &StoredModel, summary: Option<&ModelSummary>) -> Vec<OutputView> {
    let width = summary
        .and_then(|s| s.layers.last())
        .and_then(|layer| layer.output_shape.last().copied().flatten())
        .unwrap_or(model.target_names.len());
    let class_names = summary.and_then(|s| s.class_names.clone());
    let predictions = |meaning: &str, labels: Option<Vec<String>>| OutputView {
        name: "predictions".into(),
        shape: vec![None, Some(width)],
        dtype: "float32".into(),
        meaning: meaning.into(),
        labels,
    };
    let classes = |labels: Option<Vec<String>>| OutputView {
        name: "classes".into(),
        shape: vec![None],
        dtype: if labels.is_some() { "string" } else { "int64" }.into(),
        meaning: "class".into(),
        labels,
    };
    match (model.task.as_str(), width) {
        ("binary", 1) => vec![
            predictions(
                "probability",
                class_names
                    .as_ref()
                    .map(|n| n.iter().skip(1).cloned().collect()),
            ),
            classes(class_names),
        ],
        ("binary", _) => vec![predictions(
            "probabilities",
            Some(model.target_names.clone()),
        )],
        ("multiclass", _) => vec![
            predictions("probabilities", class_names.clone()),
            classes(class_names),
        ],
        _ => vec![predictions("values", Some(model.target_names.clone()))],
    }
}
