//! Every matrix product of the engine goes through here, so the GEMM backend and
//! the operand layouts can be tuned in one place.
//!
//! Backed by the `gemm` crate (runtime-dispatched AVX-512/AVX2 kernels). Results are
//! deterministic for a fixed thread count: the k-reduction of each output element
//! always happens in the same order on one thread.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Products with fewer multiply-adds than this run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// `dst = a · b`, or `dst += a · b` when `accumulate`. Any strides (transposed views
/// included); `threads` ≤ 1 runs on the calling thread.
pub(crate) fn matmul(
    mut dst: ArrayViewMut2<'_, f32>,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions differ");
    assert_eq!(dst.dim(), (m, n), "destination shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    if narrow(dst.view_mut(), a, b, accumulate) {
        return;
    }
    // Waking the pool costs more than a small product takes; gemm keeps
    // the k order per element either way, so this choice changes no bit.
    let parallelism = if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let (d_rs, d_cs) = (dst.strides()[0], dst.strides()[1]);
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    // SAFETY: the shapes were checked above, the pointers and strides come from live
    // ndarray views of exactly those shapes, and `dst` is borrowed mutably so it
    // aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs,
            d_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Products no wider than one AVX-512 register: an output layer of up to 16 units and its
/// kernel gradient. gemm packs and tiles for wide outputs, which costs many times the
/// arithmetic of such a product. Here each output row is one
/// masked register summed over k. Returns false (gemm's turn) for wider products, for a
/// `b` or `dst` whose rows are not contiguous, and on CPUs without AVX-512.
fn narrow(
    dst: ArrayViewMut2<'_, f32>,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    accumulate: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let n = b.ncols();
        let contiguous_rows = b.strides()[1] == 1 && dst.strides()[1] == 1;
        if n <= NARROW_UNITS && contiguous_rows && is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature, `matmul` checked the shapes, n fits a register
            // and the rows of `b` and `dst` are contiguous: `narrow_avx512`'s contract.
            unsafe { narrow_avx512(dst, a, b, accumulate) };
            return true;
        }
    }
    let _ = (dst, a, b, accumulate);
    false
}

/// The widest product `narrow` takes: one register of f32.
pub(crate) const NARROW_UNITS: usize = 16;

/// Eight output rows at a time, so that eight independent sums hide the FMA latency.
///
/// # Safety
/// The CPU must have AVX-512F; `dst` must be `a.nrows() × b.ncols()`, `a.ncols() == b.nrows()`,
/// `b.ncols() <= NARROW_UNITS`, and the rows of `b` and `dst` contiguous.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn narrow_avx512(
    mut dst: ArrayViewMut2<'_, f32>,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let product = Narrow {
        a: a.as_ptr(),
        a_rs: a.strides()[0],
        a_cs: a.strides()[1],
        b: b.as_ptr(),
        b_rs: b.strides()[0],
        dst: dst.as_mut_ptr(),
        dst_rs: dst.strides()[0],
        k,
        mask: ((1u32 << b.ncols()) - 1) as u16,
        accumulate,
    };
    let mut first = 0;
    while first < m {
        // SAFETY: each call covers rows `first..first + R` with `R <= m - first`, so every row
        // it touches is a row of `a` and `dst`; the rest is this function's own contract.
        first += unsafe {
            match m - first {
                8.. => product.rows::<8>(first),
                7 => product.rows::<7>(first),
                6 => product.rows::<6>(first),
                5 => product.rows::<5>(first),
                4 => product.rows::<4>(first),
                3 => product.rows::<3>(first),
                2 => product.rows::<2>(first),
                _ => product.rows::<1>(first),
            }
        };
    }
}

/// A narrow product by its pointers and strides (elements), taken from live views.
#[cfg(target_arch = "x86_64")]
struct Narrow {
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    dst: *mut f32,
    dst_rs: isize,
    k: usize,
    /// The output columns: the low `n` bits.
    mask: u16,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
impl Narrow {
    /// Rows `first..first + R` of `dst`, each one masked register summed over k in k order;
    /// returns R.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, the pointers and strides must come from live views as
    /// `narrow_avx512` requires, and `first + R` must not exceed the rows of `a` and `dst`.
    #[inline(always)]
    unsafe fn rows<const R: usize>(&self, first: usize) -> usize {
        use std::arch::x86_64::*;
        let first = first as isize;
        // Register-only intrinsics need only the CPU feature, which the contract gives.
        // SAFETY: register-only.
        let zero = unsafe { _mm512_setzero_ps() };
        let mut acc = [zero; R];
        for p in 0..self.k as isize {
            // SAFETY: row p < k of `b` is in the view; the mask loads only its first
            // `b.ncols()` elements, which are contiguous.
            let bp = unsafe { _mm512_maskz_loadu_ps(self.mask, self.b.offset(p * self.b_rs)) };
            for (r, sum) in acc.iter_mut().enumerate() {
                // SAFETY: element (first + r, p) of `a`: first + r < the rows of `a` by the
                // caller's contract, p < k = its columns.
                let value = unsafe {
                    *self
                        .a
                        .offset((first + r as isize) * self.a_rs + p * self.a_cs)
                };
                // SAFETY: register-only, as above.
                *sum = unsafe { _mm512_fmadd_ps(_mm512_set1_ps(value), bp, *sum) };
            }
        }
        for (r, &sum) in acc.iter().enumerate() {
            // SAFETY: row first + r of `dst` is in the view (caller's contract); the mask
            // touches only its first `b.ncols()` contiguous elements, the output columns.
            unsafe {
                let out = self.dst.offset((first + r as isize) * self.dst_rs);
                let sum = match self.accumulate {
                    true => _mm512_add_ps(_mm512_maskz_loadu_ps(self.mask, out), sum),
                    false => sum,
                };
                _mm512_mask_storeu_ps(out, self.mask, sum);
            }
        }
        R
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn filled(r: usize, c: usize, salt: f32) -> Array2<f32> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            ((i * 31 + j * 17) % 13) as f32 * 0.25 - 1.5 + salt
        })
    }

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| f64::from(a[[i, p]]) * f64::from(b[[p, j]]))
                .sum::<f64>() as f32
        })
    }

    #[test]
    fn agrees_with_naive_for_every_transpose_and_odd_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (64, 1, 65),
            (5, 130, 3),
            (128, 64, 10),
            (70, 33, 16),
            (9, 300, 1),
            (13, 7, 15),
        ] {
            for threads in [1, 2] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a_store = if ta {
                        filled(k, m, 0.1)
                    } else {
                        filled(m, k, 0.1)
                    };
                    let b_store = if tb {
                        filled(n, k, -0.3)
                    } else {
                        filled(k, n, -0.3)
                    };
                    let a = if ta { a_store.t() } else { a_store.view() };
                    let b = if tb { b_store.t() } else { b_store.view() };
                    let expected = naive(a, b);
                    let mut dst = Array2::from_elem((m, n), 9.0f32);
                    matmul(dst.view_mut(), a, b, false, threads);
                    let mut acc = Array2::from_elem((m, n), 1.0f32);
                    matmul(acc.view_mut(), a, b, true, threads);
                    for ((&d, &e), &s) in dst.iter().zip(expected.iter()).zip(acc.iter()) {
                        assert!(
                            (d - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{m}x{k}x{n} {ta} {tb}: {d} vs {e}"
                        );
                        assert!((s - e - 1.0).abs() <= 1e-4 * (1.0 + e.abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn column_major_destination() {
        let a = filled(4, 6, 0.0);
        let b = filled(6, 5, 0.5);
        let mut dst_t = Array2::zeros((5, 4));
        matmul(
            dst_t.view_mut().reversed_axes(),
            a.view(),
            b.view(),
            false,
            1,
        );
        let expected = naive(a.view(), b.view());
        for ((i, j), &e) in expected.indexed_iter() {
            assert!((dst_t[[j, i]] - e).abs() < 1e-4);
        }
    }
}

/// Manual: `cargo test --release --lib -- --ignored --nocapture w1_gemm_shapes`.
#[cfg(test)]
mod bench {
    use super::*;
    use ndarray::Array2;

    fn time(label: &str, reps: usize, mut f: impl FnMut()) {
        f();
        let t = std::time::Instant::now();
        for _ in 0..reps {
            f();
        }
        let per = t.elapsed().as_secs_f64() / reps as f64;
        println!("{label:<44} {:8.1} us", per * 1e6);
    }

    #[test]
    #[ignore = "timing, run by hand in release"]
    fn w1_gemm_shapes() {
        let threads = std::env::var("GEMM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        let a = Array2::from_elem((128, 784), 0.5f32);
        let w = Array2::from_elem((784, 256), 0.25f32);
        let w_t = Array2::from_elem((256, 784), 0.25f32);
        let dz = Array2::from_elem((128, 256), 0.1f32);
        let a_t = Array2::from_elem((784, 128), 0.5f32);
        let mut z = Array2::zeros((128, 256));
        let mut dw = Array2::zeros((784, 256));
        let mut dx = Array2::zeros((128, 784));
        let reps = 200;
        time("fwd  Z=A·W [128x784]·[784x256]", reps, || {
            matmul(z.view_mut(), a.view(), w.view(), false, threads)
        });
        time("dW = Aᵀ·dZ, Aᵀ as view", reps, || {
            matmul(dw.view_mut(), a.t(), dz.view(), false, threads)
        });
        time("dW = (dZᵀ·A)ᵀ, transposed destination", reps, || {
            matmul(
                dw.view_mut().reversed_axes(),
                dz.t(),
                a.view(),
                false,
                threads,
            )
        });
        time("dW = Aᵀ·dZ, Aᵀ as copy", reps, || {
            matmul(dw.view_mut(), a_t.view(), dz.view(), false, threads)
        });
        time("dX = dZ·Wᵀ, Wᵀ as view", reps, || {
            matmul(dx.view_mut(), dz.view(), w.t(), false, threads)
        });
        time("dX = dZ·Wᵀ, Wᵀ as copy", reps, || {
            matmul(dx.view_mut(), dz.view(), w_t.view(), false, threads)
        });
        // The layouts must agree exactly (same k order per element).
        let mut dx_copy = Array2::zeros((128, 784));
        matmul(dx_copy.view_mut(), dz.view(), w_t.view(), false, threads);
        matmul(dx.view_mut(), dz.view(), w.t(), false, threads);
        assert_eq!(dx, dx_copy);
        let gflop = 2.0 * 128.0 * 784.0 * 256.0 / 1e9;
        println!("each product is {gflop:.3} GFLOP; threads {threads}");
    }
}
