//! Keras `Adam` and `AdamW` (Adam with decoupled weight decay).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::ops::activation::widest;
use crate::nn::optim::add_into;
use crate::nn::optim::{Optimizer, Reg, Step};
use crate::nn::spec::check::{finite_at_least, positive, unit_interval};

/// Keras `Adam`: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamSpec {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamSpec {
    fn default() -> Self {
        AdamSpec {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// Keras `AdamW`: Adam's defaults plus weight_decay 0.004 (decoupled, scaled by the rate).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWSpec {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

impl Default for AdamWSpec {
    fn default() -> Self {
        AdamWSpec {
            learning_rate: 0.001,
            weight_decay: 0.004,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }
}

impl AdamSpec {
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        unit_interval("optimizer.beta_1", self.beta_1)?;
        unit_interval("optimizer.beta_2", self.beta_2)?;
        positive("optimizer.epsilon", self.epsilon)
    }

    pub(crate) fn build(&self) -> Adam {
        Adam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon as f32,
            weight_decay: 0.0,
        }
    }
}

impl AdamWSpec {
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        unit_interval("optimizer.beta_1", self.beta_1)?;
        unit_interval("optimizer.beta_2", self.beta_2)?;
        positive("optimizer.epsilon", self.epsilon)?;
        finite_at_least(
            "optimizer.weight_decay",
            self.weight_decay,
            0.0,
            "at least 0",
        )
    }

    pub(crate) fn build(&self) -> Adam {
        Adam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon as f32,
            weight_decay: self.weight_decay as f32,
        }
    }
}

/// Adam, and AdamW when `weight_decay` > 0 (Keras applies `w -= w·wd·lr` first).
pub(crate) struct Adam {
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
