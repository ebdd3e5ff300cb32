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
    /// Two activation buffers, a pre-activation buffer and the positions of an input's
    /// non-zero values, reused by every call on a thread.
    static SCRATCH: RefCell<([Vec<f32>; 3], Vec<u32>)> =
        const { RefCell::new(([Vec::new(), Vec::new(), Vec::new()], Vec::new())) };
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
    SCRATCH.with_borrow_mut(|([a, b, z], nonzero)| {
        for buf in [&mut *a, &mut *b, &mut *z] {
            buf.resize(widest, 0.0);
        }
        nonzero.resize(widest, 0);
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
                        dense(d, &a[..width], nonzero, &mut z[..units]);
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

/// `z = x·W + b` for one row; `nonzero` is room for the positions of x's non-zero values.
fn dense(d: &Dense, x: &[f32], nonzero: &mut [u32], z: &mut [f32]) {
    let kernel = d.kernel.as_slice().expect("a standard-layout kernel");
    // Listed without a branch per value: whether a value is zero is as good as random, and
    // the accumulation below then runs branch-free over the list.
    let mut count = 0;
    for (i, &v) in x.iter().enumerate() {
        nonzero[count] = i as u32;
        count += usize::from(v != 0.0);
    }
    let nonzero = &nonzero[..count];
    match &d.bias {
        Some(b) => z.copy_from_slice(b.as_slice().expect("a contiguous bias")),
        None => z.fill(0.0),
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { accumulate_avx512(x, nonzero, kernel, z) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { accumulate_avx2(x, nonzero, kernel, z) };
        }
    }
    accumulate::<BLOCK>(x, nonzero, kernel, z);
}

/// Output units per pass over the inputs: this many accumulators stay in registers (eight
/// of AVX-512's 32, eight of AVX2's 16) while the kernel's rows stream past.
const BLOCK_AVX512: usize = 128;
const BLOCK: usize = 64;

/// `z += Σᵢ xᵢ·W[i, :]` over the listed non-zero xᵢ, in input order for every unit. A
/// separate multiply and add (no FMA), so every instruction set gives the same bits;
/// skipping xᵢ = 0 adds nothing that could change them.
#[inline(always)]
fn accumulate<const B: usize>(x: &[f32], nonzero: &[u32], kernel: &[f32], z: &mut [f32]) {
    let width = z.len();
    for start in (0..width).step_by(B) {
        let end = (start + B).min(width);
        let rows = nonzero.iter().map(|&i| {
            let i = i as usize;
            (x[i], &kernel[i * width + start..i * width + end])
        });
        if let Ok(acc) = <&mut [f32; B]>::try_from(&mut z[start..end]) {
            let mut local = *acc;
            for (xi, w) in rows {
                let w: &[f32; B] = w.try_into().expect("a full block");
                for (a, &wj) in local.iter_mut().zip(w) {
                    *a += xi * wj;
                }
            }
            *acc = local;
        } else {
            for (xi, w) in rows {
                for (a, &wj) in z[start..end].iter_mut().zip(w) {
                    *a += xi * wj;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn accumulate_avx512(x: &[f32], nonzero: &[u32], kernel: &[f32], z: &mut [f32]) {
    accumulate::<BLOCK_AVX512>(x, nonzero, kernel, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn accumulate_avx2(x: &[f32], nonzero: &[u32], kernel: &[f32], z: &mut [f32]) {
    accumulate::<BLOCK>(x, nonzero, kernel, z)
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

    /// Widths with full and partial blocks on every instruction set (300 → 260 → 70), half
    /// the inputs zero: the same bits as a plain loop summing the same products in input
    /// order.
    #[test]
    fn wide_layers_sum_like_a_plain_loop() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let k1 = Array2::from_shape_fn((300, 260), |_| next());
        let k2 = Array2::from_shape_fn((260, 70), |_| next());
        let x = Array2::from_shape_fn(
            (3, 300),
            |(r, c)| if (r + c) % 2 == 0 { 0.0 } else { next() },
        );
        let net = Network {
            input_width: 300,
            layers: vec![
                dense(k1.clone(), None, Activation::Linear),
                dense(k2.clone(), None, Activation::Linear),
            ],
        };
        let mut out = Array2::from_elem((3, 70), f32::NAN);
        forward_rows(&net, x.view(), out.view_mut());
        let plain = |input: &[f32], kernel: &Array2<f32>| -> Vec<f32> {
            (0..kernel.ncols())
                .map(|j| {
                    input
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v != 0.0)
                        .fold(0.0f32, |acc, (i, v)| acc + v * kernel[[i, j]])
                })
                .collect()
        };
        for (r, row) in x.rows().into_iter().enumerate() {
            let hidden = plain(row.as_slice().unwrap(), &k1);
            let want = plain(&hidden, &k2);
            let got: Vec<u32> = out.row(r).iter().map(|v| v.to_bits()).collect();
            assert_eq!(
                got,
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "row {r}"
            );
        }
    }
}
