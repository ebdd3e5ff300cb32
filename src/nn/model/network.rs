//! A stack of layers and its forward/backward passes over preallocated buffers.

use ndarray::{s, ArrayView2};

use crate::nn::layers::{Encoding, Grads, Layer, LayerBuffers, MaskKey, Normalization};
use crate::nn::ops::alloc::{zeros2, OutOfMemory};
use crate::nn::ops::rng::Rng;
use crate::nn::spec::TrainingSpec;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Network {
    pub input_width: usize,
    pub layers: Vec<Layer>,
}

impl Network {
    /// Fresh weights from `rng`; the encoding and the normalization statistics are supplied
    /// (fitted on the training split by the caller).
    pub fn build(
        spec: &TrainingSpec,
        features: usize,
        encoding: Option<Encoding>,
        mut normalization: Option<Normalization>,
        rng: &mut Rng,
    ) -> Result<Network, OutOfMemory> {
        let mut width = features;
        let mut layers = Vec::new();
        if let Some(mut encoding) = encoding {
            encoding.init_tables(rng)?;
            width = encoding.width();
            layers.push(Layer::Encoding(encoding));
        }
        for spec in &spec.model.layers {
            if let Some(layer) = spec.build(width, rng, &mut normalization)? {
                width = layer.width(width);
                layers.push(layer);
            }
        }
        Ok(Network {
            input_width: features,
            layers,
        })
    }

    pub fn output_width(&self) -> usize {
        self.layers.iter().fold(self.input_width, |w, l| l.width(w))
    }

    /// The layers' regularization terms.
    pub fn penalty(&self) -> f64 {
        self.layers.iter().map(Layer::penalty).sum()
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
            layer.forward(
                input,
                &mut rest[0],
                dropout.map(|k| k.for_layer(i)),
                threads,
            );
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
        let first_trained = self.layers.iter().position(Layer::is_trained);
        for i in (0..self.layers.len()).rev() {
            // Gradients flow to the input of layer i only if a trained layer lies below it.
            let wants_dx = first_trained.is_some_and(|f| f < i);
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
            self.layers[i].backward(
                input,
                buf,
                fused && i == last,
                ws.grads[i].as_mut(),
                dx,
                threads,
            );
        }
    }
}

/// All buffers a forward (and backward) pass needs for up to `capacity` rows,
/// allocated once and reused for every batch.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub layers: Vec<LayerBuffers>,
    pub grads: Vec<Option<Grads>>,
}

impl Workspace {
    pub fn new(net: &Network, capacity: usize, training: bool) -> Result<Workspace, OutOfMemory> {
        let mut width = net.input_width;
        let mut layers = Vec::with_capacity(net.layers.len());
        for layer in &net.layers {
            width = layer.width(width);
            let aux = layer.keeps_z(training);
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
            .map(|l| if training { l.gradients() } else { Ok(None) })
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
