//! Fully connected layer: `a = f(x·W + b)`, kernel `W` stored as [in, out].
//!
//! [in, out] (Keras' own layout) makes the forward product a plain row-major GEMM;
//! the two backward products use transposed views, which `matmul` handles by strides.

mod row;
mod spec;

pub use spec::{DenseSpec, Initializer, RegularizerSpec};

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use safetensors::SafeTensors;

use crate::nn::layers::RowScratch;
use crate::nn::model::tensor_codec::{read_f32, TensorList};
use crate::nn::ops::activation::Activation;
use crate::nn::ops::alloc::{zeros1, zeros2, OutOfMemory};
use crate::nn::ops::matmul::{matmul, NARROW_UNITS};
use crate::nn::ops::rng::Rng;

pub(crate) const NAME: &str = "dense";
pub(crate) const KIND: &str = "Dense";

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dense {
    pub kernel: Array2<f32>,
    pub bias: Option<Array1<f32>>,
    pub activation: Activation,
    pub l1: f32,
    pub l2: f32,
}

/// Keras' truncated normal: drawn within ±2σ, with σ corrected for the truncation.
const TRUNCATION_STD: f64 = 0.879_625_661_034_239_8;

fn initial_kernel(
    init: Initializer,
    fan_in: usize,
    fan_out: usize,
    rng: &mut Rng,
) -> Result<Array2<f32>, OutOfMemory> {
    let (fi, fo) = (fan_in as f64, fan_out as f64);
    let uniform = |limit: f64, rng: &mut Rng| ((rng.uniform() * 2.0 - 1.0) * limit) as f32;
    let truncated = |std: f64, rng: &mut Rng| loop {
        let v = rng.normal();
        if v.abs() <= 2.0 {
            return (v * std / TRUNCATION_STD) as f32;
        }
    };
    let mut draw: Box<dyn FnMut() -> f32 + '_> = match init {
        Initializer::GlorotUniform => Box::new(move || uniform((6.0 / (fi + fo)).sqrt(), rng)),
        Initializer::HeUniform => Box::new(move || uniform((6.0 / fi).sqrt(), rng)),
        Initializer::GlorotNormal => Box::new(move || truncated((2.0 / (fi + fo)).sqrt(), rng)),
        Initializer::HeNormal => Box::new(move || truncated((2.0 / fi).sqrt(), rng)),
        Initializer::LecunNormal => Box::new(move || truncated((1.0 / fi).sqrt(), rng)),
        Initializer::Zeros => Box::new(|| 0.0),
    };
    // Filled in row-major order, the order Keras (and `from_shape_fn`) draws in.
    let mut kernel = zeros2((fan_in, fan_out), "a dense kernel")?;
    kernel.iter_mut().for_each(|w| *w = draw());
    Ok(kernel)
}

impl Dense {
    pub fn new(inputs: usize, spec: &DenseSpec, rng: &mut Rng) -> Result<Dense, OutOfMemory> {
        let reg = spec.kernel_regularizer.unwrap_or_default();
        Ok(Dense {
            kernel: initial_kernel(spec.kernel_initializer, inputs, spec.units, rng)?,
            bias: spec
                .use_bias
                .then(|| zeros1(spec.units, "a dense bias"))
                .transpose()?,
            activation: spec.activation,
            l1: reg.l1 as f32,
            l2: reg.l2 as f32,
        })
    }

    /// The layer stored by `push_tensors` under `name`, for `width` inputs.
    pub fn read(
        spec: &DenseSpec,
        st: &SafeTensors<'_>,
        name: &str,
        width: usize,
    ) -> Result<Dense, String> {
        let kernel = read_f32(st, &format!("{name}.kernel"), &[width, spec.units])?;
        let bias = match spec.use_bias {
            true => Some(Array1::from(read_f32(
                st,
                &format!("{name}.bias"),
                &[spec.units],
            )?)),
            false => None,
        };
        let reg = spec.kernel_regularizer.unwrap_or_default();
        Ok(Dense {
            kernel: Array2::from_shape_vec((width, spec.units), kernel).expect("length checked"),
            bias,
            activation: spec.activation,
            l1: reg.l1 as f32,
            l2: reg.l2 as f32,
        })
    }

    /// `{name}.kernel` [in, out] and, with a bias, `{name}.bias`.
    pub fn push_tensors(&self, name: &str, list: &mut TensorList) {
        list.push(
            format!("{name}.kernel"),
            self.kernel.shape().to_vec(),
            self.kernel.iter().copied(),
        );
        if let Some(b) = &self.bias {
            list.push(format!("{name}.bias"), vec![b.len()], b.iter().copied());
        }
    }

    pub fn units(&self) -> usize {
        self.kernel.ncols()
    }

    pub fn params(&self) -> usize {
        self.kernel.len() + self.bias.as_ref().map_or(0, |b| b.len())
    }

    /// `z = x·W + b`, `a = f(z)`; bias and activation in one pass per row.
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        mut z: ArrayViewMut2<'_, f32>,
        mut a: ArrayViewMut2<'_, f32>,
        threads: usize,
    ) {
        matmul(z.view_mut(), x, self.kernel.view(), false, threads); // [rows, out]
        if let Some(b) = &self.bias {
            let b = b.as_slice().expect("contiguous bias");
            for mut zr in z.rows_mut() {
                // Slices, not ndarray iterators: this loop must vectorise.
                for (v, &b) in zr
                    .as_slice_mut()
                    .expect("contiguous rows")
                    .iter_mut()
                    .zip(b)
                {
                    *v += b;
                }
            }
        }
        let width = self.units();
        Activation::forward_block(
            self.activation,
            z.as_slice().expect("contiguous rows"),
            a.as_slice_mut().expect("contiguous rows"),
            width,
        );
    }

    /// One row (the few-rows predict path): `out[..units] = f(x·W + b)`; returns `units`.
    pub fn forward_row(&self, x: &[f32], out: &mut [f32], scratch: RowScratch<'_>) -> usize {
        let units = self.units();
        let z = &mut scratch.z[..units];
        row::pre_activation(self, x, scratch.nonzero, z);
        Activation::forward_block(self.activation, z, &mut out[..units], units);
        units
    }

    /// Given `d` = ∂L/∂a (or ∂L/∂z already when `d_is_dz`), writes the kernel and bias
    /// gradients and, if asked, ∂L/∂x.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        z: ArrayView2<'_, f32>,
        a: ArrayView2<'_, f32>,
        mut d: ArrayViewMut2<'_, f32>,
        d_is_dz: bool,
        grads: &mut DenseGrads,
        dx: Option<ArrayViewMut2<'_, f32>>,
        threads: usize,
    ) {
        let needs_dz = !d_is_dz && self.activation != Activation::Linear;
        let db = grads.bias.as_mut().map(|db| {
            db.fill(0.0);
            db.as_slice_mut().expect("contiguous bias gradient")
        });
        if needs_dz {
            Activation::backward_block(
                self.activation,
                z.as_slice().expect("contiguous rows"),
                a.as_slice().expect("contiguous rows"),
                d.as_slice_mut().expect("contiguous rows"),
                self.units(),
            );
        }
        if let Some(db) = db {
            for dr in d.rows() {
                let dr = dr.as_slice().expect("contiguous rows");
                for (s, &g) in db.iter_mut().zip(dr) {
                    *s += g;
                }
            }
        }
        if self.units() <= NARROW_UNITS {
            // Xᵀ·dZ straight into dW: a product `matmul` sums one register per row.
            matmul(grads.kernel.view_mut(), x.t(), d.view(), false, threads);
        } else {
            // Written as dZᵀ·X into the transposed [out, in] view of dW: with Xᵀ as the left
            // operand instead, gemm splits this shape poorly over two threads.
            matmul(
                grads.kernel.view_mut().reversed_axes(),
                d.t(),
                x,
                false,
                threads,
            );
        }
        if let Some(dx) = dx {
            matmul(dx, d.view(), self.kernel.t(), false, threads); // [rows, in]
        }
    }

    /// The regularization term `l1·Σ|w| + l2·Σw²` of the kernel.
    pub fn penalty(&self) -> f64 {
        if self.l1 == 0.0 && self.l2 == 0.0 {
            return 0.0;
        }
        let (l1, l2) = (f64::from(self.l1), f64::from(self.l2));
        self.kernel
            .iter()
            .map(|&w| l1 * f64::from(w).abs() + l2 * f64::from(w) * f64::from(w))
            .sum()
    }
}

/// Gradient buffers shaped like one dense layer's parameters.
#[derive(Clone, Debug)]
pub(crate) struct DenseGrads {
    pub kernel: Array2<f32>,
    pub bias: Option<Array1<f32>>,
}

impl DenseGrads {
    pub fn for_layer(layer: &Dense) -> Result<DenseGrads, OutOfMemory> {
        Ok(DenseGrads {
            kernel: zeros2(layer.kernel.dim(), "a kernel gradient")?,
            bias: layer
                .bias
                .as_ref()
                .map(|b| zeros1(b.len_of(Axis(0)), "a bias gradient"))
                .transpose()?,
        })
    }
}
