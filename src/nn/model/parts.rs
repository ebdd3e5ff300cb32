//! A trained model's parts in order, read-only, for exporters (the ONNX export): plain
//! arrays and what each encoded column does, without the engine's own types.

use ndarray::ArrayView2;

use crate::nn::layers::encoding::How;
use crate::nn::layers::{Encoding, Layer};
use crate::nn::model::Model;
use crate::nn::ops::activation::Activation;

/// What a model computes, from a client's values to its outputs.
pub struct Parts<'a> {
    /// The raw columns, when the model encodes them itself (typed columns).
    pub columns: Option<Vec<ColumnPart<'a>>>,
    /// The columns of each hashed cross, by name.
    pub crosses: Vec<Vec<&'a str>>,
    /// The network after the encoding, first layer first.
    pub layers: Vec<LayerPart<'a>>,
}

pub struct ColumnPart<'a> {
    pub name: &'a str,
    pub encoding: ColumnEncoding<'a>,
    /// Trained only on rows that have it: predict refuses a missing value.
    pub drops_missing: bool,
}

pub enum ColumnEncoding<'a> {
    /// Not read.
    Skip,
    /// A number: a missing one replaced by `fill`, then scaled; with `indicator`, a second
    /// value that is 1 for a missing cell.
    Number {
        fill: f32,
        scale: NumberScale<'a>,
        indicator: bool,
    },
    /// A category looked up into slots: one-hot over them, or an embedding table's rows.
    Lookup(Lookup<'a>),
    /// One-hot over buckets of a hash of the text.
    Hashed,
}

pub enum NumberScale<'a> {
    /// `(x − mean)·inv_std`.
    Standardize { mean: f32, inv_std: f32 },
    /// `x·scale + offset`.
    Rescale { scale: f32, offset: f32 },
    /// One-hot over `boundaries.len() + 1` bins: `x` is in bin `i` when `i` boundaries are
    /// at most `x`.
    Discretize { boundaries: &'a [f32] },
}

pub struct Lookup<'a> {
    /// Every text the column knows (its vocabulary, its kept levels and the missing
    /// markers), with the slot and missingness predict gives it.
    pub texts: Vec<LookupText>,
    /// The slot of any other text.
    pub unseen_slot: u32,
    pub slots: usize,
    /// Out-of-vocabulary slots; more than one are hash buckets of the text.
    pub num_oov: usize,
    /// The trained rows, one per slot, for `output_mode: "embedding"`; one-hot otherwise.
    pub embedding: Option<ArrayView2<'a, f32>>,
    /// A value after the slot's that is 1 for a missing cell.
    pub indicator: bool,
}

pub struct LookupText {
    pub text: String,
    pub slot: u32,
    pub missing: bool,
}

pub enum LayerPart<'a> {
    /// `(x − mean) / std` per feature.
    Normalization { mean: &'a [f32], std: Vec<f32> },
    /// `activation(x·kernel + bias)`, the kernel [inputs, units].
    Dense {
        kernel: ArrayView2<'a, f32>,
        bias: Option<&'a [f32]>,
        activation: Activation,
    },
    /// Off when predicting.
    Dropout,
}

impl Model {
    pub fn parts(&self) -> Parts<'_> {
        let encoding = self.encoding();
        Parts {
            columns: encoding.map(columns),
            crosses: encoding.map_or_else(Vec::new, |e| {
                e.crosses
                    .iter()
                    .map(|c| {
                        c.columns
                            .iter()
                            .map(|&i| e.columns[i].name.as_str())
                            .collect()
                    })
                    .collect()
            }),
            layers: self
                .net
                .layers
                .iter()
                .filter_map(|layer| match layer {
                    Layer::Encoding(_) => None,
                    Layer::Normalization(n) => Some(LayerPart::Normalization {
                        mean: n.mean.as_slice().expect("contiguous statistics"),
                        std: n.std().to_vec(),
                    }),
                    Layer::Dense(d) => Some(LayerPart::Dense {
                        kernel: d.kernel.view(),
                        bias: d
                            .bias
                            .as_ref()
                            .map(|b| b.as_slice().expect("contiguous bias")),
                        activation: d.activation,
                    }),
                    Layer::Dropout(_) => Some(LayerPart::Dropout),
                })
                .collect(),
        }
    }
}

fn columns(encoding: &Encoding) -> Vec<ColumnPart<'_>> {
    encoding
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| ColumnPart {
            name: &column.name,
            encoding: match &column.how {
                How::Skip => ColumnEncoding::Skip,
                &How::Standardize {
                    mean,
                    inv_std,
                    indicator,
                    fill,
                } => ColumnEncoding::Number {
                    // Without a fill a missing number encodes as 0: the mean's value.
                    fill: fill.unwrap_or(mean),
                    scale: NumberScale::Standardize { mean, inv_std },
                    indicator,
                },
                &How::Rescale {
                    scale,
                    offset,
                    fill,
                    indicator,
                } => ColumnEncoding::Number {
                    fill,
                    scale: NumberScale::Rescale { scale, offset },
                    indicator,
                },
                How::Discretize {
                    boundaries,
                    fill,
                    indicator,
                } => ColumnEncoding::Number {
                    fill: *fill,
                    scale: NumberScale::Discretize { boundaries },
                    indicator: *indicator,
                },
                How::OneHot {
                    vocabulary,
                    kept,
                    num_oov,
                    indicator,
                    ..
                }
                | How::Embed {
                    vocabulary,
                    kept,
                    num_oov,
                    indicator,
                    ..
                } => ColumnEncoding::Lookup(lookup(
                    encoding, i, vocabulary, kept, *num_oov, *indicator,
                )),
                How::Hashed { .. } => ColumnEncoding::Hashed,
            },
            drops_missing: column.drops_missing,
        })
        .collect()
}

fn lookup<'a>(
    encoding: &'a Encoding,
    i: usize,
    vocabulary: &[String],
    kept: &[String],
    num_oov: usize,
    indicator: bool,
) -> Lookup<'a> {
    let mut seen = std::collections::HashSet::new();
    let texts = vocabulary
        .iter()
        .map(String::as_str)
        .chain(kept.iter().map(String::as_str))
        .chain(encoding.markers())
        .filter(|text| seen.insert(*text))
        .filter_map(|text| {
            let (slot, missing) = encoding.slot_of_text(i, text)?;
            Some(LookupText {
                text: text.to_owned(),
                slot,
                missing,
            })
        })
        .collect();
    Lookup {
        texts,
        unseen_slot: encoding
            .unseen_slot(i)
            .expect("slots per categorical column"),
        slots: num_oov + kept.len(),
        num_oov,
        embedding: encoding.table(i),
        indicator,
    }
}
