//! Keras `RMSprop`, plain, centered and with momentum.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::optim::{Optimizer, Reg, Step};
use crate::nn::spec::check::{positive, unit_interval};

/// Keras `RMSprop`: learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7, centered false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RmsPropSpec {
    pub learning_rate: f64,
    pub rho: f64,
    pub momentum: f64,
    pub epsilon: f64,
    pub centered: bool,
}

impl Default for RmsPropSpec {
    fn default() -> Self {
        RmsPropSpec {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
        }
    }
}

impl RmsPropSpec {
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        unit_interval("optimizer.rho", self.rho)?;
        unit_interval("optimizer.momentum", self.momentum)?;
        positive("optimizer.epsilon", self.epsilon)
    }

    pub(crate) fn build(&self) -> RmsProp {
        RmsProp {
            rho: self.rho as f32,
            momentum: self.momentum as f32,
            epsilon: self.epsilon as f32,
            centered: self.centered,
        }
    }
}

pub(crate) struct RmsProp {
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
