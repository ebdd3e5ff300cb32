//! An ONNX graph built node by node, and the network's layers as ONNX operators.

use crate::nn::{Activation, LayerPart};
use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The domain of the ONNX-ML operators (`LabelEncoder`).
pub const ML_DOMAIN: &str = "ai.onnx.ml";

/// The batch dimension's name in the inputs' and outputs' shapes.
const BATCH: &str = "n";

#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfoProto>,
    /// Whether a node is an ONNX-ML operator, so the model imports that domain.
    pub uses_ml: bool,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.next += 1;
        format!("{base}_{}", self.next)
    }

    /// A graph input `[n, width]` of `elem` values.
    pub fn input(&mut self, name: &str, elem: DataType, width: usize, doc: String) -> String {
        self.inputs.push(ValueInfoProto {
            name: name.to_owned(),
            r#type: Some(tensor_type(elem, width)),
            doc_string: doc,
            ..Default::default()
        });
        name.to_owned()
    }

    pub fn floats(&mut self, base: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, DataType::Float, dims, raw)
    }

    pub fn ints(&mut self, base: &str, dims: &[usize], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, DataType::Int64, dims, raw)
    }

    fn initializer(&mut self, base: &str, elem: DataType, dims: &[usize], raw: Vec<u8>) -> String {
        let name = self.fresh(base);
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: elem as i32,
            raw_data: raw,
            ..Default::default()
        });
        name
    }

    /// A node of the default domain with one output, which it returns.
    pub fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        self.node_in("", op, inputs, attributes)
    }

    pub fn ml_node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.uses_ml = true;
        self.node_in(ML_DOMAIN, op, inputs, attributes)
    }

    fn node_in(
        &mut self,
        domain: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        let output = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            name: output.clone(),
            op_type: op.to_owned(),
            domain: domain.to_owned(),
            input: inputs.iter().map(|&i| i.to_owned()).collect(),
            output: vec![output.clone()],
            attribute: attributes,
            ..Default::default()
        });
        output
    }

    /// `x` through the network's layers, dropout left out (it is off when predicting).
    pub fn layers(&mut self, mut x: String, layers: &[LayerPart<'_>]) -> String {
        for layer in layers {
            x = match layer {
                LayerPart::Normalization { mean, std } => {
                    let mean = self.floats("mean", &[mean.len()], mean);
                    let std = self.floats("std", &[std.len()], std);
                    let centred = self.node("Sub", &[&x, &mean], vec![]);
                    self.node("Div", &[&centred, &std], vec![])
                }
                LayerPart::Dense {
                    kernel,
                    bias,
                    activation,
                } => {
                    let kernel_values: Vec<f32> = kernel.iter().copied().collect();
                    // Stored [inputs, units], as Gemm's B without transB.
                    let w = self.floats("kernel", kernel.shape(), &kernel_values);
                    let z = match bias {
                        Some(b) => {
                            let b = self.floats("bias", &[b.len()], b);
                            self.node("Gemm", &[&x, &w, &b], vec![])
                        }
                        None => self.node("Gemm", &[&x, &w], vec![]),
                    };
                    self.activation(z, *activation)
                }
                LayerPart::Dropout => x,
            };
        }
        x
    }

    /// Keras' activations as the engine computes them (`nn/ops/activation.rs`).
    fn activation(&mut self, z: String, activation: Activation) -> String {
        match activation {
            Activation::Linear => z,
            Activation::Sigmoid => self.node("Sigmoid", &[&z], vec![]),
            Activation::Relu => self.node("Relu", &[&z], vec![]),
            Activation::Tanh => self.node("Tanh", &[&z], vec![]),
            Activation::Softmax => self.node("Softmax", &[&z], vec![int("axis", -1)]),
            Activation::LeakyRelu => self.node("LeakyRelu", &[&z], vec![float("alpha", 0.2)]),
            Activation::Elu => self.node("Elu", &[&z], vec![float("alpha", 1.0)]),
            Activation::Softplus => self.node("Softplus", &[&z], vec![]),
            Activation::Swish => {
                let s = self.node("Sigmoid", &[&z], vec![]);
                self.node("Mul", &[&z, &s], vec![])
            }
            // The exact (erf) GELU, Keras' default; opset 17 has no Gelu operator.
            Activation::Gelu => {
                let inv_sqrt2 = self.floats("inv_sqrt2", &[], &[std::f32::consts::FRAC_1_SQRT_2]);
                let one = self.floats("one", &[], &[1.0]);
                let half = self.floats("half", &[], &[0.5]);
                let scaled = self.node("Mul", &[&z, &inv_sqrt2], vec![]);
                let erf = self.node("Erf", &[&scaled], vec![]);
                let cdf = self.node("Add", &[&erf, &one], vec![]);
                let half_z = self.node("Mul", &[&z, &half], vec![]);
                self.node("Mul", &[&half_z, &cdf], vec![])
            }
        }
    }
}

/// A tensor type `[n, width]`.
pub fn tensor_type(elem: DataType, width: usize) -> TypeProto {
    let dims = [
        tensor_shape_proto::dimension::Value::DimParam(BATCH.to_owned()),
        tensor_shape_proto::dimension::Value::DimValue(width as i64),
    ];
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: elem as i32,
            shape: Some(TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|value| tensor_shape_proto::Dimension {
                        value: Some(value),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

pub fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

pub fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints: values,
        ..Default::default()
    }
}

pub fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Floats as i32,
        floats: values,
        ..Default::default()
    }
}

pub fn strings(name: &str, values: impl IntoIterator<Item = String>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Strings as i32,
        strings: values.into_iter().map(String::into_bytes).collect(),
        ..Default::default()
    }
}
