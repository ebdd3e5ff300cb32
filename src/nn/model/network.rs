//! A stack of layers and its forward/backward passes over preallocated buffers.

use ndarray::{s, Array2, ArrayView2};

use crate::nn::layers::dense::DenseGrads;
use crate::nn::layers::dropout::{self, MaskKey};
use crate::nn::layers::{Dense, Normalization};
use crate::nn::ops::alloc::{zeros2, OutOfMemory};
use crate::nn::ops::rng::Rng;
use crate::nn::spec::{LayerSpec, TrainingSpec};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layer {
    Normalization(Normalization),
    Dense(Dense),
    Dropout(f32),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Network {
    pub input_width: usize,
    pub layers: Vec<Layer>,
}

impl Layer {
    pub fn width(&self, input: usize) -> usize {
        match self {
            Layer::Dense(d) => d.units(),
            _ => input,
        }
    }
}

impl Network {
    /// Fresh weights from `rng`; the normalization statistics are supplied (adapted on
    /// the training split by the caller).
    pub fn build(
        spec: &TrainingSpec,
        features: usize,
        mut normalization: Option<Normalization>,
        rng: &mut Rng,
    ) -> Result<Network, OutOfMemory> {
        let mut width = features;
        let mut layers = Vec::new();
        for layer in &spec.model.layers {
            match layer {
                LayerSpec::Input(_) => continue,
                LayerSpec::Dense(d) => layers.push(Layer::Dense(Dense::new(width, d, rng)?)),
                LayerSpec::Dropout(d) => layers.push(Layer::Dropout(d.rate as f32)),
                LayerSpec::Normalization(_) => layers.push(Layer::Normalization(
                    normalization
                        .take()
                        .expect("normalization statistics for the first layer"),
                )),
            }
            width = layers.last().map_or(width, |l| l.width(width));
        }
        Ok(Network {
            input_width: features,
            layers,
        })
    }

    pub fn output_width(&self) -> usize {
        self.layers.iter().fold(self.input_width, |w, l| l.width(w))
    }

    pub fn dense_layers(&self) -> impl Iterator<Item = &Dense> {
        self.layers.iter().filter_map(|l| match l {
            Layer::Dense(d) => Some(d),
            _ => None,
        })
    }

    /// The kernels' regularization terms.
    pub fn penalty(&self) -> f64 {
        self.dense_layers().map(Dense::penalty).sum()
    }

    /// Forward pass over the rows of `x` into `ws`. `dropout` is the batch's mask key in
    /// training (with where `x` starts in the batch); `None` evaluates (dropout is the
    /// identity).
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        ws: &mut Workspace,
        dropout: Option<MaskKey>,
        threads: usize,
    ) {
        let rows = x.nrows();
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, rest) = ws.layers.split_at_mut(i);
            let input = if i == 0 {
                x.view()
            } else {
                before[i - 1].a.slice(s![..rows, ..])
            };
            let buf = &mut rest[0];
            let a = buf.a.slice_mut(s![..rows, ..]);
            match layer {
                Layer::Normalization(n) => n.forward(input, a),
                Layer::Dense(d) => d.forward(input, buf.z.slice_mut(s![..rows, ..]), a, threads),
                Layer::Dropout(rate) => match dropout {
                    Some(key) if *rate > 0.0 => dropout::forward_train(
                        *rate,
                        input,
                        buf.z.slice_mut(s![..rows, ..]),
                        a,
                        key.for_layer(i),
                    ),
                    _ => {
                        let mut a = a;
                        a.assign(&input);
                    }
                },
            }
        }
    }

    /// The output of the last `forward`.
    pub fn output<'w>(&self, ws: &'w Workspace, rows: usize) -> ArrayView2<'w, f32> {
        ws.layers
            .last()
            .expect("at least one layer")
            .a
            .slice(s![..rows, ..])
    }

    /// Backward pass after a training `forward` of the same rows. The caller has
    /// written ∂L/∂output into the last layer's `d` (w.r.t. z when `fused`).
    pub fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        ws: &mut Workspace,
        fused: bool,
        threads: usize,
    ) {
        let rows = x.nrows();
        let last = self.layers.len() - 1;
        let first_dense = self
            .layers
            .iter()
            .position(|l| matches!(l, Layer::Dense(_)));
        for i in (0..self.layers.len()).rev() {
            // Gradients flow to the input of layer i only if a dense layer lies below it.
            let wants_dx = first_dense.is_some_and(|f| f < i);
            let (before, rest) = ws.layers.split_at_mut(i);
            let buf = &mut rest[0];
            let (input, dx) = match before.last_mut() {
                Some(prev) if i > 0 => (
                    prev.a.slice(s![..rows, ..]),
                    if wants_dx {
                        Some(prev.d.slice_mut(s![..rows, ..]))
                    } else {
                        None
                    },
                ),
                _ => (x.view(), None),
            };
            match &self.layers[i] {
                Layer::Normalization(_) => {}
                Layer::Dense(dense) => {
                    let grads = ws.grads[i]
                        .as_mut()
                        .expect("gradient buffers for dense layers");
                    dense.backward(
                        input,
                        buf.z.slice(s![..rows, ..]),
                        buf.a.slice(s![..rows, ..]),
                        buf.d.slice_mut(s![..rows, ..]),
                        fused && i == last,
                        grads,
                        dx,
                        threads,
                    );
                }
                Layer::Dropout(rate) => {
                    if let Some(dx) = dx {
                        if *rate > 0.0 {
                            dropout::backward(
                                buf.z.slice(s![..rows, ..]),
                                buf.d.slice(s![..rows, ..]),
                                dx,
                            );
                        } else {
                            let mut dx = dx;
                            dx.assign(&buf.d.slice(s![..rows, ..]));
                        }
                    }
                }
            }
        }
    }
}

/// Per-layer buffers of one layer.
#[derive(Debug)]
pub(crate) struct LayerBuffers {
    /// Dense: pre-activation; dropout: the scaled mask of the last training pass.
    pub z: Array2<f32>,
    /// The layer's output.
    pub a: Array2<f32>,
    /// ∂L/∂a (training only; empty otherwise).
    pub d: Array2<f32>,
}

/// All buffers a forward (and backward) pass needs for up to `capacity` rows,
/// allocated once and reused for every batch.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub layers: Vec<LayerBuffers>,
    pub grads: Vec<Option<DenseGrads>>,
}

impl Workspace {
    pub fn new(net: &Network, capacity: usize, training: bool) -> Result<Workspace, OutOfMemory> {
        let mut width = net.input_width;
        let mut layers = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            width = layer.width(width);
            let aux = matches!(layer, Layer::Dense(_))
                || (training && matches!(layer, Layer::Dropout(_)));
            let zeros = |on: bool| {
                zeros2(
                    if on { (capacity, width) } else { (0, width) },
                    "activations",
                )
            };
            layers.push(LayerBuffers {
                z: zeros(aux)?,
                a: zeros(true)?,
                d: zeros(training)?,
            });
        }
        let grads = net
            .layers
            .iter()
            .map(|l| match l {
                Layer::Dense(d) if training => DenseGrads::for_layer(d).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(Workspace { layers, grads })
    }

    /// Rows this workspace holds.
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, |l| l.a.nrows())
    }

    /// Bytes of its layer buffers.
    pub fn bytes(&self) -> usize {
        let floats: usize = self
            .layers
            .iter()
            .map(|l| l.z.len() + l.a.len() + l.d.len())
            .sum();
        floats * std::mem::size_of::<f32>()
    }

    /// Pre-activation of the last layer (the logits for the fused losses).
    pub fn output_logits(&self, rows: usize) -> ArrayView2<'_, f32> {
        self.layers
            .last()
            .expect("at least one layer")
            .z
            .slice(s![..rows, ..])
    }
}
