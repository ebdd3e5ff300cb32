//! The optimizer pass after each batch: adds the shards' gradients (in shard order)
//! and updates every parameter buffer in the same pass (`Optimizer::update_sum`).
//! Updates are element-wise, so neither the blocks nor the split across threads
//! change a bit.

use smallvec::SmallVec;

use crate::nn::layers::{DenseGrads, Layer};
use crate::nn::model::network::{Network, Workspace};
use crate::nn::optim::{Optimizer, Reg, Step};
use crate::nn::train::step::MAX_SHARDS;

/// Buffers shorter than this are updated on one thread: splitting costs more.
const PARALLEL_UPDATE_MIN: usize = 1 << 14;
/// Elements per optimizer call, so optimizers that sum before updating do so while
/// the block is in L1.
const BLOCK: usize = 2048;
// `Part` carries one other shard's gradient.
const _: () = assert!(MAX_SHARDS == 2);

/// The most moment buffers an optimizer keeps per parameter buffer (centered RMSprop
/// with momentum).
const MAX_MOMENTS: usize = 3;

/// One parameter buffer (or a range of it) with everything its update needs.
struct Part<'a> {
    param: &'a mut [f32],
    /// The first shard's gradient (scratch for the sum).
    grad: &'a mut [f32],
    /// The second shard's gradient; empty when the batch is not split.
    other: &'a [f32],
    reg: Reg,
    moments: [&'a mut [f32]; MAX_MOMENTS],
}

impl<'a> Part<'a> {
    fn split_at(self, mid: usize) -> (Part<'a>, Part<'a>) {
        let (p1, p2) = self.param.split_at_mut(mid);
        let (g1, g2) = self.grad.split_at_mut(mid);
        let (o1, o2) = self.other.split_at(mid.min(self.other.len()));
        let (mut m1, mut m2): ([&mut [f32]; MAX_MOMENTS], [&mut [f32]; MAX_MOMENTS]) =
            Default::default();
        for (i, m) in self.moments.into_iter().enumerate() {
            (m1[i], m2[i]) = m.split_at_mut(mid.min(m.len()));
        }
        let first = Part {
            param: p1,
            grad: g1,
            other: o1,
            reg: self.reg,
            moments: m1,
        };
        let second = Part {
            param: p2,
            grad: g2,
            other: o2,
            reg: self.reg,
            moments: m2,
        };
        (first, second)
    }

    fn run(self, optimizer: &dyn Optimizer, step: Step, k: usize) {
        let Part {
            param,
            grad,
            other,
            reg,
            mut moments,
        } = self;
        let mut start = 0;
        while start < param.len() {
            let end = (start + BLOCK).min(param.len());
            let (p, g) = (&mut param[start..end], &mut grad[start..end]);
            let mut ms: [&mut [f32]; MAX_MOMENTS] = Default::default();
            for (m, whole) in ms.iter_mut().zip(moments.iter_mut()).take(k) {
                *m = &mut whole[start..end];
            }
            if other.is_empty() {
                optimizer.update(step, p, g, reg, &mut ms[..k]);
            } else {
                optimizer.update_sum(step, p, g, &other[start..end], reg, &mut ms[..k]);
            }
            start = end;
        }
    }
}

fn kernel_grad(g: &DenseGrads) -> &[f32] {
    g.kernel.as_slice().expect("contiguous")
}

fn bias_grad(g: &DenseGrads) -> &[f32] {
    g.bias
        .as_ref()
        .expect("bias gradient")
        .as_slice()
        .expect("contiguous")
}

/// Visits every parameter buffer in a fixed order (each dense layer's kernel, then
/// bias) with its gradients and moments.
fn for_each_part<'a>(
    net: &'a mut Network,
    shards: &'a mut [Workspace],
    moments: &'a mut [Vec<f32>],
    k: usize,
    mut visit: impl FnMut(Part<'a>),
) {
    let (first, others) = shards.split_first_mut().expect("at least one shard");
    let others: &'a [Workspace] = others;
    let mut moments = moments.iter_mut();
    let mut next_moments = || {
        let mut ms: [&mut [f32]; MAX_MOMENTS] = Default::default();
        for m in ms.iter_mut().take(k) {
            *m = moments.next().expect("moments per buffer").as_mut_slice();
        }
        ms
    };
    let layers = net.layers.iter_mut().zip(first.grads.iter_mut());
    for (i, (layer, grads)) in layers.enumerate() {
        let (Layer::Dense(d), Some(g)) = (layer, grads) else {
            continue;
        };
        let gather = |f: fn(&DenseGrads) -> &[f32]| -> &'a [f32] {
            others
                .first()
                .map_or(&[], |ws| f(ws.grads[i].as_ref().expect("dense gradients")))
        };
        visit(Part {
            param: d.kernel.as_slice_mut().expect("contiguous"),
            grad: g.kernel.as_slice_mut().expect("contiguous"),
            other: gather(kernel_grad),
            reg: Reg { l1: d.l1, l2: d.l2 },
            moments: next_moments(),
        });
        if let (Some(b), Some(gb)) = (&mut d.bias, &mut g.bias) {
            visit(Part {
                param: b.as_slice_mut().expect("contiguous"),
                grad: gb.as_slice_mut().expect("contiguous"),
                other: gather(bias_grad),
                reg: Reg::default(),
                moments: next_moments(),
            });
        }
    }
}

/// Buffer halves of one thread's share of a step: a dense layer gives two (kernel, bias).
type Parts<'a> = SmallVec<[Part<'a>; 16]>;

/// One optimizer step from the gradients in `shards` (one workspace per shard).
pub(crate) fn apply_updates(
    net: &mut Network,
    shards: &mut [Workspace],
    optimizer: &dyn Optimizer,
    step: Step,
    moments: &mut [Vec<f32>],
    threads: usize,
) {
    let k = optimizer.moments();
    let params: usize = net.layers.iter().flat_map(Layer::trained_lengths).sum();
    if threads <= 1 || params < PARALLEL_UPDATE_MIN {
        for_each_part(net, shards, moments, k, |part| part.run(optimizer, step, k));
        return;
    }
    // Two halves of the pass, one per thread: each big buffer split in the middle,
    // the small ones whole in the first. Two short lists per step buy a single
    // fork-join instead of one per buffer; inline, so a step allocates nothing.
    let (mut first, mut second) = (Parts::new(), Parts::new());
    for_each_part(net, shards, moments, k, |part| {
        if part.param.len() < PARALLEL_UPDATE_MIN {
            first.push(part);
        } else {
            let mid = (part.param.len() / 2).next_multiple_of(64);
            let (a, b) = part.split_at(mid);
            first.push(a);
            second.push(b);
        }
    });
    rayon::join(
        || first.into_iter().for_each(|p| p.run(optimizer, step, k)),
        || second.into_iter().for_each(|p| p.run(optimizer, step, k)),
    );
}
