//! Inference for a handful of rows: each row through each dense layer as one vector–matrix
//! product. gemm's blocked product packs the 784×256 kernel of W1 for every call, ~26 µs
//! for a single row's three products; with the kernel stored [in, out], `x·W` for one row is
//! instead a sum of kernel rows scaled by the inputs, read straight from cache, and inputs
//! that are 0 (most of a CSV-born row) are skipped at no cost in accuracy.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::layers::{Dense, Normalization};
use super::network::{Layer, Network};
use super::spec::Activation;

/// Up to this many rows, `Model::predict` goes row by row; from here on gemm's blocked
/// product, which reads each kernel once per block of rows, is faster.
pub(crate) const MAX_ROWS: usize = 4;

thread_local! {
    /// Two activation buffers and a pre-activation buffer, reused by every call on a thread.
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// The forward pass (dropout off) of each row of `x` into the same row of `out`.
pub(crate) fn forward_rows(net: &Network, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    let widest = net
        .layers
        .iter()
        .fold((net.input_width, net.input_width), |(w, max), l| {
            let w = l.width(w);
            (w, max.max(w))
        })
        .1;
    SCRATCH.with_borrow_mut(|[a, b, z]| {
        for buf in [&mut *a, &mut *b, &mut *z] {
            buf.resize(widest, 0.0);
        }
        for (row, mut target) in x.rows().into_iter().zip(out.rows_mut()) {
            let mut width = row.len();
            for (i, v) in row.iter().enumerate() {
                a[i] = *v;
            }
            for layer in &net.layers {
                match layer {
                    Layer::Normalization(n) => normalize(n, &a[..width], &mut b[..width]),
                    Layer::Dense(d) => {
                        let units = d.units();
                        dense(d, &a[..width], &mut z[..units]);
                        Activation::forward_block(
                            d.activation,
                            &z[..units],
                            &mut b[..units],
                            units,
                        );
                        width = units;
                    }
                    Layer::Dropout(_) => continue,
                }
                std::mem::swap(a, b);
            }
            for (t, v) in target.iter_mut().zip(&a[..width]) {
                *t = *v;
            }
        }
    });
}

fn normalize(n: &Normalization, x: &[f32], out: &mut [f32]) {
    let x = ArrayView2::from_shape((1, x.len()), x).expect("one row");
    let width = out.len();
    let out = ArrayViewMut2::from_shape((1, width), out).expect("one row");
    n.forward(x, out);
}

/// `z = x·W + b` for one row.
fn dense(d: &Dense, x: &[f32], z: &mut [f32]) {
    let kernel = d.kernel.as_slice().expect("a standard-layout kernel");
    match &d.bias {
        Some(b) => z.copy_from_slice(b.as_slice().expect("a contiguous bias")),
        None => z.fill(0.0),
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { accumulate_avx512(x, kernel, z) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { accumulate_avx2(x, kernel, z) };
        }
    }
    accumulate(x, kernel, z);
}

/// Output units per pass over the inputs: 64 accumulators stay in registers (four AVX-512
/// or eight AVX2 registers) while the kernel's rows stream past.
const BLOCK: usize = 64;

/// `z += Σᵢ xᵢ·W[i, :]`, in input order for every unit. A separate multiply and add (no FMA),
/// so every instruction set gives the same bits; skipping xᵢ = 0 adds nothing that could
/// change them.
#[inline(always)]
fn accumulate(x: &[f32], kernel: &[f32], z: &mut [f32]) {
    let width = z.len();
    for start in (0..width).step_by(BLOCK) {
        let end = (start + BLOCK).min(width);
        let rows = x.iter().zip(kernel.chunks_exact(width));
        if let Ok(acc) = <&mut [f32; BLOCK]>::try_from(&mut z[start..end]) {
            let mut local = *acc;
            for (&xi, w) in rows {
                if xi != 0.0 {
                    let w: &[f32; BLOCK] = w[start..end].try_into().expect("a full block");
                    for (a, &wj) in local.iter_mut().zip(w) {
                        *a += xi * wj;
                    }
                }
            }
            *acc = local;
        } else {
            for (&xi, w) in rows {
                if xi != 0.0 {
                    for (a, &wj) in z[start..end].iter_mut().zip(&w[start..end]) {
                        *a += xi * wj;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn accumulate_avx512(x: &[f32], kernel: &[f32], z: &mut [f32]) {
    accumulate(x, kernel, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn accumulate_avx2(x: &[f32], kernel: &[f32], z: &mut [f32]) {
    accumulate(x, kernel, z)
}

#[cfg(test)]
mod tests {
    use ndarray::{array, Array2};

    use super::*;

    fn dense(kernel: Array2<f32>, bias: Option<Vec<f32>>, activation: Activation) -> Layer {
        Layer::Dense(Dense {
            kernel,
            bias: bias.map(Into::into),
            activation,
            l1: 0.0,
            l2: 0.0,
        })
    }

    /// 3 → 2 relu → dropout → 1 linear, worked by hand: the zero inputs skipped, the
    /// dropout the identity, relu cutting the negative unit.
    #[test]
    fn rows_match_the_hand_computed_forward_pass() {
        let net = Network {
            input_width: 3,
            layers: vec![
                dense(
                    array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                    Some(vec![0.5, -10.0]),
                    Activation::Relu,
                ),
                Layer::Dropout(0.5),
                dense(array![[1.0], [-1.0]], None, Activation::Linear),
            ],
        };
        let x = array![[2.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]];
        let mut out = Array2::from_elem((3, 1), f32::NAN);
        forward_rows(&net, x.view(), out.view_mut());
        // [2,1,0]: z = [5.5, -2] → [5.5, 0] → 5.5; [1,1,1]: z = [9.5, 2] → 7.5;
        // [0,0,0]: z = [0.5, -10] → [0.5, 0] → 0.5.
        assert_eq!(out, array![[5.5], [7.5], [0.5]]);
    }
}
