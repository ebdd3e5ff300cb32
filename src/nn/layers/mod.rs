//! The layer kinds. Each kind's file holds everything about it: its spec (the JSON users
//! write), its checks, its memory cost, its parameters, its forward and backward passes,
//! its one-row kernel, its summary line and its tensors. This file is the only one that
//! lists the kinds: a new kind is its own file (copy `dropout.rs` for one without
//! parameters), one variant in each enum below, and one arm in each `match` here.

pub(crate) mod dense;
pub(crate) mod dropout;
pub(crate) mod encoding;
pub(crate) mod input;
pub(crate) mod normalization;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use dense::{DenseSpec, Initializer, RegularizerSpec};
pub use dropout::DropoutSpec;
pub use input::InputSpec;
pub use normalization::NormalizationSpec;

pub(crate) use dense::{Dense, DenseGrads};
pub(crate) use dropout::{Dropout, MaskKey};
pub(crate) use encoding::{Encoding, TableGrads};
pub(crate) use normalization::{Moments, Normalization};

use crate::nn::error::SpecError;
use crate::nn::model::tensor_codec::TensorList;
use crate::nn::ops::alloc::OutOfMemory;
use crate::nn::ops::rng::Rng;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Optional first layer declaring the feature count (Keras `Input(shape=...)`).
    Input(InputSpec),
    Dense(DenseSpec),
    Dropout(DropoutSpec),
    Normalization(NormalizationSpec),
}

/// A built layer with its parameters. `Input` declares a shape and builds none; an
/// `Encoding` is not in the spec: it comes first when the dataset's columns need one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layer {
    Encoding(Encoding),
    Normalization(Normalization),
    Dense(Dense),
    Dropout(Dropout),
}

/// A trained layer's gradient buffers, shaped like its parameters.
#[derive(Clone, Debug)]
pub(crate) enum Grads {
    Dense(DenseGrads),
    /// The encoding's embedding tables, written only where a batch reached them.
    Tables(TableGrads),
}

/// Where a layer spec stands in the list, for the checks that depend on it.
pub(crate) struct Place<'a> {
    /// `model.layers[i]`, the prefix of every error's field.
    pub at: &'a str,
    pub index: usize,
    /// First of the layers that build (only an `input` before it).
    pub first: bool,
    pub features: usize,
}

/// What one layer costs, for the memory estimate.
pub(crate) struct Cost {
    pub parameters: u128,
    /// Kernel entries: multiply-adds per row, which decide the shard count.
    pub kernel: u128,
    /// Parameters that have gradients and moments (a normalization's do not).
    pub trained: u128,
    /// The output width.
    pub width: u128,
    /// f32 buffers per row while training / while only running forward.
    pub per_row_training: u128,
    pub per_row_forward: u128,
}

impl LayerSpec {
    /// The Keras base name (`dense`, `dropout`, …) of the layer this builds.
    pub(crate) fn base_name(&self) -> Option<&'static str> {
        match self {
            LayerSpec::Input(_) => None,
            LayerSpec::Dense(_) => Some(dense::NAME),
            LayerSpec::Dropout(_) => Some(dropout::NAME),
            LayerSpec::Normalization(_) => Some(normalization::NAME),
        }
    }

    pub(crate) fn check(&self, place: &Place<'_>) -> Result<(), SpecError> {
        match self {
            LayerSpec::Input(s) => s.check(place),
            LayerSpec::Dense(s) => s.check(place),
            LayerSpec::Dropout(s) => s.check(place),
            LayerSpec::Normalization(s) => s.check(place),
        }
    }

    pub(crate) fn cost(&self, width: u128) -> Option<Cost> {
        match self {
            LayerSpec::Input(_) => None,
            LayerSpec::Dense(s) => Some(s.cost(width)),
            LayerSpec::Dropout(_) => Some(dropout::cost(width)),
            LayerSpec::Normalization(_) => Some(normalization::cost(width)),
        }
    }

    /// Fresh parameters from `rng` for `width` inputs; a normalization takes the
    /// statistics adapted by the caller.
    pub(crate) fn build(
        &self,
        width: usize,
        rng: &mut Rng,
        normalization: &mut Option<Normalization>,
    ) -> Result<Option<Layer>, OutOfMemory> {
        Ok(Some(match self {
            LayerSpec::Input(_) => return Ok(None),
            LayerSpec::Dense(s) => Layer::Dense(Dense::new(width, s, rng)?),
            LayerSpec::Dropout(s) => Layer::Dropout(Dropout::new(s)),
            LayerSpec::Normalization(_) => Layer::Normalization(
                normalization
                    .take()
                    .expect("normalization statistics for the first layer"),
            ),
        }))
    }

    /// The layer stored under `name` by [`Layer::push_tensors`].
    pub(crate) fn read(
        &self,
        st: &SafeTensors<'_>,
        name: &str,
        width: usize,
    ) -> Result<Option<Layer>, String> {
        Ok(Some(match self {
            LayerSpec::Input(_) => return Ok(None),
            LayerSpec::Dense(s) => Layer::Dense(Dense::read(s, st, name, width)?),
            LayerSpec::Dropout(s) => Layer::Dropout(Dropout::new(s)),
            LayerSpec::Normalization(_) => {
                Layer::Normalization(Normalization::read(st, name, width)?)
            }
        }))
    }

    /// Parses a layer object's body (without `type`) as the spec of kind `kind`, for an
    /// error that names the field; unknown kinds are left to the full parse.
    pub(crate) fn check_body(
        kind: &str,
        body: serde_json::Value,
    ) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
        fn parse<T: serde::de::DeserializeOwned>(
            body: serde_json::Value,
        ) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
            serde_path_to_error::deserialize::<_, T>(body).map(drop)
        }
        match kind {
            "input" => parse::<InputSpec>(body),
            "dense" => parse::<DenseSpec>(body),
            "dropout" => parse::<DropoutSpec>(body),
            "normalization" => parse::<NormalizationSpec>(body),
            _ => Ok(()),
        }
    }
}

/// One layer's buffers in a workspace, for up to its capacity in rows.
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    /// Dense: pre-activation; dropout: the scaled mask of the last training pass.
    pub z: Array2<f32>,
    /// The layer's output.
    pub a: Array2<f32>,
    /// ∂L/∂a (training only; empty otherwise).
    pub d: Array2<f32>,
}

/// A row's scratch in the few-rows path, besides its input and output.
pub(crate) struct RowScratch<'a> {
    pub z: &'a mut [f32],
    pub nonzero: &'a mut [u32],
}

impl Layer {
    pub fn width(&self, input: usize) -> usize {
        match self {
            Layer::Dense(d) => d.units(),
            Layer::Encoding(e) => e.width(),
            Layer::Dropout(_) | Layer::Normalization(_) => input,
        }
    }

    pub fn base_name(&self) -> &'static str {
        match self {
            Layer::Dense(_) => dense::NAME,
            Layer::Encoding(_) => encoding::NAME,
            Layer::Dropout(_) => dropout::NAME,
            Layer::Normalization(_) => normalization::NAME,
        }
    }

    /// The Keras class name, as `model.summary()` shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Dense(_) => dense::KIND,
            Layer::Encoding(_) => encoding::KIND,
            Layer::Dropout(_) => dropout::KIND,
            Layer::Normalization(_) => normalization::KIND,
        }
    }

    /// Weights as Keras counts them, and whether training changes them.
    pub fn params(&self) -> (usize, bool) {
        match self {
            Layer::Dense(d) => (d.params(), true),
            Layer::Dropout(_) => (0, true),
            Layer::Encoding(e) => (e.params(), e.is_trained()),
            Layer::Normalization(n) => (n.params(), false),
        }
    }

    /// Whether gradients reach this layer's parameters.
    pub fn is_trained(&self) -> bool {
        match self {
            Layer::Dense(_) => true,
            Layer::Encoding(e) => e.is_trained(),
            Layer::Dropout(_) | Layer::Normalization(_) => false,
        }
    }

    /// The lengths of the trained parameter buffers, in the order the optimizer visits
    /// them (a dense layer: kernel, then bias; an encoding: its tables).
    pub fn trained_lengths(&self) -> Vec<usize> {
        match self {
            Layer::Dense(d) => std::iter::once(d.kernel.len())
                .chain(d.bias.as_ref().map(|b| b.len()))
                .collect(),
            Layer::Encoding(e) => e.table_lengths().collect(),
            Layer::Dropout(_) | Layer::Normalization(_) => Vec::new(),
        }
    }

    /// The regularization term this layer adds to the loss.
    pub fn penalty(&self) -> f64 {
        match self {
            Layer::Dense(d) => d.penalty(),
            Layer::Dropout(_) | Layer::Normalization(_) | Layer::Encoding(_) => 0.0,
        }
    }

    /// Multiply-adds per row of the forward pass.
    pub fn macs_per_row(&self) -> usize {
        match self {
            Layer::Dense(d) => d.kernel.len(),
            Layer::Dropout(_) | Layer::Normalization(_) | Layer::Encoding(_) => 0,
        }
    }

    pub fn push_tensors(&self, name: &str, list: &mut TensorList) {
        match self {
            Layer::Dense(d) => d.push_tensors(name, list),
            Layer::Normalization(n) => n.push_tensors(name, list),
            // Vocabularies are text: the encoding travels in the metadata, with only its
            // embedding tables here.
            Layer::Encoding(e) => e.push_tensors(name, list),
            Layer::Dropout(_) => {}
        }
    }

    /// Whether the layer keeps a `z` buffer (pre-activation or mask) in a workspace.
    pub fn keeps_z(&self, training: bool) -> bool {
        match self {
            Layer::Dense(_) => true,
            Layer::Dropout(_) => training,
            Layer::Normalization(_) | Layer::Encoding(_) => false,
        }
    }

    /// Gradient buffers shaped like the trained parameters.
    pub fn gradients(&self) -> Result<Option<Grads>, OutOfMemory> {
        Ok(match self {
            Layer::Dense(d) => Some(Grads::Dense(DenseGrads::for_layer(d)?)),
            Layer::Encoding(e) if e.is_trained() => {
                Some(Grads::Tables(TableGrads::for_encoding(e)?))
            }
            Layer::Dropout(_) | Layer::Normalization(_) | Layer::Encoding(_) => None,
        })
    }

    /// Forward pass of `input`'s rows into `buf`; `dropout` is this layer's mask key in
    /// training, `None` when evaluating.
    pub fn forward(
        &self,
        input: ArrayView2<'_, f32>,
        buf: &mut LayerBuffers,
        dropout: Option<MaskKey>,
        threads: usize,
    ) {
        let rows = input.nrows();
        let a = buf.a.slice_mut(ndarray::s![..rows, ..]);
        match self {
            Layer::Normalization(n) => n.forward(input, a),
            Layer::Encoding(e) => e.forward(input, a),
            Layer::Dense(d) => {
                d.forward(input, buf.z.slice_mut(ndarray::s![..rows, ..]), a, threads)
            }
            Layer::Dropout(d) => d.forward(input, &mut buf.z, a, dropout),
        }
    }

    /// Backward pass after a training `forward` of the same rows: from ∂L/∂a in `buf.d`
    /// (∂L/∂z when `d_is_dz`) to the parameters' gradients and, if asked, ∂L/∂input.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        input: ArrayView2<'_, f32>,
        buf: &mut LayerBuffers,
        d_is_dz: bool,
        grads: Option<&mut Grads>,
        dx: Option<ArrayViewMut2<'_, f32>>,
        threads: usize,
    ) {
        let rows = input.nrows();
        let rows = ndarray::s![..rows, ..];
        match self {
            Layer::Normalization(_) => {}
            Layer::Encoding(e) => {
                if let Some(Grads::Tables(g)) = grads {
                    e.backward(input, buf.d.slice(rows), g);
                }
            }
            Layer::Dense(dense) => {
                let Some(Grads::Dense(g)) = grads else {
                    unreachable!("gradient buffers for dense layers")
                };
                dense.backward(
                    input,
                    buf.z.slice(rows),
                    buf.a.slice(rows),
                    buf.d.slice_mut(rows),
                    d_is_dz,
                    g,
                    dx,
                    threads,
                )
            }
            Layer::Dropout(d) => {
                if let Some(dx) = dx {
                    d.backward(buf.z.slice(rows), buf.d.slice(rows), dx);
                }
            }
        }
    }

    /// One row through the layer, `x` (of the input width) into `out`; returns the output
    /// width, or `None` when the layer passes the row through unchanged.
    pub fn forward_row(
        &self,
        x: &[f32],
        out: &mut [f32],
        scratch: RowScratch<'_>,
    ) -> Option<usize> {
        match self {
            Layer::Normalization(n) => {
                n.forward_row(x, &mut out[..x.len()]);
                Some(x.len())
            }
            Layer::Encoding(e) => {
                e.forward_row(x, &mut out[..e.width()]);
                Some(e.width())
            }
            Layer::Dense(d) => Some(d.forward_row(x, out, scratch)),
            Layer::Dropout(_) => None,
        }
    }
}

/// Keras-style unique names: `dense`, `dense_1`, `dropout`, `dense_2`, …
pub(crate) fn unique_names<'a>(bases: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    bases
        .into_iter()
        .map(|base| {
            let n = seen.entry(base).or_default();
            let name = match *n {
                0 => base.to_owned(),
                n => format!("{base}_{n}"),
            };
            *n += 1;
            name
        })
        .collect()
}
