//! Data parallelism over a mini-batch: the batch's rows are split into shards, and
//! each shard runs forward, loss and backward with its own workspace, on its own
//! thread when the job has two. The optimizer then adds the shards' gradients in a
//! fixed order (`update`).
//!
//! The shard count depends only on the model and the batch size, never on the thread
//! count: a job gives the same bits on one thread (the shards in turn) as on two, and
//! does not depend on `--workers`. Splitting each small product across threads instead
//! would cost a fork-join per product (six per batch).

use std::ops::Range;

use ndarray::{s, ArrayView2};

use crate::nn::layers::{Layer, MaskKey};
use crate::nn::model::network::{Network, Workspace};
use crate::nn::ops::loss::loss_sum_of_batch;
use crate::nn::spec::LossKind;

/// At most this many shards per batch (the machines we target have two cores).
pub(crate) const MAX_SHARDS: usize = 2;
/// A shard narrower than this runs its products at a poor fraction of GEMM's speed.
const MIN_SHARD_ROWS: usize = 16;
/// Below this many multiply-adds per batch forward, a fork-join costs more than half the
/// batch saves: W2 (batch 32, ~10k) stays whole, W1 (~30M) is split.
const MIN_BATCH_MACS: usize = 1 << 22;

/// How many shards a batch of `batch_size` rows is split into for `net`.
pub(crate) fn shard_count(net: &Network, batch_size: usize) -> usize {
    let macs_per_row: usize = net.layers.iter().map(Layer::macs_per_row).sum();
    shard_count_for(macs_per_row as u128, batch_size)
}

/// [`shard_count`] from the kernels' total size, for estimates made before a network
/// exists (its sizes may not even fit a `usize`).
pub(crate) fn shard_count_for(macs_per_row: u128, batch_size: usize) -> usize {
    if batch_size >= MAX_SHARDS * MIN_SHARD_ROWS
        && (batch_size as u128).saturating_mul(macs_per_row) >= MIN_BATCH_MACS as u128
    {
        MAX_SHARDS
    } else {
        1
    }
}

/// The rows of shard `i` of `n` in a batch of `rows` (the first shards get the fewer
/// rows; a shard may be empty when the last batch is tiny, and then contributes zero).
pub(crate) fn rows_of(i: usize, n: usize, rows: usize) -> Range<usize> {
    rows * i / n..rows * (i + 1) / n
}

/// One training batch, as every shard sees it.
pub(crate) struct TrainingStep<'a> {
    pub x: ArrayView2<'a, f32>,
    pub y: ArrayView2<'a, f32>,
    /// Per-row loss weights (class weights).
    pub weights: Option<&'a [f32]>,
    /// The batch's dropout mask key.
    pub key: u64,
    pub loss: LossKind,
    /// Threads this job may use.
    pub threads: usize,
}

/// Forward, loss and backward of the whole batch into `shards` (one workspace per
/// shard): each shard's gradients are its part of the batch-mean gradient, so they
/// add up to the batch's. Returns Σ loss over the batch.
pub(crate) fn forward_backward(
    net: &Network,
    shards: &mut [Workspace],
    batch_step: &TrainingStep<'_>,
) -> f64 {
    let n = shards.len();
    let rows = batch_step.x.nrows();
    // Threads beyond one per shard go to each shard's products (gemm gives the same
    // bits on any thread count).
    let each = (batch_step.threads / n).max(1);
    let one =
        |i: usize, ws: &mut Workspace| run_one(net, ws, batch_step, rows_of(i, n, rows), each);
    let mut sums = [0.0f64; MAX_SHARDS];
    match shards {
        [a, b] if batch_step.threads > 1 => {
            (sums[0], sums[1]) = rayon::join(|| one(0, a), || one(1, b))
        }
        _ => {
            for (i, ws) in shards.iter_mut().enumerate() {
                sums[i] = one(i, ws);
            }
        }
    }
    sums[1..n].iter().fold(sums[0], |total, s| total + s)
}

fn run_one(
    net: &Network,
    ws: &mut Workspace,
    batch_step: &TrainingStep<'_>,
    range: Range<usize>,
    threads: usize,
) -> f64 {
    let rows = range.len();
    let x = batch_step.x.slice(s![range.clone(), ..]);
    let key = MaskKey {
        key: batch_step.key,
        first_row: range.start,
    };
    net.forward(x, ws, Some(key), threads);
    let out = ws.layers.last_mut().expect("at least one layer");
    let sum = loss_sum_of_batch(
        batch_step.loss,
        out.z.slice(s![..rows, ..]),
        out.a.slice(s![..rows, ..]),
        batch_step.y.slice(s![range.clone(), ..]),
        batch_step.weights.map(|w| &w[range]),
        Some(out.d.slice_mut(s![..rows, ..])),
        batch_step.x.nrows(),
    );
    net.backward(x, ws, batch_step.loss.fused(), threads);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::{Dense, Dropout, Grads};
    use crate::nn::ops::rng::{Rng, Stream};
    use crate::nn::spec::{Activation, DenseSpec, Initializer};
    use ndarray::Array2;

    fn dense(inputs: usize, units: usize, activation: Activation, rng: &mut Rng) -> Layer {
        let spec = DenseSpec {
            units,
            activation,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            kernel_regularizer: None,
        };
        Layer::Dense(Dense::new(inputs, &spec, rng).unwrap())
    }

    fn net(widths: &[usize], dropout: bool, rng: &mut Rng) -> Network {
        let mut layers = Vec::new();
        for (i, w) in widths.windows(2).enumerate() {
            let last = i + 2 == widths.len();
            let act = if last {
                Activation::Softmax
            } else {
                Activation::Tanh
            };
            layers.push(dense(w[0], w[1], act, rng));
            if dropout && i == 0 {
                layers.push(Layer::Dropout(Dropout { rate: 0.3 }));
            }
        }
        Network {
            input_width: widths[0],
            layers,
        }
    }

    #[test]
    fn big_batches_are_split_and_small_ones_are_not() {
        let mut rng = Rng::new(1, Stream::Init);
        let w1 = net(&[784, 256, 128, 10], true, &mut rng);
        let w2 = net(&[4, 16, 16, 1], false, &mut rng);
        assert_eq!(shard_count(&w1, 128), 2);
        assert_eq!(shard_count(&w1, 16), 1, "shards too narrow");
        assert_eq!(shard_count(&w2, 32), 1);
        assert_eq!(shard_count(&w2, 4096), 1, "too little work per batch");
        assert_eq!(rows_of(0, 2, 7), 0..3);
        assert_eq!(rows_of(1, 2, 7), 3..7);
    }

    /// The shards' gradients must add up to the gradient of the batch mean, which the
    /// finite-difference checks verify for the unsplit batch; dropout masks included.
    /// A one-row batch (a short last batch) leaves the first shard empty.
    #[test]
    fn shard_gradients_add_up_to_the_batch_gradient() {
        let mut rng = Rng::new(2, Stream::Init);
        let net = net(&[6, 40, 3], true, &mut rng);
        // Reused across batches, as in training: nothing may stay from the last one.
        let mut whole = [Workspace::new(&net, 11, true).unwrap()];
        let mut split = [
            Workspace::new(&net, 6, true).unwrap(),
            Workspace::new(&net, 6, true).unwrap(),
        ];
        for (rows, threads) in [(11, 1), (11, 2), (1, 1), (1, 2)] {
            let x = Array2::from_shape_fn((rows, 6), |_| rng.normal() as f32);
            let y = Array2::from_shape_fn((rows, 1), |(r, _)| (r % 3) as f32);
            let w: Vec<f32> = (0..rows).map(|r| 0.5 + (r % 4) as f32 * 0.25).collect();
            let batch_step = TrainingStep {
                x: x.view(),
                y: y.view(),
                weights: Some(&w),
                key: 99,
                loss: LossKind::SparseCategoricalCrossentropy,
                threads,
            };
            let s1 = forward_backward(&net, &mut whole, &batch_step);
            let s2 = forward_backward(&net, &mut split, &batch_step);
            assert!((s1 - s2).abs() < 1e-9 * s1.abs(), "{s1} vs {s2}");
            for (i, g) in whole[0].grads.iter().enumerate() {
                let (Some(Grads::Dense(g)), Some(Grads::Dense(a)), Some(Grads::Dense(b))) =
                    (g, &split[0].grads[i], &split[1].grads[i])
                else {
                    continue;
                };
                let sum = &a.kernel + &b.kernel;
                for (u, v) in g.kernel.iter().zip(sum.iter()) {
                    assert!((u - v).abs() <= 1e-6 + 1e-5 * u.abs(), "{u} vs {v}");
                }
                let bias = a.bias.as_ref().unwrap() + b.bias.as_ref().unwrap();
                for (u, v) in g.bias.as_ref().unwrap().iter().zip(bias.iter()) {
                    assert!((u - v).abs() <= 1e-6 + 1e-5 * u.abs(), "{u} vs {v}");
                }
            }
        }
    }
}
