//! Keras `SGD`, with momentum and Nesterov momentum.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::optim::{Optimizer, Reg, Step};

/// Keras `SGD`: learning_rate 0.01, momentum 0, nesterov false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SgdSpec {
    pub learning_rate: f64,
    pub momentum: f64,
    pub nesterov: bool,
}

impl Default for SgdSpec {
    fn default() -> Self {
        SgdSpec {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }
}

impl SgdSpec {
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        if (0.0..=1.0).contains(&self.momentum) {
            Ok(())
        } else {
            Err(SpecError::range(
                "optimizer.momentum",
                "in [0, 1]",
                self.momentum,
            ))
        }
    }

    pub(crate) fn build(&self) -> Sgd {
        Sgd {
            momentum: self.momentum as f32,
            nesterov: self.nesterov,
        }
    }
}

pub(crate) struct Sgd {
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
