//! The optimizer pass after each batch: adds the shards' gradients (in shard order)
//! and updates every parameter buffer in the same pass (`Optimizer::update_sum`).
//! Updates are element-wise, so neither the blocks nor the split across threads
//! change a bit. An embedding table is updated only in the rows a shard touched (each
//! row a part of its own), so the others and their moments stay as they were.

use ndarray::Array2;
use smallvec::SmallVec;

use crate::nn::layers::{DenseGrads, Grads, Layer, TableGrads};
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

/// Visits every parameter buffer in a fixed order (the encoding's tables row by row;
/// each dense layer's kernel, then bias) with its gradients and moments.
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
        let other = others.first().map(|ws| ws.grads[i].as_ref());
        let (d, g) = match (layer, grads) {
            (Layer::Dense(d), Some(Grads::Dense(g))) => (d, g),
            (Layer::Encoding(e), Some(Grads::Tables(g))) => {
                let other = other.map(|o| match o {
                    Some(Grads::Tables(t)) => t,
                    _ => unreachable!("table gradients in every shard"),
                });
                let TableGrads {
                    tables, touched, ..
                } = g;
                let shards = tables.iter_mut().zip(touched.iter_mut()).enumerate();
                for (table, (k, (grad, touched))) in e.tables_mut().zip(shards) {
                    let other = other.map(|o| (&o.tables[k], o.touched[k].as_slice()));
                    let moments = next_moments();
                    visit_rows(table, grad, touched, other, moments, &mut visit);
                }
                continue;
            }
            _ => continue,
        };
        let gather = |f: fn(&DenseGrads) -> &[f32]| -> &'a [f32] {
            match other {
                Some(Some(Grads::Dense(g))) => f(g),
                Some(_) => unreachable!("dense gradients in every shard"),
                None => &[],
            }
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

/// The parts of one table: one per row either shard touched. The first shard's list
/// becomes that union, so its next pass clears every row the sum wrote.
fn visit_rows<'a>(
    table: &'a mut Array2<f32>,
    grad: &'a mut Array2<f32>,
    touched: &mut Vec<u32>,
    other: Option<(&'a Array2<f32>, &[u32])>,
    moments: [&'a mut [f32]; MAX_MOMENTS],
    visit: &mut impl FnMut(Part<'a>),
) {
    let dim = table.ncols();
    let rows = match other {
        Some((_, theirs)) => union(touched, theirs),
        None => touched.clone(),
    };
    let params = pick_rows(table.as_slice_mut().expect("contiguous"), dim, &rows);
    let grads = pick_rows(grad.as_slice_mut().expect("contiguous"), dim, &rows);
    let mut moment_rows: [Vec<&'a mut [f32]>; MAX_MOMENTS] = Default::default();
    for (m, buf) in moment_rows.iter_mut().zip(moments) {
        *m = pick_rows(buf, dim, &rows);
    }
    let mut moment_rows = moment_rows.map(Vec::into_iter);
    for ((&r, param), grad) in rows.iter().zip(params).zip(grads) {
        let r = r as usize;
        let mut ms: [&mut [f32]; MAX_MOMENTS] = Default::default();
        for (m, row) in ms.iter_mut().zip(moment_rows.iter_mut()) {
            *m = row.next().unwrap_or_default();
        }
        visit(Part {
            param,
            grad,
            other: other.map_or(&[], |(theirs, _)| {
                &theirs.as_slice().expect("contiguous")[r * dim..(r + 1) * dim]
            }),
            reg: Reg::default(),
            moments: ms,
        });
    }
    *touched = rows;
}

/// The rows in `a` or `b` (both ascending), ascending.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut all = Vec::with_capacity(a.len() + b.len());
    all.extend_from_slice(a);
    all.extend_from_slice(b);
    all.sort_unstable();
    all.dedup();
    all
}

/// Rows `rows` (ascending) of a buffer of rows of `dim` values, as disjoint slices.
fn pick_rows<'a>(buf: &'a mut [f32], dim: usize, rows: &[u32]) -> Vec<&'a mut [f32]> {
    if buf.is_empty() {
        return Vec::new();
    }
    let mut picked = Vec::with_capacity(rows.len());
    let (mut rest, mut next) = (buf, 0);
    for &r in rows {
        let r = r as usize;
        let (_, tail) = std::mem::take(&mut rest).split_at_mut((r - next) * dim);
        let (row, tail) = tail.split_at_mut(dim);
        picked.push(row);
        (rest, next) = (tail, r + 1);
    }
    picked
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

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::nn::data::cell;
    use crate::nn::layers::encoding::{EncodedColumn, How};
    use crate::nn::layers::{Dense, Encoding};
    use crate::nn::ops::rng::{Rng, Stream};
    use crate::nn::spec::{
        Activation, AdamSpec, DenseSpec, Initializer, LossKind, OptimizerSpec, SgdSpec,
    };
    use crate::nn::train::step::{forward_backward, TrainingStep};

    /// An embedded column of 6 slots (5 kept levels, 1 out-of-vocabulary) into a softmax.
    fn net() -> Network {
        let mut rng = Rng::new(11, Stream::Init);
        let levels: Vec<String> = (0..5).map(|i| format!("l{i}")).collect();
        let how = How::Embed {
            vocabulary: levels.clone(),
            kept: levels,
            num_oov: 1,
            missing_level: None,
            indicator: false,
            dim: 4,
        };
        let columns = vec![EncodedColumn {
            name: "city".into(),
            drops_missing: false,
            how,
        }];
        let mut encoding = Encoding::new(columns, Vec::new(), None);
        encoding.init_tables(&mut rng).unwrap();
        let spec = DenseSpec {
            units: 3,
            activation: Activation::Softmax,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            kernel_regularizer: None,
        };
        let dense = Dense::new(4, &spec, &mut rng).unwrap();
        Network {
            input_width: 1,
            layers: vec![Layer::Encoding(encoding), Layer::Dense(dense)],
        }
    }

    fn table(net: &mut Network) -> Array2<f32> {
        let Layer::Encoding(e) = &mut net.layers[0] else {
            unreachable!()
        };
        e.tables_mut().next().unwrap().clone()
    }

    /// Steps on batches of level codes, each batch split into `shards`; the table after
    /// each step and the table's first moment after the last.
    fn train(
        spec: &OptimizerSpec,
        shards: usize,
        batches: &[&[u32]],
    ) -> (Vec<Array2<f32>>, Vec<f32>) {
        let mut net = net();
        let optimizer = crate::nn::optim::build(spec);
        let mut moments: Vec<Vec<f32>> = net
            .layers
            .iter()
            .flat_map(Layer::trained_lengths)
            .flat_map(|len| (0..optimizer.moments()).map(move |_| vec![0.0; len]))
            .collect();
        let mut ws: Vec<Workspace> = (0..shards)
            .map(|_| Workspace::new(&net, 8, true).unwrap())
            .collect();
        let mut tables = Vec::new();
        for (t, codes) in batches.iter().enumerate() {
            let x = Array2::from_shape_fn((codes.len(), 1), |(r, _)| cell::level(codes[r]));
            let y = Array2::from_shape_fn((codes.len(), 1), |(r, _)| (codes[r] % 3) as f32);
            let batch = TrainingStep {
                x: x.view(),
                y: y.view(),
                weights: None,
                key: 1,
                loss: LossKind::SparseCategoricalCrossentropy,
                threads: 1,
            };
            forward_backward(&net, &mut ws, &batch);
            let step = Step {
                lr: 0.1,
                iteration: t as u64 + 1,
            };
            apply_updates(&mut net, &mut ws, optimizer.as_ref(), step, &mut moments, 1);
            tables.push(table(&mut net));
        }
        (tables, moments[0].clone())
    }

    /// Adam sums the shards' gradients on the fly; SGD with momentum adds the second
    /// into the first shard's buffer, which that shard must clear before it is read again.
    #[test]
    fn only_the_rows_a_batch_touched_move() {
        let adam = OptimizerSpec::Adam(AdamSpec {
            learning_rate: 0.1,
            ..AdamSpec::default()
        });
        let momentum = OptimizerSpec::Sgd(SgdSpec {
            learning_rate: 0.1,
            momentum: 0.9,
            nesterov: false,
        });
        for spec in [adam, momentum] {
            sparse_and_lazy(&spec);
        }
    }

    fn sparse_and_lazy(spec: &OptimizerSpec) {
        let start = table(&mut net());
        // Step 1 touches slots 1, 2 and 4 (codes 0, 1, 3), split so that the second shard
        // alone has code 3; step 2 touches only slot 1; step 3 slot 4 again, in the second
        // shard alone, where a first shard still holding step 1's sum would add it in.
        let batches: [&[u32]; 3] = [&[0, 1, 0, 3], &[0, 0], &[1, 3]];
        for shards in [1, 2] {
            let (tables, m) = train(spec, shards, &batches);
            for slot in [0, 3, 5] {
                assert_eq!(
                    tables[1].row(slot),
                    start.row(slot),
                    "slot {slot} untouched"
                );
                assert!(m[slot * 4..slot * 4 + 4].iter().all(|&v| v == 0.0));
            }
            for slot in [1, 2, 4] {
                assert_ne!(tables[0].row(slot), start.row(slot), "slot {slot} moved");
            }
            // Lazy moments: slots 2 and 4 keep step 1's values through step 2 (a dense
            // update would move them on the first moment alone).
            for slot in [2, 4] {
                assert_eq!(tables[1].row(slot), tables[0].row(slot), "slot {slot}");
            }
            assert_ne!(tables[1].row(1), tables[0].row(1));
        }
        let (whole, _) = train(spec, 1, &batches);
        let (split, _) = train(spec, 2, &batches);
        for (a, b) in whole.iter().zip(&split) {
            for (u, v) in a.iter().zip(b) {
                assert!((u - v).abs() <= 1e-6, "{u} vs {v}");
            }
        }
    }
}
