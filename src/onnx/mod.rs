//! A trained model as an ONNX model (opset 17, and ONNX-ML's `LabelEncoder` for text
//! columns): the encoding, the network's layers and its output, computing what predict
//! computes. A part ONNX cannot express as the engine computes it is refused, naming it.

mod encoding;
mod graph;
pub mod proto;

use prost::Message;

use crate::nn::Model;
use graph::{Graph, ML_DOMAIN};
use proto::{tensor_proto::DataType, ModelProto, OperatorSetIdProto, StringStringEntryProto};

/// The default domain's opset (ONNX 1.12), which onnxruntime and tract both run.
const OPSET: i64 = 17;
/// ONNX-ML's opset that goes with opset 17.
const ML_OPSET: i64 = 3;
/// The IR version of opset 17 (ONNX 1.12).
const IR_VERSION: i64 = 8;

/// The input of a model that reads plain numbers, `[n, features]`.
pub const NUMERIC_INPUT: &str = "input";
/// The output: predict's `predictions`, a row per input row.
pub const OUTPUT: &str = "predictions";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("column {column:?}: {why}, which ONNX cannot compute as the model does")]
    Column { column: String, why: &'static str },
    #[error(
        "the cross of {columns:?} buckets a hash of its columns' slots, which ONNX cannot \
         compute as the model does"
    )]
    Cross { columns: Vec<String> },
}

/// What the exported file says about the model besides its graph.
pub struct Description<'a> {
    /// The model's id, and its name and version when its job named it.
    pub id: String,
    pub name: Option<&'a str>,
    pub version: Option<u32>,
    pub feature_names: &'a [String],
    pub target_names: &'a [String],
}

/// The serialized ONNX `ModelProto` of `model`.
pub fn export(model: &Model, description: &Description<'_>) -> Result<Vec<u8>, ExportError> {
    let parts = model.parts();
    let mut graph = Graph::default();
    let (x, feature_names) = match &parts.columns {
        Some(columns) => {
            if let Some(columns) = parts.crosses.first() {
                return Err(ExportError::Cross {
                    columns: columns.iter().map(|&c| c.to_owned()).collect(),
                });
            }
            encoding::columns(&mut graph, columns)?
        }
        None => {
            let width = model.input_width();
            let doc = format!(
                "{width} numbers per row, in the order of metadata feature_names: {:?}",
                description.feature_names
            );
            let input = graph.input(NUMERIC_INPUT, DataType::Float, width, doc);
            (input, description.feature_names.to_vec())
        }
    };
    let y = graph.layers(x, &parts.layers);
    graph.nodes.push(proto::NodeProto {
        name: OUTPUT.to_owned(),
        op_type: "Identity".to_owned(),
        input: vec![y],
        output: vec![OUTPUT.to_owned()],
        ..Default::default()
    });
    let mut opsets = vec![OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
    }];
    if graph.uses_ml {
        opsets.push(OperatorSetIdProto {
            domain: ML_DOMAIN.to_owned(),
            version: ML_OPSET,
        });
    }
    let output = proto::ValueInfoProto {
        name: OUTPUT.to_owned(),
        r#type: Some(graph::tensor_type(DataType::Float, model.output_width())),
        doc_string: "predict's predictions: probabilities for a classifier, values for a \
            regression"
            .to_owned(),
        ..Default::default()
    };
    let title = match (description.name, description.version) {
        (Some(name), Some(version)) => format!("{name} version {version}"),
        _ => description.id.clone(),
    };
    let onnx = ModelProto {
        ir_version: IR_VERSION,
        opset_import: opsets,
        producer_name: "nnserve".to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        model_version: description.version.map_or(0, i64::from),
        doc_string: format!("nnserve model {title}"),
        metadata_props: metadata(description, &feature_names, model.class_names()),
        graph: Some(proto::GraphProto {
            name: title,
            node: graph.nodes,
            initializer: graph.initializers,
            input: graph.inputs,
            output: vec![output],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(onnx.encode_to_vec())
}

fn metadata(
    description: &Description<'_>,
    feature_names: &[String],
    class_names: Option<&[String]>,
) -> Vec<StringStringEntryProto> {
    let json = |v: &[String]| serde_json::to_string(v).expect("a list of strings serializes");
    let mut props = vec![
        ("feature_names", json(feature_names)),
        ("target_names", json(description.target_names)),
        ("nnserve_model_id", description.id.clone()),
    ];
    if let Some(names) = class_names {
        props.push(("class_names", json(names)));
    }
    if let Some(name) = description.name {
        props.push(("nnserve_name", name.to_owned()));
    }
    if let Some(version) = description.version {
        props.push(("nnserve_version", version.to_string()));
    }
    props
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.to_owned(),
            value,
        })
        .collect()
}
