//! Activation functions over one row of a layer, forward and backward (Keras definitions).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Linear,
    Sigmoid,
    Relu,
    Tanh,
    Softmax,
    LeakyRelu,
    Elu,
    Gelu,
    Softplus,
    Swish,
}

/// Keras' `leaky_relu` activation slope for negative inputs.
const LEAKY_SLOPE: f32 = 0.2;

#[inline]
pub(crate) fn sigmoid(z: f32) -> f32 {
    // Two branches so exp never overflows.
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// tanh as a clamped rational function (the form Eigen, and so TensorFlow on CPU,
/// uses): branch-free, so a layer's loop vectorises, where libm's `tanhf` is a
/// per-element call that dominated small networks' epochs. Error < 5e-7 absolute.
#[inline]
pub(crate) fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = A[6];
    for &a in A[..6].iter().rev() {
        p = p * x2 + a;
    }
    let q = ((B[3] * x2 + B[2]) * x2 + B[1]) * x2 + B[0];
    x * p / q
}

/// log(1 + e^z) without overflow.
#[inline]
pub(crate) fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// erf for GELU (Keras' default is the exact, erf-based GELU). Numerical Recipes'
/// erfc Chebyshev fit, relative error < 1.2e-7, evaluated in f64.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

#[inline]
fn gelu(z: f32) -> f32 {
    let x = f64::from(z);
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

#[inline]
fn gelu_grad(z: f32) -> f32 {
    let x = f64::from(z);
    let cdf = 0.5 * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf + x * pdf) as f32
}

/// Generic (not `dyn`) so each activation's loop is inlined and vectorisable.
#[inline]
fn map_into(z: &[f32], a: &mut [f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in a.iter_mut().zip(z) {
        *o = f(v);
    }
}

#[inline]
fn scale_by(d: &mut [f32], z: &[f32], a: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((g, &zv), &av) in d.iter_mut().zip(z).zip(a) {
        *g *= f(zv, av);
    }
}

/// Defines `$name` to run `$body` compiled for AVX-512 or AVX2 when the CPU has them
/// (the loops in `forward`/`backward` are inlined into it, so they vectorise to the
/// wider lanes). Element-wise IEEE operations give the same bits at any width.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the feature the function is compiled for.
                    return unsafe { wide($($arg),*) };
                }
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use widest;

impl Activation {
    widest! {
        /// `forward` over a contiguous block of rows `width` wide: one call for
        /// element-wise activations, so small layers do not pay per-row overhead.
        fn forward_block(act: Activation, z: &[f32], a: &mut [f32], width: usize) {
            if act == Activation::Softmax {
                for (zr, ar) in z.chunks_exact(width).zip(a.chunks_exact_mut(width)) {
                    act.forward(zr, ar);
                }
            } else {
                act.forward(z, a);
            }
        }
    }

    widest! {
        /// `backward` over a contiguous block of rows `width` wide.
        fn backward_block(act: Activation, z: &[f32], a: &[f32], d: &mut [f32], width: usize) {
            if act == Activation::Softmax {
                let rows = z.chunks_exact(width).zip(a.chunks_exact(width));
                for ((zr, ar), dr) in rows.zip(d.chunks_exact_mut(width)) {
                    act.backward(zr, ar, dr);
                }
            } else {
                act.backward(z, a, d);
            }
        }
    }

    /// `a = f(z)` for one row. Always inlined, so `widest` compiles it for wide lanes.
    #[inline(always)]
    pub(crate) fn forward(self, z: &[f32], a: &mut [f32]) {
        match self {
            Activation::Linear => a.copy_from_slice(z),
            Activation::Relu => {
                for (o, &v) in a.iter_mut().zip(z) {
                    *o = v.max(0.0);
                }
            }
            Activation::LeakyRelu => {
                for (o, &v) in a.iter_mut().zip(z) {
                    *o = if v > 0.0 { v } else { LEAKY_SLOPE * v };
                }
            }
            Activation::Sigmoid => map_into(z, a, sigmoid),
            Activation::Tanh => map_into(z, a, tanh),
            Activation::Elu => map_into(z, a, |v| if v > 0.0 { v } else { v.exp_m1() }),
            Activation::Gelu => map_into(z, a, gelu),
            Activation::Softplus => map_into(z, a, softplus),
            Activation::Swish => map_into(z, a, |v| v * sigmoid(v)),
            Activation::Softmax => {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for (o, &v) in a.iter_mut().zip(z) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                a.iter_mut().for_each(|o| *o *= inv);
            }
        }
    }

    /// Turn `d` = ∂L/∂a into ∂L/∂z in place, for one row, given its `z` and `a`.
    #[inline(always)]
    pub(crate) fn backward(self, z: &[f32], a: &[f32], d: &mut [f32]) {
        match self {
            Activation::Linear => {}
            // Selects rather than branches, so these loops vectorise.
            Activation::Relu => scale_by(d, z, a, |z, _| if z > 0.0 { 1.0 } else { 0.0 }),
            Activation::LeakyRelu => {
                scale_by(d, z, a, |z, _| if z > 0.0 { 1.0 } else { LEAKY_SLOPE })
            }
            Activation::Sigmoid => scale_by(d, z, a, |_, a| a * (1.0 - a)),
            Activation::Tanh => scale_by(d, z, a, |_, a| 1.0 - a * a),
            Activation::Elu => scale_by(d, z, a, |z, a| if z > 0.0 { 1.0 } else { a + 1.0 }),
            Activation::Gelu => scale_by(d, z, a, |z, _| gelu_grad(z)),
            Activation::Softplus => scale_by(d, z, a, |z, _| sigmoid(z)),
            Activation::Swish => scale_by(d, z, a, |z, _| {
                let s = sigmoid(z);
                s * (1.0 + z * (1.0 - s))
            }),
            Activation::Softmax => {
                let dot: f32 = d.iter().zip(a).map(|(g, a)| g * a).sum();
                for (g, &av) in d.iter_mut().zip(a) {
                    *g = av * (*g - dot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Activation; 10] = [
        Activation::Linear,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Softmax,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Softplus,
        Activation::Swish,
    ];

    /// L = Σ c_j a_j(z) with fixed weights c, so ∂L/∂a = c.
    fn objective(act: Activation, z: &[f32], c: &[f32]) -> f64 {
        let mut a = vec![0.0; z.len()];
        act.forward(z, &mut a);
        a.iter()
            .zip(c)
            .map(|(&a, &c)| f64::from(a) * f64::from(c))
            .sum()
    }

    #[test]
    fn every_activation_matches_finite_differences() {
        // Points away from the kinks of relu/leaky_relu/elu, where the derivative is defined.
        let z = [-2.7f32, -0.9, -0.31, 0.23, 0.8, 1.9, 3.3];
        let c = [0.7f32, -1.1, 0.4, 1.3, -0.6, 0.9, 0.2];
        for act in ALL {
            let mut a = vec![0.0; z.len()];
            act.forward(&z, &mut a);
            let mut d = c.to_vec();
            act.backward(&z, &a, &mut d);
            for j in 0..z.len() {
                let h = 1e-2f32;
                let (mut zp, mut zm) = (z, z);
                zp[j] += h;
                zm[j] -= h;
                let numeric =
                    (objective(act, &zp, &c) - objective(act, &zm, &c)) / (2.0 * f64::from(h));
                let err = (numeric - f64::from(d[j])).abs();
                assert!(
                    err < 2e-3 * (1.0 + numeric.abs()),
                    "{act:?} z[{j}]: analytic {} numeric {numeric}",
                    d[j]
                );
            }
        }
    }

    #[test]
    fn saturated_inputs_stay_finite() {
        let z = [-1000.0f32, -90.0, 0.0, 90.0, 1000.0];
        for act in ALL {
            let mut a = vec![0.0; z.len()];
            act.forward(&z, &mut a);
            let mut d = vec![1.0; z.len()];
            act.backward(&z, &a, &mut d);
            assert!(
                a.iter().chain(&d).all(|v| v.is_finite()),
                "{act:?}: {a:?} {d:?}"
            );
        }
    }

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f64;
        for i in -20_000..=20_000 {
            let x = i as f32 * 5e-4;
            worst = worst.max((f64::from(tanh(x)) - f64::from(x).tanh()).abs());
        }
        for x in [12.0f32, -30.0, 1e-8, -1e-30, f32::MAX, f32::MIN] {
            worst = worst.max((f64::from(tanh(x)) - f64::from(x).tanh()).abs());
        }
        assert!(worst < 5e-7, "{worst}");
        assert_eq!(tanh(0.0), 0.0);
    }

    #[test]
    fn closed_forms() {
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-7);
        assert_eq!(softplus(0.0), std::f32::consts::LN_2);
        let mut a = [0.0; 3];
        Activation::Softmax.forward(&[1.0, 2.0, 3.0], &mut a);
        let e: f32 = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        assert!((a[2] - 3.0f32.exp() / e).abs() < 1e-6);
    }
}
