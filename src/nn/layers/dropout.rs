//! Inverted dropout: in training each activation is zeroed with probability `rate`
//! and the kept ones scaled by 1/(1−rate), so the expected activation is unchanged and
//! evaluation is the identity.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::nn::rng::Rng;

/// Draws a fresh mask (0 or 1/(1−rate) per element) into `mask` and applies it.
/// Each random word gives two 32-bit draws, compared against rate·2³².
pub(crate) fn forward_train(
    rate: f32,
    x: ArrayView2<'_, f32>,
    mut mask: ArrayViewMut2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
    rng: &mut Rng,
) {
    let keep = 1.0 / (1.0 - rate);
    let threshold = (f64::from(rate) * 4_294_967_296.0) as u64;
    let pick = |r: u64| if r >= threshold { keep } else { 0.0 };
    let m = mask.as_slice_mut().expect("contiguous mask");
    let o = out.as_slice_mut().expect("contiguous output");
    let x = x.as_slice().expect("contiguous input");
    // Mask and product in one pass, two draws per pair of elements.
    let mut pairs = m
        .chunks_exact_mut(2)
        .zip(o.chunks_exact_mut(2).zip(x.chunks_exact(2)));
    for (mp, (op, xp)) in &mut pairs {
        let r = rng.next_u64();
        let (k0, k1) = (pick(r & 0xFFFF_FFFF), pick(r >> 32));
        mp[0] = k0;
        mp[1] = k1;
        op[0] = xp[0] * k0;
        op[1] = xp[1] * k1;
    }
    if m.len() % 2 == 1 {
        let k = pick(rng.next_u64() >> 32);
        let last = m.len() - 1;
        m[last] = k;
        o[last] = x[last] * k;
    }
}

/// ∂L/∂x = ∂L/∂out ⊙ mask.
pub(crate) fn backward(
    mask: ArrayView2<'_, f32>,
    d_out: ArrayView2<'_, f32>,
    d_in: ArrayViewMut2<'_, f32>,
) {
    Zip::from(d_in)
        .and(&d_out)
        .and(&mask)
        .for_each(|d, &g, &k| *d = g * k);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::network::{Layer, Network, Workspace};
    use crate::nn::rng::Stream;
    use ndarray::Array2;

    #[test]
    fn training_preserves_the_mean_and_draws_new_masks() {
        let x = Array2::from_elem((400, 250), 2.0f32);
        let mut rng = Rng::new(1, Stream::Dropout);
        let (mut mask, mut out) = (Array2::zeros(x.raw_dim()), Array2::zeros(x.raw_dim()));
        for rate in [0.2f32, 0.5, 0.9] {
            forward_train(rate, x.view(), mask.view_mut(), out.view_mut(), &mut rng);
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
        forward_train(0.9, x.view(), mask.view_mut(), out.view_mut(), &mut rng);
        assert_ne!(first, mask, "each batch gets a fresh mask");
    }

    #[test]
    fn rate_zero_and_evaluation_are_the_identity() {
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32 - 4.0);
        for (rate, train) in [(0.0f32, true), (0.5, false)] {
            let net = Network {
                input_width: 3,
                layers: vec![Layer::Dropout(rate)],
            };
            let mut ws = Workspace::new(&net, 5, true);
            let mut rng = Rng::new(2, Stream::Dropout);
            net.forward(x.view(), &mut ws, train.then_some(&mut rng), 1);
            assert_eq!(net.output(&ws, 5), x);
        }
    }
}
