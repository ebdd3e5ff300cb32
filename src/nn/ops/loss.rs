//! Losses (Keras definitions) with their gradients.
//!
//! Cross-entropies are computed from the output layer's logits `z` (log-sum-exp,
//! softplus), and their gradient is taken with respect to `z` directly
//! (`softmax − onehot`, `sigmoid − y`), so saturated outputs stay finite.
//! Validation guarantees that a cross-entropy always sits on the matching activation.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::nn::ops::activation::softplus;
use crate::nn::spec::LossKind;

/// Huber's threshold between the quadratic and linear parts (Keras default).
const HUBER_DELTA: f32 = 1.0;

impl LossKind {
    /// Whether `grad` is with respect to the logits (fused) rather than the activations.
    pub(crate) fn fused(self) -> bool {
        matches!(
            self,
            LossKind::BinaryCrossentropy
                | LossKind::CategoricalCrossentropy
                | LossKind::SparseCategoricalCrossentropy
        )
    }
}

/// Σ_i w_i·loss_i over the rows (weights default to 1), accumulated in f64.
/// With `grad`, also writes ∂(Σ_i w_i·loss_i / n)/∂output into it, where `n` is the
/// row count (Keras' `sum_over_batch_size`): w.r.t. `z` when `fused()`, else w.r.t. `a`.
pub(crate) fn loss_sum(
    kind: LossKind,
    z: ArrayView2<'_, f32>,
    a: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    weights: Option<&[f32]>,
    grad: Option<ArrayViewMut2<'_, f32>>,
) -> f64 {
    loss_sum_of_batch(kind, z, a, y, weights, grad, a.nrows())
}

/// `loss_sum` over a shard of a batch of `batch_rows` rows: the gradient is that of the
/// whole batch's mean, so the shards' gradients add up to the batch's.
pub(crate) fn loss_sum_of_batch(
    kind: LossKind,
    z: ArrayView2<'_, f32>,
    a: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    weights: Option<&[f32]>,
    mut grad: Option<ArrayViewMut2<'_, f32>>,
    batch_rows: usize,
) -> f64 {
    let n = a.nrows();
    let width = a.ncols() as f32;
    let mut total = 0.0f64;
    for i in 0..n {
        let w = weights.map_or(1.0, |w| w[i]);
        let (zr, ar, yr) = (z.row(i), a.row(i), y.row(i));
        let (zr, ar, yr) = (
            zr.as_slice().unwrap(),
            ar.as_slice().unwrap(),
            yr.as_slice().unwrap(),
        );
        let scale = w / batch_rows as f32;
        let g = grad.as_mut().map(|g| g.row_mut(i).into_slice().unwrap());
        let row = match kind {
            LossKind::MeanSquaredError => {
                elementwise(ar, yr, g, scale / width, |e| (e * e, 2.0 * e))
            }
            LossKind::MeanAbsoluteError => {
                elementwise(ar, yr, g, scale / width, |e| (e.abs(), sign(e)))
            }
            LossKind::Huber => elementwise(ar, yr, g, scale / width, |e| {
                let abs = e.abs();
                if abs <= HUBER_DELTA {
                    (0.5 * e * e, e)
                } else {
                    (
                        HUBER_DELTA * abs - 0.5 * HUBER_DELTA * HUBER_DELTA,
                        HUBER_DELTA * sign(e),
                    )
                }
            }),
            LossKind::BinaryCrossentropy => binary_ce(zr, ar, yr, g, scale / width),
            LossKind::CategoricalCrossentropy => {
                let lse = log_sum_exp(zr);
                let ysum: f32 = yr.iter().sum();
                if let Some(g) = g {
                    for ((g, &p), &t) in g.iter_mut().zip(ar).zip(yr) {
                        *g = scale * (p * ysum - t);
                    }
                }
                yr.iter()
                    .zip(zr)
                    .map(|(&t, &z)| f64::from(t) * (lse - f64::from(z)))
                    .sum()
            }
            LossKind::SparseCategoricalCrossentropy => {
                let label = yr[0] as usize;
                if let Some(g) = g {
                    for (g, &p) in g.iter_mut().zip(ar) {
                        *g = scale * p;
                    }
                    g[label] -= scale;
                }
                log_sum_exp(zr) - f64::from(zr[label])
            }
        };
        total += f64::from(w) * row;
    }
    total
}

fn sign(e: f32) -> f32 {
    if e > 0.0 {
        1.0
    } else if e < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Mean over the row of `f(a − y).0`; gradient `f(a − y).1 · gscale`.
#[inline]
fn elementwise(
    a: &[f32],
    y: &[f32],
    grad: Option<&mut [f32]>,
    gscale: f32,
    f: impl Fn(f32) -> (f32, f32),
) -> f64 {
    let mut sum = 0.0f64;
    match grad {
        Some(g) => {
            for ((g, &a), &y) in g.iter_mut().zip(a).zip(y) {
                let (l, d) = f(a - y);
                sum += f64::from(l);
                *g = d * gscale;
            }
        }
        None => {
            for (&a, &y) in a.iter().zip(y) {
                sum += f64::from(f(a - y).0);
            }
        }
    }
    sum / a.len() as f64
}

/// Mean over the row of `softplus(z) − y·z` (= −y·ln σ(z) − (1−y)·ln(1−σ(z))).
fn binary_ce(z: &[f32], p: &[f32], y: &[f32], grad: Option<&mut [f32]>, gscale: f32) -> f64 {
    if let Some(g) = grad {
        for ((g, &p), &t) in g.iter_mut().zip(p).zip(y) {
            *g = (p - t) * gscale;
        }
    }
    let sum: f64 = z
        .iter()
        .zip(y)
        .map(|(&z, &t)| f64::from(softplus(z)) - f64::from(t) * f64::from(z))
        .sum();
    sum / z.len() as f64
}

fn log_sum_exp(z: &[f32]) -> f64 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(max) + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    fn value(kind: LossKind, z: Array2<f32>, a: Array2<f32>, y: Array2<f32>) -> f64 {
        loss_sum(kind, z.view(), a.view(), y.view(), None, None)
    }

    #[test]
    fn closed_form_values() {
        let a = array![[1.0f32, 3.0]];
        let y = array![[0.0f32, 0.5]];
        assert_eq!(
            value(LossKind::MeanSquaredError, a.clone(), a.clone(), y.clone()),
            (1.0 + 6.25) / 2.0
        );
        assert_eq!(
            value(LossKind::MeanAbsoluteError, a.clone(), a.clone(), y.clone()),
            (1.0 + 2.5) / 2.0
        );
        // Huber (δ = 1): 0.5·e² inside, |e| − 0.5 outside.
        let e = array![[0.5f32, -3.0]];
        assert_eq!(
            value(LossKind::Huber, e.clone(), e, Array2::zeros((1, 2))),
            (0.125 + 2.5) / 2.0
        );
        // BCE at logit 0 is ln 2 whatever the target.
        let bce = value(
            LossKind::BinaryCrossentropy,
            array![[0.0f32]],
            array![[0.5f32]],
            array![[1.0f32]],
        );
        assert!((bce - std::f64::consts::LN_2).abs() < 1e-7);
        // Sparse CE with equal logits over 4 classes is ln 4.
        let z = Array2::from_elem((1, 4), 2.0f32);
        let p = Array2::from_elem((1, 4), 0.25f32);
        let sce = value(
            LossKind::SparseCategoricalCrossentropy,
            z.clone(),
            p.clone(),
            array![[2.0f32]],
        );
        assert!((sce - 4f64.ln()).abs() < 1e-7);
        let onehot = array![[0.0f32, 0.0, 1.0, 0.0]];
        assert!((value(LossKind::CategoricalCrossentropy, z, p, onehot) - sce).abs() < 1e-12);
    }

    #[test]
    fn saturated_logits_give_finite_loss_and_gradient() {
        let z = array![[200.0f32, -200.0, 0.0]];
        let p = array![[1.0f32, 0.0, 0.0]];
        let mut g = Array2::zeros((1, 3));
        let l = loss_sum(
            LossKind::SparseCategoricalCrossentropy,
            z.view(),
            p.view(),
            array![[1.0f32]].view(),
            None,
            Some(g.view_mut()),
        );
        assert!((l - 400.0).abs() < 1e-3, "{l}");
        assert_eq!(g, array![[1.0, -1.0, 0.0]]);
        let zb = array![[-120.0f32]];
        let lb = loss_sum(
            LossKind::BinaryCrossentropy,
            zb.view(),
            array![[0.0f32]].view(),
            array![[1.0f32]].view(),
            None,
            None,
        );
        assert!((lb - 120.0).abs() < 1e-4, "{lb}");
    }
}
