//! Models as safetensors files: named f32 tensors (`dense.kernel` [in, out],
//! `dense.bias`, `normalization.mean`, `normalization.variance`, names as in
//! `summary()`; each layer kind writes and reads its own), with the training spec as JSON
//! in the metadata under `"spec"`.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::nn::error::ModelError;
use crate::nn::layers::{encoding, unique_names, Encoding, Layer, LayerSpec};
use crate::nn::model::network::Network;
use crate::nn::model::Model;
use crate::nn::spec::TrainingSpec;

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
        let names = unique_names(self.net.layers.iter().map(|l| l.base_name()));
        for (layer, name) in self.net.layers.iter().zip(names) {
            layer.push_tensors(&format!("{prefix}{name}"), list);
        }
    }

    pub fn to_safetensors(&self) -> Vec<u8> {
        let mut list = TensorList::default();
        self.push_tensors("", &mut list);
        list.serialize(self.metadata())
    }

    pub(crate) fn metadata(&self) -> HashMap<String, String> {
        let mut meta = HashMap::from([
            ("format".to_owned(), FORMAT.to_owned()),
            ("version".to_owned(), VERSION.to_owned()),
            ("features".to_owned(), self.input_width().to_string()),
            (
                "spec".to_owned(),
                serde_json::to_string(self.spec()).expect("spec serialises"),
            ),
        ]);
        if let Some(encoding) = self.encoding() {
            // Its floats are f32, which serde_json writes in the shortest form that reads
            // back to the same bits.
            let json = serde_json::to_string(encoding).expect("encoding serialises");
            meta.insert("encoding".to_owned(), json);
        }
        meta
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
        let names = unique_names(spec.model.layers.iter().filter_map(LayerSpec::base_name));
        let built = spec.model.layers.iter().filter(|l| l.base_name().is_some());
        let mut width = features;
        let mut layers = Vec::new();
        if let Some(json) = meta.get("encoding") {
            let mut encoding = serde_json::from_str::<Encoding>(json)
                .map_err(|e| format!("encoding in the metadata: {e}"))?
                .restored()
                .ok_or("the encoding's crosses name columns that are not categorical")?;
            encoding.read_tables(st, &format!("{prefix}{}", encoding::NAME))?;
            if encoding.input_width() != features {
                return Err(format!(
                    "the encoding reads {} columns, the model {features}",
                    encoding.input_width()
                ));
            }
            width = encoding.width();
            layers.push(Layer::Encoding(encoding));
        }
        for (layer, name) in built.zip(names) {
            if let Some(layer) = layer.read(st, &format!("{prefix}{name}"), width)? {
                width = layer.width(width);
                layers.push(layer);
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
