//! Finite-difference checks of backpropagation: every loss, dense layers with and
//! without bias, L1/L2, dropout's mask, and whole three-layer networks.

use ndarray::{Array2, ArrayView2};

use crate::nn::layers::{Dense, Dropout, Encoding, Grads, Layer, MaskKey, Normalization};
use crate::nn::model::network::{Network, Workspace};
use crate::nn::ops::loss::loss_sum;
use crate::nn::ops::rng::{Rng, Stream};
use crate::nn::optim::{Reg, Step};
use crate::nn::spec::{Activation, DenseSpec, Initializer, LossKind, RegularizerSpec};

fn dense(
    inputs: usize,
    units: usize,
    activation: Activation,
    bias: bool,
    reg: (f64, f64),
    rng: &mut Rng,
) -> Layer {
    let spec = DenseSpec {
        units,
        activation,
        use_bias: bias,
        kernel_initializer: Initializer::GlorotUniform,
        kernel_regularizer: Some(RegularizerSpec {
            l1: reg.0,
            l2: reg.1,
        }),
    };
    let mut d = Dense::new(inputs, &spec, rng).unwrap();
    if reg.0 > 0.0 {
        // Keep weights clear of L1's kink at 0, which a ±h probe would straddle.
        d.kernel.mapv_inplace(|w| {
            if w.abs() < 0.05 {
                0.05f32.copysign(w)
            } else {
                w
            }
        });
    }
    // Non-zero biases so they matter.
    if let Some(b) = &mut d.bias {
        b.iter_mut()
            .for_each(|v| *v = (rng.uniform() as f32 - 0.5) * 0.4);
    }
    Layer::Dense(d)
}

fn random(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| (rng.normal() * 0.8) as f32)
}

/// Σ loss / rows + penalty, the quantity training minimises.
fn objective(
    net: &Network,
    loss: LossKind,
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    w: &[f32],
) -> f64 {
    let mut ws = Workspace::new(net, x.nrows(), false).unwrap();
    net.forward(x, &mut ws, None, 1);
    let out = net.output(&ws, x.nrows());
    loss_sum(loss, ws.output_logits(x.nrows()), out, y, Some(w), None) / x.nrows() as f64
        + net.penalty()
}

/// Smooth activations only: a ±h probe across a relu kink would measure the wrong
/// slope (the kinked activations are checked away from their kinks in `activation`).
/// Compares analytic gradients (loss + regularization) with central differences.
fn check(net: Network, loss: LossKind, x: Array2<f32>, y: Array2<f32>) {
    let rows = x.nrows();
    let w: Vec<f32> = (0..rows).map(|i| 0.5 + i as f32 * 0.25).collect();
    let mut ws = Workspace::new(&net, rows, true).unwrap();
    net.forward(x.view(), &mut ws, None, 1);
    let last = ws.layers.last_mut().unwrap();
    loss_sum(
        loss,
        last.z.view(),
        last.a.view(),
        y.view(),
        Some(&w),
        Some(last.d.view_mut()),
    );
    net.backward(x.view(), &mut ws, loss.fused(), 1);
    let h = 1e-2f32;
    let mut checked = 0;
    for i in 0..net.layers.len() {
        let Some(grads) = &ws.grads[i] else {
            continue;
        };
        let reg = match &net.layers[i] {
            Layer::Dense(d) => Reg { l1: d.l1, l2: d.l2 },
            _ => Reg::default(),
        };
        let mut probe = net.clone();
        let params: Vec<Vec<f32>> = buffers(&mut probe.layers[i])
            .into_iter()
            .map(|b| b.to_vec())
            .collect();
        for (b, (values, grad)) in params.iter().zip(grad_buffers(grads)).enumerate() {
            // Only a dense kernel (the first buffer) is regularized.
            let reg = if b == 0 && matches!(net.layers[i], Layer::Dense(_)) {
                reg
            } else {
                Reg::default()
            };
            for (j, (&wv, &g)) in values.iter().zip(grad).enumerate() {
                let g = g + reg_grad(reg, wv);
                let mut eval = |delta: f32| {
                    buffers(&mut probe.layers[i])[b][j] = wv + delta;
                    objective(&probe, loss, x.view(), y.view(), &w)
                };
                let numeric = (eval(h) - eval(-h)) / (2.0 * f64::from(h));
                buffers(&mut probe.layers[i])[b][j] = wv;
                let err = (numeric - f64::from(g)).abs();
                assert!(
                    err <= 1e-3 + 1e-2 * numeric.abs(),
                    "{loss:?} layer {i} buffer {b} entry {j}: analytic {g}, numeric {numeric}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

/// A trained layer's parameter buffers, in the order of its gradient buffers.
fn buffers(layer: &mut Layer) -> Vec<&mut [f32]> {
    match layer {
        Layer::Dense(d) => std::iter::once(d.kernel.as_slice_mut().unwrap())
            .chain(d.bias.as_mut().map(|b| b.as_slice_mut().unwrap()))
            .collect(),
        Layer::Encoding(e) => e.tables_mut().map(|t| t.as_slice_mut().unwrap()).collect(),
        Layer::Dropout(_) | Layer::Normalization(_) => Vec::new(),
    }
}

fn grad_buffers(grads: &Grads) -> Vec<&[f32]> {
    match grads {
        Grads::Dense(g) => std::iter::once(g.kernel.as_slice().unwrap())
            .chain(g.bias.as_ref().map(|b| b.as_slice().unwrap()))
            .collect(),
        Grads::Tables(g) => g.tables.iter().map(|t| t.as_slice().unwrap()).collect(),
    }
}

fn reg_grad(reg: Reg, w: f32) -> f32 {
    // The optimizer adds this inside its pass; recover it through a plain SGD step.
    let opt = crate::nn::optim::build(&crate::nn::spec::OptimizerSpec::Sgd(
        crate::nn::spec::SgdSpec {
            learning_rate: 1.0,
            momentum: 0.0,
            nesterov: false,
        },
    ));
    let mut p = [w];
    opt.update(
        Step {
            lr: 1.0,
            iteration: 1,
        },
        &mut p,
        &[0.0],
        reg,
        &mut [],
    );
    w - p[0]
}

fn targets(loss: LossKind, rows: usize, units: usize, rng: &mut Rng) -> Array2<f32> {
    match loss {
        LossKind::SparseCategoricalCrossentropy => {
            Array2::from_shape_fn((rows, 1), |_| rng.below(units) as f32)
        }
        LossKind::CategoricalCrossentropy => {
            let mut y = Array2::zeros((rows, units));
            for r in 0..rows {
                y[[r, rng.below(units)]] = 1.0;
            }
            y
        }
        LossKind::BinaryCrossentropy => {
            Array2::from_shape_fn((rows, units), |_| rng.uniform() as f32)
        }
        _ => random(rows, units, rng),
    }
}

#[test]
fn every_loss_on_a_single_dense_layer() {
    let mut rng = Rng::new(3, Stream::Init);
    let cases = [
        (LossKind::MeanSquaredError, Activation::Tanh),
        (LossKind::MeanAbsoluteError, Activation::Linear),
        (LossKind::Huber, Activation::Linear),
        (LossKind::BinaryCrossentropy, Activation::Sigmoid),
        (LossKind::CategoricalCrossentropy, Activation::Softmax),
        (LossKind::SparseCategoricalCrossentropy, Activation::Softmax),
        (LossKind::MeanSquaredError, Activation::Softmax),
    ];
    for (loss, act) in cases {
        let (rows, inputs, units) = (6, 4, 3);
        let layer = dense(inputs, units, act, true, (0.0, 0.0), &mut rng);
        let net = Network {
            input_width: inputs,
            layers: vec![layer],
        };
        // Scaled inputs so Huber sees both its quadratic and its linear part.
        let x = random(rows, inputs, &mut rng) * 2.0;
        let mut y = targets(loss, rows, units, &mut rng);
        if loss == LossKind::MeanAbsoluteError {
            // Keep every error at least 0.3 from MAE's kink, so ±h probes stay on one side.
            let mut ws = Workspace::new(&net, rows, false).unwrap();
            net.forward(x.view(), &mut ws, None, 1);
            y = net
                .output(&ws, rows)
                .mapv(|a| a + if rng.uniform() < 0.5 { 0.5 } else { -0.5 });
        }
        check(net, loss, x, y);
    }
}

#[test]
fn dense_without_bias_and_with_l1_l2() {
    let mut rng = Rng::new(4, Stream::Init);
    for (bias, reg) in [
        (false, (0.0, 0.0)),
        (true, (0.01, 0.0)),
        (false, (0.0, 0.05)),
        (true, (0.02, 0.03)),
    ] {
        let net = Network {
            input_width: 5,
            layers: vec![dense(5, 2, Activation::Linear, bias, reg, &mut rng)],
        };
        let (x, y) = (random(7, 5, &mut rng), random(7, 2, &mut rng));
        check(net, LossKind::MeanSquaredError, x, y);
    }
}

#[test]
fn three_layer_networks() {
    let mut rng = Rng::new(5, Stream::Init);
    let stacks = [
        (
            [Activation::Tanh, Activation::Sigmoid],
            LossKind::CategoricalCrossentropy,
        ),
        (
            [Activation::Gelu, Activation::Swish],
            LossKind::SparseCategoricalCrossentropy,
        ),
        (
            [Activation::Elu, Activation::Softplus],
            LossKind::MeanSquaredError,
        ),
        (
            [Activation::Softplus, Activation::Tanh],
            LossKind::BinaryCrossentropy,
        ),
    ];
    for ([a1, a2], loss) in stacks {
        let out_act = match loss {
            LossKind::BinaryCrossentropy => Activation::Sigmoid,
            LossKind::MeanSquaredError => Activation::Linear,
            _ => Activation::Softmax,
        };
        let x = random(8, 4, &mut rng);
        let norm = Normalization::adapt(4, x.rows().into_iter());
        let layers = vec![
            Layer::Normalization(norm),
            dense(4, 6, a1, true, (0.0, 0.01), &mut rng),
            Layer::Dropout(Dropout { rate: 0.0 }),
            dense(6, 5, a2, true, (0.005, 0.0), &mut rng),
            dense(5, 3, out_act, true, (0.0, 0.0), &mut rng),
        ];
        let net = Network {
            input_width: 4,
            layers,
        };
        let y = targets(loss, 8, 3, &mut rng);
        check(net, loss, x, y);
    }
}

#[test]
fn dropout_backward_uses_the_forward_mask() {
    // With a fixed mask, the network is a smooth function: check its gradient by
    // replaying the same dropout mask key for every probe.
    let mut rng = Rng::new(6, Stream::Init);
    let net = Network {
        input_width: 3,
        layers: vec![
            dense(3, 8, Activation::Tanh, true, (0.0, 0.0), &mut rng),
            Layer::Dropout(Dropout { rate: 0.5 }),
            dense(8, 2, Activation::Linear, true, (0.0, 0.0), &mut rng),
        ],
    };
    let (x, y) = (random(5, 3, &mut rng), random(5, 2, &mut rng));
    let w = vec![1.0f32; 5];
    let key = MaskKey {
        key: Rng::new(9, Stream::Dropout).next_u64(),
        first_row: 0,
    };
    let objective = |net: &Network| {
        let mut ws = Workspace::new(net, 5, true).unwrap();
        net.forward(x.view(), &mut ws, Some(key), 1);
        let out = net.output(&ws, 5);
        loss_sum(
            LossKind::MeanSquaredError,
            ws.output_logits(5),
            out,
            y.view(),
            Some(&w),
            None,
        ) / 5.0
    };
    let mut ws = Workspace::new(&net, 5, true).unwrap();
    net.forward(x.view(), &mut ws, Some(key), 1);
    let last = ws.layers.last_mut().unwrap();
    loss_sum(
        LossKind::MeanSquaredError,
        last.z.view(),
        last.a.view(),
        y.view(),
        Some(&w),
        Some(last.d.view_mut()),
    );
    net.backward(x.view(), &mut ws, false, 1);
    let Some(Grads::Dense(g)) = &ws.grads[0] else {
        unreachable!()
    };
    let g = g.kernel.clone();
    for j in 0..g.len() {
        let probe = |delta: f32| {
            let mut p = net.clone();
            let Layer::Dense(d) = &mut p.layers[0] else {
                unreachable!()
            };
            d.kernel.as_slice_mut().unwrap()[j] += delta;
            objective(&p)
        };
        let numeric = (probe(1e-2) - probe(-1e-2)) / 2e-2;
        let analytic = f64::from(g.as_slice().unwrap()[j]);
        assert!(
            (numeric - analytic).abs() <= 1e-3 + 1e-2 * numeric.abs(),
            "{j}: {analytic} vs {numeric}"
        );
    }
}

#[test]
fn embedding_tables_of_the_encoding() {
    use crate::nn::data::cell;
    use crate::nn::layers::encoding::{EncodedColumn, How};
    let mut rng = Rng::new(8, Stream::Init);
    let vocabulary: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let columns = vec![
        EncodedColumn {
            name: "city".into(),
            drops_missing: false,
            how: How::Embed {
                kept: vocabulary[..3].to_vec(),
                vocabulary,
                num_oov: 2,
                missing_level: None,
                indicator: true,
                dim: 3,
            },
        },
        EncodedColumn {
            name: "age".into(),
            drops_missing: false,
            how: How::Standardize {
                mean: 1.0,
                inv_std: 0.5,
                indicator: false,
                fill: None,
            },
        },
    ];
    let mut encoding = Encoding::new(columns, Vec::new(), None);
    encoding.init_tables(&mut rng).unwrap();
    // Embedding rows of ±0.05 barely move the loss: larger ones make the check sharp.
    encoding
        .tables_mut()
        .for_each(|t| t.mapv_inplace(|w| w * 10.0));
    let width = encoding.width();
    assert_eq!(width, 3 + 1 + 1);
    let net = Network {
        input_width: 2,
        layers: vec![
            Layer::Encoding(encoding),
            dense(width, 4, Activation::Tanh, true, (0.0, 0.0), &mut rng),
            dense(4, 3, Activation::Softmax, true, (0.0, 0.0), &mut rng),
        ],
    };
    // "d" is not kept (an out-of-vocabulary slot), a missing cell has a level of its
    // own, and one slot is left untouched: its gradient must be zero.
    let city = [
        cell::level(0),
        cell::level(1),
        cell::level(3),
        cell::MISSING,
        cell::level(0),
        cell::level(2),
        cell::level(1),
    ];
    let x = Array2::from_shape_fn((city.len(), 2), |(r, c)| {
        if c == 0 {
            city[r]
        } else {
            r as f32 * 0.7 - 1.0
        }
    });
    let y = targets(
        LossKind::SparseCategoricalCrossentropy,
        city.len(),
        3,
        &mut rng,
    );
    check(net, LossKind::SparseCategoricalCrossentropy, x, y);
}
