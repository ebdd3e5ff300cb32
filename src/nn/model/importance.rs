//! Permutation importance (Breiman; scikit-learn's `permutation_importance`): how much the
//! loss on held-out rows rises when one input column's values are shuffled across the
//! rows, which breaks the column's link to the target and keeps its distribution.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::data::Samples;
use crate::nn::error::ModelError;
use crate::nn::model::Model;
use crate::nn::ops::rng::{Rng, Stream};

/// One input column's importance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ToSchema)]
pub struct Importance {
    pub column: String,
    /// Mean rise of the loss over the repeats (negative: the column only added noise).
    pub mean: f64,
    /// Population standard deviation of the rise over the repeats.
    pub std: f64,
}

impl Model {
    /// The importance of each input column on `samples` (held-out rows), `repeats`
    /// seeded shuffles each, largest first. `names` are the columns' names in input order;
    /// columns the model leaves out (identifiers, excluded ones) are not listed.
    pub fn permutation_importance(
        &self,
        samples: Samples<'_>,
        names: &[String],
        repeats: usize,
        seed: u64,
    ) -> Result<Vec<Importance>, ModelError> {
        let base = self.evaluate(samples)?.loss;
        let mut rng = Rng::new(seed, Stream::Importance);
        let mut x: Array2<f32> = samples.x.to_owned();
        let y = samples.y.to_owned();
        let rows = x.nrows();
        let mut out = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate().take(x.ncols()) {
            if !self.reads_input(j) {
                continue;
            }
            let original = x.column(j).to_owned();
            let mut rises = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let mut column = original.to_vec();
                // Fisher–Yates, drawn from the importance stream.
                for i in (1..rows).rev() {
                    column.swap(i, rng.below(i + 1));
                }
                x.column_mut(j)
                    .iter_mut()
                    .zip(&column)
                    .for_each(|(v, &c)| *v = c);
                let shuffled = self.evaluate(Samples::new(x.view(), y.view()))?.loss;
                rises.push(shuffled - base);
            }
            x.column_mut(j).assign(&original);
            let n = rises.len().max(1) as f64;
            let mean = rises.iter().sum::<f64>() / n;
            let std = (rises.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
            out.push(Importance {
                column: name.clone(),
                mean,
                std,
            });
        }
        out.sort_by(|a, b| b.mean.total_cmp(&a.mean));
        Ok(out)
    }
}
