//! Inverted dropout: in training each activation is zeroed with probability `rate`
//! and the kept ones scaled by 1/(1−rate), so the expected activation is unchanged and
//! evaluation is the identity.
//!
//! Masks are counter-based: element `e` of a batch keeps or drops on a keyed hash of
//! `e`, not on the next draw of a sequential RNG. So a shard of the batch computes its
//! part of the mask on its own thread and the whole mask is the same however the batch
//! is split, and the loop vectorises (16 hashes per AVX-512 instruction sequence).

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::layers::{Cost, Place};
use crate::nn::ops::activation::widest;

pub(crate) const NAME: &str = "dropout";
pub(crate) const KIND: &str = "Dropout";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DropoutSpec {
    /// Fraction of activations zeroed during training, in [0, 1).
    #[schema(minimum = 0, exclusive_maximum = 1)]
    pub rate: f64,
}

impl DropoutSpec {
    pub(crate) fn check(&self, place: &Place<'_>) -> Result<(), SpecError> {
        if (0.0..1.0).contains(&self.rate) {
            Ok(())
        } else {
            Err(SpecError::range(
                format!("{}.rate", place.at),
                "in [0, 1)",
                self.rate,
            ))
        }
    }
}

/// No parameters; per row its output, and in training the mask and the gradient.
pub(crate) fn cost(width: u128) -> Cost {
    Cost {
        parameters: 0,
        kernel: 0,
        trained: 0,
        width,
        per_row_training: 3 * width,
        per_row_forward: width,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Dropout {
    pub rate: f32,
}

impl Dropout {
    pub fn new(spec: &DropoutSpec) -> Dropout {
        Dropout {
            rate: spec.rate as f32,
        }
    }

    /// In training (`key` given, a rate above 0) draws and applies the mask, kept in
    /// `mask` for the backward pass; otherwise the identity (and `mask`, which a forward-only
    /// workspace leaves empty, is not touched).
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        mask: &mut Array2<f32>,
        mut out: ArrayViewMut2<'_, f32>,
        key: Option<MaskKey>,
    ) {
        match key {
            Some(key) if self.rate > 0.0 => {
                let mask = mask.slice_mut(s![..x.nrows(), ..]);
                forward_train(self.rate, x, mask, out, key)
            }
            _ => out.assign(&x),
        }
    }

    /// ∂L/∂x from ∂L/∂out through the mask of the last training `forward`.
    pub fn backward(
        &self,
        mask: ArrayView2<'_, f32>,
        d_out: ArrayView2<'_, f32>,
        mut d_in: ArrayViewMut2<'_, f32>,
    ) {
        if self.rate > 0.0 {
            backward(mask, d_out, d_in);
        } else {
            d_in.assign(&d_out);
        }
    }
}

/// The mask key of one batch, and where the rows being processed start in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MaskKey {
    pub key: u64,
    pub first_row: usize,
}

impl MaskKey {
    /// The key of the dropout layer at `layer`, so two dropout layers draw independent
    /// masks from one batch key.
    pub fn for_layer(self, layer: usize) -> MaskKey {
        let mut k = self.key ^ (layer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        k = (k ^ (k >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        MaskKey {
            key: k ^ (k >> 32),
            first_row: self.first_row,
        }
    }
}

/// A 32-bit avalanche permutation (Wellons' lowbias32): every input bit flips each
/// output bit with probability ~1/2.
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x21F0_AAAD);
    x ^= x >> 15;
    x = x.wrapping_mul(0x735A_2D97);
    x ^ (x >> 15)
}

/// Two keyed rounds: the mask bits of element `e` under the 64-bit key `k`.
#[inline(always)]
fn mask_bits(k: (u32, u32), e: u32) -> u32 {
    mix(mix(e ^ k.0) ^ k.1)
}

widest! {
    /// Mask and product in one pass over a contiguous block whose first element has
    /// index `first` in the batch.
    fn apply(key: (u32, u32), first: u32, threshold: u32, keep: f32, x: &[f32], m: &mut [f32], o: &mut [f32]) {
        for (i, ((m, o), &x)) in m.iter_mut().zip(o.iter_mut()).zip(x).enumerate() {
            let k = if mask_bits(key, first.wrapping_add(i as u32)) >= threshold { keep } else { 0.0 };
            *m = k;
            *o = x * k;
        }
    }
}

/// Draws the mask (0 or 1/(1−rate) per element) of these rows into `mask` and applies
/// it; an element is dropped when its 32 hash bits fall below rate·2³².
fn forward_train(
    rate: f32,
    x: ArrayView2<'_, f32>,
    mut mask: ArrayViewMut2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    key: MaskKey,
) {
    let keep = 1.0 / (1.0 - rate);
    let threshold = (f64::from(rate) * 4_294_967_296.0).min(f64::from(u32::MAX)) as u32;
    // Element indices wrap at 2³² (a batch of over 4 billion activations): harmless,
    // the key still differs from batch to batch.
    let first = (key.first_row as u64).wrapping_mul(x.ncols() as u64) as u32;
    let halves = (key.key as u32, (key.key >> 32) as u32);
    apply(
        halves,
        first,
        threshold,
        keep,
        x.as_slice().expect("contiguous input"),
        mask.as_slice_mut().expect("contiguous mask"),
        out.as_slice_mut().expect("contiguous output"),
    );
}

/// ∂L/∂x = ∂L/∂out ⊙ mask.
fn backward(mask: ArrayView2<'_, f32>, d_out: ArrayView2<'_, f32>, d_in: ArrayViewMut2<'_, f32>) {
    Zip::from(d_in)
        .and(&d_out)
        .and(&mask)
        .for_each(|d, &g, &k| *d = g * k);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::Layer;
    use crate::nn::model::network::{Network, Workspace};
    use ndarray::{s, Array2};

    fn key(k: u64) -> MaskKey {
        MaskKey {
            key: k,
            first_row: 0,
        }
    }

    #[test]
    fn training_preserves_the_mean_and_draws_new_masks() {
        let x = Array2::from_elem((400, 250), 2.0f32);
        let (mut mask, mut out) = (Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim()));
        for (i, rate) in [0.2f32, 0.5, 0.9].into_iter().enumerate() {
            forward_train(
                rate,
                x.view(),
                mask.view_mut(),
                out.view_mut(),
                key(i as u64),
            );
            let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
            assert!(
                (mean - 2.0).abs() < 0.02 * 2.0 / f64::from(1.0 - rate).sqrt(),
                "rate {rate}: {mean}"
            );
            let dropped = out.iter().filter(|&&v| v == 0.0).count() as f64 / out.len() as f64;
            assert!(
                (dropped - f64::from(rate)).abs() < 0.01,
                "rate {rate}: dropped {dropped}"
            );
            assert!(out.iter().all(|&v| v == 0.0 || v == 2.0 / (1.0 - rate)));
        }
        let first = mask.clone();
        forward_train(0.9, x.view(), mask.view_mut(), out.view_mut(), key(7));
        assert_ne!(first, mask, "each batch gets a fresh mask");
    }

    #[test]
    fn masks_show_no_pattern_across_rows_columns_or_consecutive_keys() {
        // Neighbouring elements, rows and keys must be independent: count how often
        // two "kept" decisions coincide, which is 0.25 for independent halves.
        let x = Array2::from_elem((256, 128), 1.0f32);
        let (mut a, mut b, mut out) = (
            Array2::zeros(x.raw_dim()),
            Array2::zeros(x.raw_dim()),
            Array2::zeros(x.raw_dim()),
        );
        forward_train(0.5, x.view(), a.view_mut(), out.view_mut(), key(100));
        forward_train(0.5, x.view(), b.view_mut(), out.view_mut(), key(101));
        let both = |p: &mut dyn Iterator<Item = (f32, f32)>| {
            let v: Vec<bool> = p.map(|(u, w)| u > 0.0 && w > 0.0).collect();
            v.iter().filter(|&&t| t).count() as f64 / v.len() as f64
        };
        let next_col = both(&mut a.iter().zip(a.iter().skip(1)).map(|(&u, &w)| (u, w)));
        let next_row = both(&mut a.iter().zip(a.iter().skip(128)).map(|(&u, &w)| (u, w)));
        let next_key = both(&mut a.iter().zip(b.iter()).map(|(&u, &w)| (u, w)));
        for (what, p) in [("column", next_col), ("row", next_row), ("key", next_key)] {
            assert!((p - 0.25).abs() < 0.01, "{what}: {p}");
        }
    }

    #[test]
    fn a_batch_split_into_shards_gets_the_unsplit_mask() {
        let x = Array2::from_shape_fn((9, 13), |(i, j)| (i * 13 + j) as f32);
        let (mut whole, mut out) = (Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim()));
        forward_train(0.3, x.view(), whole.view_mut(), out.view_mut(), key(5));
        let mut parts = Array2::zeros(x.raw_dim());
        for (lo, hi) in [(0, 4), (4, 9)] {
            let k = MaskKey {
                key: 5,
                first_row: lo,
            };
            let mut o = Array2::zeros((hi - lo, 13));
            forward_train(
                0.3,
                x.slice(s![lo..hi, ..]),
                parts.slice_mut(s![lo..hi, ..]),
                o.view_mut(),
                k,
            );
            assert_eq!(o, out.slice(s![lo..hi, ..]));
        }
        assert_eq!(parts, whole);
    }

    #[test]
    fn rate_zero_and_evaluation_are_the_identity() {
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32 - 4.0);
        for (rate, train) in [(0.0f32, true), (0.5, false)] {
            let net = Network {
                input_width: 3,
                layers: vec![Layer::Dropout(Dropout { rate })],
            };
            let mut ws = Workspace::new(&net, 5, true).unwrap();
            net.forward(x.view(), &mut ws, train.then_some(key(2)), 1);
            assert_eq!(net.output(&ws, 5), x);
        }
    }
}
