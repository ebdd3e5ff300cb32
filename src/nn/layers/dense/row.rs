//! The dense layer's one-row kernel, for predicting a handful of rows. gemm's blocked
//! product packs the whole kernel on every call, many times the arithmetic of one row; with
//! the kernel stored [in, out], `x·W` for one row is instead a sum of kernel rows scaled by
//! the inputs, read straight from cache, and inputs that are 0 (most of a CSV-born row) are
//! skipped at no cost in accuracy.

use crate::nn::layers::Dense;

/// `z = x·W + b` for one row; `nonzero` is room for the positions of x's non-zero values.
pub(super) fn pre_activation(d: &Dense, x: &[f32], nonzero: &mut [u32], z: &mut [f32]) {
    let kernel = d.kernel.as_slice().expect("a standard-layout kernel");
    match &d.bias {
        Some(b) => z.copy_from_slice(b.as_slice().expect("a contiguous bias")),
        None => z.fill(0.0),
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the functions are compiled for.
            unsafe {
                let count = list_nonzero_avx512(x, nonzero);
                return accumulate_avx512(x, &nonzero[..count], kernel, z);
            }
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let count = list_nonzero(x, 0, nonzero, 0);
            // SAFETY: as above.
            return unsafe { accumulate_avx2(x, &nonzero[..count], kernel, z) };
        }
    }
    let count = list_nonzero(x, 0, nonzero, 0);
    accumulate::<BLOCK, 8>(x, &nonzero[..count], kernel, z);
}

/// Writes the positions (`first` + index) of x's non-zero values to `nonzero` from `count`
/// on; returns the new count. Without a branch per value: whether a value is zero is as
/// good as random.
fn list_nonzero(x: &[f32], first: usize, nonzero: &mut [u32], mut count: usize) -> usize {
    for (i, &v) in x.iter().enumerate() {
        nonzero[count] = (first + i) as u32;
        count += usize::from(v != 0.0);
    }
    count
}

/// As `list_nonzero`, sixteen values per step: one compare, one compressing store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn list_nonzero_avx512(x: &[f32], nonzero: &mut [u32]) -> usize {
    use std::arch::x86_64::*;
    assert!(nonzero.len() >= x.len(), "room for every position");
    let mut count = 0;
    let mut positions = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        // SAFETY: `chunk` holds 16 floats, and at most 16 positions are stored at
        // `count`, which is below the chunk's end ≤ x.len() ≤ nonzero.len().
        unsafe {
            let values = _mm512_loadu_ps(chunk.as_ptr());
            let mask = _mm512_cmpneq_ps_mask(values, _mm512_setzero_ps());
            _mm512_mask_compressstoreu_epi32(
                nonzero.as_mut_ptr().add(count).cast(),
                mask,
                positions,
            );
            count += mask.count_ones() as usize;
        }
        positions = _mm512_add_epi32(positions, _mm512_set1_epi32(16));
    }
    list_nonzero(tail, x.len() - tail.len(), nonzero, count)
}

/// Output units per pass over the inputs: this many accumulators stay in registers (eight
/// of AVX-512's 32, eight of AVX2's 16) while the kernel's rows stream past. Units left
/// over go one vector (16 or 8 units) at a time, then one by one.
const BLOCK_AVX512: usize = 128;
const BLOCK: usize = 64;

/// `z += Σᵢ xᵢ·W[i, :]` over the listed non-zero xᵢ, in input order for every unit, one
/// fused multiply-add per product: the instruction sets that run this (AVX-512, AVX2 with
/// FMA, and `mul_add` elsewhere) all round once per product, so all give the same bits;
/// skipping xᵢ = 0 adds nothing that could change them.
#[inline(always)]
fn accumulate<const B: usize, const NARROW: usize>(
    x: &[f32],
    nonzero: &[u32],
    kernel: &[f32],
    z: &mut [f32],
) {
    let width = z.len();
    let mut start = 0;
    while start < width {
        let left = width - start;
        start += if left >= B {
            block::<B>(x, nonzero, kernel, width, start, z)
        } else if left >= NARROW {
            block::<NARROW>(x, nonzero, kernel, width, start, z)
        } else {
            for &i in nonzero {
                let (xi, row) = (x[i as usize], &kernel[i as usize * width + start..][..left]);
                for (a, &wj) in z[start..].iter_mut().zip(row) {
                    *a = xi.mul_add(wj, *a);
                }
            }
            left
        };
    }
}

/// Units `start..start + B` of `z`, summed in registers; returns B.
#[inline(always)]
fn block<const B: usize>(
    x: &[f32],
    nonzero: &[u32],
    kernel: &[f32],
    width: usize,
    start: usize,
    z: &mut [f32],
) -> usize {
    let acc: &mut [f32; B] = (&mut z[start..start + B]).try_into().expect("B units");
    let mut local = *acc;
    for &i in nonzero {
        let i = i as usize;
        let (xi, w) = (x[i], &kernel[i * width + start..][..B]);
        let w: &[f32; B] = w.try_into().expect("B weights");
        for (a, &wj) in local.iter_mut().zip(w) {
            *a = xi.mul_add(wj, *a);
        }
    }
    *acc = local;
    B
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn accumulate_avx512(x: &[f32], nonzero: &[u32], kernel: &[f32], z: &mut [f32]) {
    accumulate::<BLOCK_AVX512, 16>(x, nonzero, kernel, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn accumulate_avx2(x: &[f32], nonzero: &[u32], kernel: &[f32], z: &mut [f32]) {
    accumulate::<BLOCK, 8>(x, nonzero, kernel, z)
}

#[cfg(test)]
mod tests {
    use ndarray::{array, Array2};

    use crate::nn::layers::{Dense, Dropout, Layer};
    use crate::nn::model::few_rows::forward_rows;
    use crate::nn::model::network::Network;
    use crate::nn::model::scratch::RowBuffers;
    use crate::nn::ops::activation::Activation;

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
                Layer::Dropout(Dropout { rate: 0.5 }),
                dense(array![[1.0], [-1.0]], None, Activation::Linear),
            ],
        };
        let x = array![[2.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]];
        let mut out = Array2::from_elem((3, 1), f32::NAN);
        forward_rows(&net, x.view(), out.view_mut(), &mut RowBuffers::default());
        // [2,1,0]: z = [5.5, -2] → [5.5, 0] → 5.5; [1,1,1]: z = [9.5, 2] → 7.5;
        // [0,0,0]: z = [0.5, -10] → [0.5, 0] → 0.5.
        assert_eq!(out, array![[5.5], [7.5], [0.5]]);
    }

    /// Widths with full and partial blocks on every instruction set (300 → 260 → 70), half
    /// the inputs zero: the same bits as a plain loop fusing the same products in input
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
        forward_rows(&net, x.view(), out.view_mut(), &mut RowBuffers::default());
        let plain = |input: &[f32], kernel: &Array2<f32>| -> Vec<f32> {
            (0..kernel.ncols())
                .map(|j| {
                    input
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v != 0.0)
                        .fold(0.0f32, |acc, (i, v)| v.mul_add(kernel[[i, j]], acc))
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
