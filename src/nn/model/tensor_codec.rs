//! Models as safetensors files: named f32 tensors (`dense.kernel` [in, out],
//! `dense.bias`, `normalization.mean`, `normalization.variance`, names as in
//! `summary()`), with the training spec as JSON in the metadata under `"spec"`.
//! The normalization statistics are tensors rather than JSON text so they round-trip
//! bit-exactly.

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::nn::error::ModelError;
use crate::nn::layers::{Dense, Normalization};
use crate::nn::model::network::{Layer, Network};
use crate::nn::model::Model;
use crate::nn::spec::{LayerSpec, TrainingSpec};

const FORMAT: &str = "nnserve.model";
const VERSION: &str = "1";

/// Named f32 tensors waiting to be serialised.
#[derive(Default)]
pub(crate) struct TensorList {
    items: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl TensorList {
    pub fn push(&mut self, name: String, shape: Vec<usize>, values: impl IntoIterator<Item = f32>) {
        let bytes = values.into_iter().flat_map(f32::to_le_bytes).collect();
        self.items.push((name, shape, bytes));
    }

    pub fn serialize(&self, metadata: HashMap<String, String>) -> Vec<u8> {
        let views = self.items.iter().map(|(name, shape, bytes)| {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches data");
            (name.clone(), view)
        });
        safetensors::serialize(views, Some(metadata)).expect("in-memory serialization cannot fail")
    }
}

/// One f32 tensor by name, checked against the expected shape.
pub(crate) fn read_f32(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, String> {
    let t = st
        .tensor(name)
        .map_err(|_| format!("tensor {name} is missing"))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        return Err(format!(
            "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
            t.dtype(),
            t.shape()
        ));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Model {
    pub(crate) fn push_tensors(&self, prefix: &str, list: &mut TensorList) {
        let names = self.summary().layers;
        for (layer, summary) in self.net.layers.iter().zip(names) {
            let name = format!("{prefix}{}", summary.name);
            match layer {
                Layer::Dense(d) => {
                    list.push(
                        format!("{name}.kernel"),
                        d.kernel.shape().to_vec(),
                        d.kernel.iter().copied(),
                    );
                    if let Some(b) = &d.bias {
                        list.push(format!("{name}.bias"), vec![b.len()], b.iter().copied());
                    }
                }
                Layer::Normalization(n) => {
                    list.push(
                        format!("{name}.mean"),
                        vec![n.width()],
                        n.mean.iter().copied(),
                    );
                    list.push(
                        format!("{name}.variance"),
                        vec![n.width()],
                        n.variance.iter().copied(),
                    );
                }
                Layer::Dropout(_) => {}
            }
        }
    }

    pub fn to_safetensors(&self) -> Vec<u8> {
        let mut list = TensorList::default();
        self.push_tensors("", &mut list);
        list.serialize(self.metadata())
    }

    pub(crate) fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("version".to_owned(), VERSION.to_owned()),
            ("features".to_owned(), self.input_width().to_string()),
            (
                "spec".to_owned(),
                serde_json::to_string(self.spec()).expect("spec serialises"),
            ),
        ])
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Model, ModelError> {
        let corrupt = ModelError::Corrupt;
        let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(corrupt(format!("not an {FORMAT} file")));
        }
        if meta.get("version").map(String::as_str) != Some(VERSION) {
            return Err(corrupt(format!(
                "unsupported version {:?}",
                meta.get("version")
            )));
        }
        Model::read_tensors(&st, "", &meta).map_err(corrupt)
    }

    /// Rebuild a model from tensors written by `push_tensors` with the same prefix.
    pub(crate) fn read_tensors(
        st: &SafeTensors<'_>,
        prefix: &str,
        meta: &HashMap<String, String>,
    ) -> Result<Model, String> {
        let spec: TrainingSpec =
            serde_json::from_str(meta.get("spec").ok_or("no spec in the metadata")?)
                .map_err(|e| format!("spec in the metadata: {e}"))?;
        let features: usize = meta
            .get("features")
            .and_then(|f| f.parse().ok())
            .ok_or("no feature count in the metadata")?;
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        let mut next_name = |base: &'static str| {
            let n = seen.entry(base).or_default();
            let name = if *n == 0 {
                format!("{prefix}{base}")
            } else {
                format!("{prefix}{base}_{n}")
            };
            *n += 1;
            name
        };
        let mut width = features;
        let mut layers = Vec::new();
        for layer in &spec.model.layers {
            match layer {
                LayerSpec::Input(_) => continue,
                LayerSpec::Dense(d) => {
                    let name = next_name("dense");
                    let kernel = read_f32(st, &format!("{name}.kernel"), &[width, d.units])?;
                    let bias = match d.use_bias {
                        true => Some(Array1::from(read_f32(
                            st,
                            &format!("{name}.bias"),
                            &[d.units],
                        )?)),
                        false => None,
                    };
                    let reg = d.kernel_regularizer.unwrap_or_default();
                    layers.push(Layer::Dense(Dense {
                        kernel: Array2::from_shape_vec((width, d.units), kernel)
                            .expect("length checked"),
                        bias,
                        activation: d.activation,
                        l1: reg.l1 as f32,
                        l2: reg.l2 as f32,
                    }));
                    width = d.units;
                }
                LayerSpec::Dropout(d) => {
                    next_name("dropout");
                    layers.push(Layer::Dropout(d.rate as f32));
                }
                LayerSpec::Normalization(_) => {
                    let name = next_name("normalization");
                    let mean = read_f32(st, &format!("{name}.mean"), &[width])?;
                    let variance = read_f32(st, &format!("{name}.variance"), &[width])?;
                    layers.push(Layer::Normalization(Normalization::from_stats(
                        mean.into(),
                        variance.into(),
                    )));
                }
            }
        }
        if !layers.iter().any(|l| matches!(l, Layer::Dense(_))) {
            return Err("the spec has no dense layer".to_owned());
        }
        Ok(Model::new(
            spec,
            Network {
                input_width: features,
                layers,
            },
        ))
    }
}
