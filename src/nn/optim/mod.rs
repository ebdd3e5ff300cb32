//! Optimizers with Keras 3's exact update rules (including where epsilon goes).
//!
//! Optimizers hold only hyper-parameters; the moment buffers live with the trainer,
//! so the whole training state is plain data that a checkpoint can store.
//! Each update is one pass over a parameter buffer, with the L1/L2 gradient fused in.

pub(in crate::nn) mod spec;
pub(in crate::nn) mod update;

use crate::nn::ops::activation::widest;
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
    fn grad(self, w: f32) -> f32 {
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
fn add_into(a: &mut [f32], b: &[f32]) {
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
        OptimizerSpec::Sgd(s) => Box::new(Sgd {
            momentum: s.momentum as f32,
            nesterov: s.nesterov,
        }),
        OptimizerSpec::Adam(s) => Box::new(Adam {
            beta_1: s.beta_1,
            beta_2: s.beta_2,
            epsilon: s.epsilon as f32,
            weight_decay: 0.0,
        }),
        OptimizerSpec::AdamW(s) => Box::new(Adam {
            beta_1: s.beta_1,
            beta_2: s.beta_2,
            epsilon: s.epsilon as f32,
            weight_decay: s.weight_decay as f32,
        }),
        OptimizerSpec::RmsProp(s) => Box::new(RmsProp {
            rho: s.rho as f32,
            momentum: s.momentum as f32,
            epsilon: s.epsilon as f32,
            centered: s.centered,
        }),
    }
}

struct Sgd {
    momentum: f32,
    nesterov: bool,
}

impl Optimizer for Sgd {
    fn moments(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }

    fn update(
        &self,
        step: Step,
        param: &mut [f32],
        grad: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    ) {
        let lr = step.lr;
        if self.momentum == 0.0 {
            for (w, &g) in param.iter_mut().zip(grad) {
                *w -= lr * (g + reg.grad(*w));
            }
            return;
        }
        let mu = self.momentum;
        for ((w, &g), m) in param.iter_mut().zip(grad).zip(moments[0].iter_mut()) {
            let g = g + reg.grad(*w);
            *m = -g * lr + *m * mu;
            *w += if self.nesterov { -g * lr + *m * mu } else { *m };
        }
    }
}

/// Adam, and AdamW when `weight_decay` > 0 (Keras applies `w -= w·wd·lr` first).
struct Adam {
    beta_1: f64,
    beta_2: f64,
    epsilon: f32,
    weight_decay: f32,
}

impl Optimizer for Adam {
    fn moments(&self) -> usize {
        2
    }

    fn update(
        &self,
        step: Step,
        param: &mut [f32],
        grad: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    ) {
        let [alpha, b1, b2, eps] = self.constants(step);
        let decay = self.weight_decay * step.lr;
        let (m, v) = moments.split_at_mut(1);
        if reg.is_zero() && decay == 0.0 {
            adam_plain(
                param,
                grad,
                &mut m[0][..],
                &mut v[0][..],
                [alpha, b1, b2, eps],
            );
            return;
        }
        let it = param
            .iter_mut()
            .zip(grad)
            .zip(m[0].iter_mut())
            .zip(v[0].iter_mut());
        for (((w, &g), m), v) in it {
            let g = g + reg.grad(*w);
            *w -= *w * decay;
            *m += (g - *m) * b1;
            *v += (g * g - *v) * b2;
            *w -= *m * alpha / (v.sqrt() + eps);
        }
    }

    fn update_sum(
        &self,
        step: Step,
        param: &mut [f32],
        a: &mut [f32],
        b: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    ) {
        if !reg.is_zero() || self.weight_decay != 0.0 {
            add_into(a, b);
            return self.update(step, param, a, reg, moments);
        }
        let (m, v) = moments.split_at_mut(1);
        adam_plain_sum(
            param,
            a,
            b,
            &mut m[0][..],
            &mut v[0][..],
            self.constants(step),
        );
    }
}

impl Adam {
    /// The bias-corrected step size α, 1−β₁, 1−β₂ and ε of this step.
    fn constants(&self, step: Step) -> [f32; 4] {
        let t = step.iteration as i32;
        let alpha = (f64::from(step.lr) * (1.0 - self.beta_2.powi(t)).sqrt()
            / (1.0 - self.beta_1.powi(t))) as f32;
        let (b1, b2) = ((1.0 - self.beta_1) as f32, (1.0 - self.beta_2) as f32);
        [alpha, b1, b2, self.epsilon]
    }
}

/// Adam's common case (no regularization, no decay) in one vectorisable pass.
#[inline(always)]
fn adam_step(w: &mut f32, g: f32, m: &mut f32, v: &mut f32, c: [f32; 4]) {
    let [alpha, b1, b2, eps] = c;
    *m += (g - *m) * b1;
    *v += (g * g - *v) * b2;
    *w -= *m * alpha / (v.sqrt() + eps);
}

// Compiled for wider vectors when the CPU has them. Lanes do exactly the scalar IEEE
// operations (Rust never contracts into FMA), so results are bit-identical on every CPU.
widest! {
    fn adam_plain(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], c: [f32; 4]) {
        for (((w, &g), m), v) in param.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            adam_step(w, g, m, v, c);
        }
    }
}

widest! {
    /// `adam_plain` from the gradient `a + b`, summed in the same pass.
    fn adam_plain_sum(param: &mut [f32], a: &[f32], b: &[f32], m: &mut [f32], v: &mut [f32], c: [f32; 4]) {
        let grads = a.iter().zip(b);
        for (((w, (&ga, &gb)), m), v) in param.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut()) {
            adam_step(w, ga + gb, m, v, c);
        }
    }
}

struct RmsProp {
    rho: f32,
    momentum: f32,
    epsilon: f32,
    centered: bool,
}

impl Optimizer for RmsProp {
    fn moments(&self) -> usize {
        1 + usize::from(self.centered) + usize::from(self.momentum > 0.0)
    }

    fn update(
        &self,
        step: Step,
        param: &mut [f32],
        grad: &[f32],
        reg: Reg,
        moments: &mut [&mut [f32]],
    ) {
        let (rho, eps, lr) = (self.rho, self.epsilon, step.lr);
        let (velocity, rest) = moments.split_first_mut().expect("velocity buffer");
        let (average, rest) = if self.centered {
            let (a, r) = rest.split_first_mut().expect("average buffer");
            (Some(a), r)
        } else {
            (None, rest)
        };
        let (mut average, mut momentum) = (average, rest.first_mut());
        for i in 0..param.len() {
            let g = grad[i] + reg.grad(param[i]);
            velocity[i] = rho * velocity[i] + (1.0 - rho) * g * g;
            let denominator = match average.as_deref_mut() {
                Some(avg) => {
                    avg[i] = rho * avg[i] + (1.0 - rho) * g;
                    velocity[i] - avg[i] * avg[i] + eps
                }
                None => velocity[i] + eps,
            };
            let increment = lr * g / denominator.sqrt();
            match momentum.as_deref_mut() {
                Some(mom) => {
                    mom[i] = self.momentum * mom[i] + increment;
                    param[i] -= mom[i];
                }
                None => param[i] -= increment,
            }
        }
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
