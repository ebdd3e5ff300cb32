//! Optimizers with Keras 3's exact update rules (including where epsilon goes).
//!
//! Optimizers hold only hyper-parameters; the moment buffers live with the trainer,
//! so the whole training state is plain data that a checkpoint can store.
//! Each update is one pass over a parameter buffer, with the L1/L2 gradient fused in.

mod adam;
mod rmsprop;
mod sgd;
pub(in crate::nn) mod spec;
pub(in crate::nn) mod update;

pub use adam::{AdamSpec, AdamWSpec};
pub use rmsprop::RmsPropSpec;
pub use sgd::SgdSpec;

use crate::nn::spec::OptimizerSpec;

/// The per-step inputs: learning rate and the 1-based iteration count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub lr: f32,
    pub iteration: u64,
}

/// Kernel regularization, whose gradient `l1·sign(w) + 2·l2·w` joins the loss gradient.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reg {
    pub l1: f32,
    pub l2: f32,
}

impl Reg {
    pub fn is_zero(self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }

    #[inline]
    pub(super) fn grad(self, w: f32) -> f32 {
        let sign = if w > 0.0 {
            1.0
        } else if w < 0.0 {
            -1.0
        } else {
            0.0
        };
        self.l1 * sign + 2.0 * self.l2 * w
    }
}

/// `a += b`, element by element: the two shards' gradients in shard order.
pub(super) fn add_into(a: &mut [f32], b: &[f32]) {
    for (s, &g) in a.iter_mut().zip(b) {
        *s += g;
    }
}

pub(crate) trait Optimizer: Send + Sync {
    /// Moment buffers kept per parameter buffer.
    fn moments(&self) -> usize;
    /// Update one parameter buffer in place from its gradient (one pass).
    fn update(
        &self,
        step: Step,
        param: &mut [f32],
        grad: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    );
    /// `update` from the gradient `a + b` (two shards' gradients). The sum is formed
    /// element by element as `update` would see it, so the bits are the same as
    /// summing first; `a` may be overwritten.
    fn update_sum(
        &self,
        step: Step,
        param: &mut [f32],
        a: &mut [f32],
        b: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    ) {
        add_into(a, b);
        self.update(step, param, a, reg, moments);
    }
}

pub(crate) fn build(spec: &OptimizerSpec) -> Box<dyn Optimizer> {
    match spec {
        OptimizerSpec::Sgd(s) => Box::new(s.build()),
        OptimizerSpec::Adam(s) => Box::new(s.build()),
        OptimizerSpec::AdamW(s) => Box::new(s.build()),
        OptimizerSpec::RmsProp(s) => Box::new(s.build()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::spec::{AdamSpec, AdamWSpec, RmsPropSpec, SgdSpec};

    const GRADS: [[f32; 3]; 3] = [[0.5, -1.0, 2.0], [0.4, -0.5, 1.0], [-0.3, 0.2, 0.7]];
    const START: [f32; 3] = [0.1, -0.2, 0.3];

    fn run(spec: OptimizerSpec, lr: f32) -> Vec<f32> {
        let opt = build(&spec);
        let mut w = START.to_vec();
        let mut store = vec![vec![0.0; 3]; opt.moments()];
        let mut moments: Vec<&mut [f32]> = store.iter_mut().map(|m| m.as_mut_slice()).collect();
        for (t, g) in GRADS.iter().enumerate() {
            let step = Step {
                lr,
                iteration: t as u64 + 1,
            };
            opt.update(step, &mut w, g, Reg::default(), &mut moments);
        }
        w
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// The reference: Keras 3's update rules transcribed in f64, per coordinate.
    fn reference(kind: &str, lr: f64) -> Vec<f64> {
        (0..3)
            .map(|i| {
                let mut w = f64::from(START[i]);
                let (mut m, mut v, mut avg, mut mom) = (0.0, 0.0, 0.0, 0.0);
                for (t, g) in GRADS.iter().enumerate() {
                    let g = f64::from(g[i]);
                    let t = t as i32 + 1;
                    match kind {
                        "sgd" => w -= lr * g,
                        "momentum" => {
                            m = 0.9 * m - lr * g;
                            w += m;
                        }
                        "nesterov" => {
                            m = 0.9 * m - lr * g;
                            w += 0.9 * m - lr * g;
                        }
                        "adam" | "adamw" => {
                            if kind == "adamw" {
                                w -= w * 0.004 * lr;
                            }
                            m += (g - m) * 0.1;
                            v += (g * g - v) * 0.001;
                            let alpha =
                                lr * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                            w -= m * alpha / (v.sqrt() + 1e-7);
                        }
                        "rmsprop_centered_momentum" => {
                            v = 0.9 * v + 0.1 * g * g;
                            avg = 0.9 * avg + 0.1 * g;
                            mom = 0.5 * mom + lr * g / (v - avg * avg + 1e-7).sqrt();
                            w -= mom;
                        }
                        _ => unreachable!(),
                    }
                }
                w
            })
            .collect()
    }

    #[test]
    fn updates_follow_keras_formulas() {
        let sgd = |momentum, nesterov| {
            OptimizerSpec::Sgd(SgdSpec {
                learning_rate: 0.1,
                momentum,
                nesterov,
            })
        };
        close(&run(sgd(0.0, false), 0.1), &reference("sgd", 0.1));
        close(&run(sgd(0.9, false), 0.1), &reference("momentum", 0.1));
        close(&run(sgd(0.9, true), 0.1), &reference("nesterov", 0.1));
        close(
            &run(OptimizerSpec::Adam(AdamSpec::default()), 0.01),
            &reference("adam", 0.01),
        );
        close(
            &run(OptimizerSpec::AdamW(AdamWSpec::default()), 0.01),
            &reference("adamw", 0.01),
        );
        let rms = RmsPropSpec {
            momentum: 0.5,
            centered: true,
            ..RmsPropSpec::default()
        };
        close(
            &run(OptimizerSpec::RmsProp(rms), 0.01),
            &reference("rmsprop_centered_momentum", 0.01),
        );
    }

    #[test]
    fn update_from_two_shards_is_update_from_their_sum() {
        let specs = [
            OptimizerSpec::Adam(AdamSpec::default()),
            OptimizerSpec::AdamW(AdamWSpec::default()),
            OptimizerSpec::Sgd(SgdSpec {
                learning_rate: 0.1,
                momentum: 0.9,
                nesterov: false,
            }),
        ];
        // Long enough for the vector loops and their remainders.
        let n = 37;
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 0.3).collect();
        let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        for spec in specs {
            let opt = build(&spec);
            let run = |two: bool| {
                let mut w: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.1).collect();
                let mut store = vec![vec![0.0f32; n]; opt.moments()];
                for t in 1..=3 {
                    let mut moments: Vec<&mut [f32]> =
                        store.iter_mut().map(|m| m.as_mut_slice()).collect();
                    let step = Step {
                        lr: 0.01,
                        iteration: t,
                    };
                    if two {
                        let mut scratch = a.clone();
                        opt.update_sum(
                            step,
                            &mut w,
                            &mut scratch,
                            &b,
                            Reg::default(),
                            &mut moments,
                        );
                    } else {
                        opt.update(step, &mut w, &sum, Reg::default(), &mut moments);
                    }
                }
                w.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(run(true), run(false), "{spec:?}");
        }
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_the_learning_rate() {
        // m̂ = g and v̂ = g², so the first step is lr·g/|g| (up to epsilon).
        let opt = build(&OptimizerSpec::Adam(AdamSpec::default()));
        let mut w = [0.0f32; 2];
        let (mut m, mut v) = ([0.0f32; 2], [0.0f32; 2]);
        let mut moments = [&mut m[..], &mut v[..]];
        opt.update(
            Step {
                lr: 0.001,
                iteration: 1,
            },
            &mut w,
            &[3.0, -0.02],
            Reg::default(),
            &mut moments,
        );
        assert!(
            (w[0] + 0.001).abs() < 1e-8 && (w[1] - 0.001).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn regularization_gradient_joins_the_update() {
        let opt = build(&OptimizerSpec::Sgd(SgdSpec::default()));
        let mut w = [0.5f32, -0.5, 0.0];
        opt.update(
            Step {
                lr: 1.0,
                iteration: 1,
            },
            &mut w,
            &[0.0; 3],
            Reg { l1: 0.1, l2: 0.2 },
            &mut [],
        );
        // w − (0.1·sign(w) + 2·0.2·w); sign(0) = 0.
        let expected = [0.5 - 0.1 - 0.2, -0.5 + 0.1 + 0.2, 0.0];
        assert!(
            w.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-7),
            "{w:?}"
        );
    }
}
