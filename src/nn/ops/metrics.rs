//! Metrics, accumulated over batches as Keras does (sample-weighted means).

use std::collections::BTreeMap;

use ndarray::ArrayView2;

use crate::nn::spec::{LossKind, MetricKind};

/// Which accuracy Keras' `"accuracy"` means for this model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccuracyKind {
    /// Prediction > 0.5 equals the 0/1 target, averaged over columns.
    Binary,
    /// argmax of prediction equals argmax of the one-hot target.
    Categorical,
    /// argmax of prediction equals the class index.
    Sparse,
}

impl AccuracyKind {
    /// From the loss, as Keras does; for regression losses from the output width.
    pub fn for_model(loss: LossKind, outputs: usize) -> AccuracyKind {
        match loss {
            LossKind::BinaryCrossentropy => AccuracyKind::Binary,
            LossKind::CategoricalCrossentropy => AccuracyKind::Categorical,
            LossKind::SparseCategoricalCrossentropy => AccuracyKind::Sparse,
            _ if outputs == 1 => AccuracyKind::Binary,
            _ => AccuracyKind::Categorical,
        }
    }
}

pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Weighted sums over the rows seen so far (f64).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    weight: f64,
    correct: f64,
    abs: f64,
    sq: f64,
}

impl Tally {
    pub fn add(
        &mut self,
        pred: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        weights: Option<&[f32]>,
        accuracy: AccuracyKind,
    ) {
        let width = pred.ncols() as f64;
        for (i, (p, t)) in pred.rows().into_iter().zip(y.rows()).enumerate() {
            let w = f64::from(weights.map_or(1.0, |w| w[i]));
            let (p, t) = (p.as_slice().unwrap(), t.as_slice().unwrap());
            let correct = match accuracy {
                AccuracyKind::Binary => {
                    let hits = p
                        .iter()
                        .zip(t)
                        .filter(|(&p, &t)| f32::from(u8::from(p > 0.5)) == t)
                        .count();
                    hits as f64 / width
                }
                AccuracyKind::Categorical => f64::from(u8::from(argmax(p) == argmax(t))),
                AccuracyKind::Sparse => f64::from(u8::from(argmax(p) as f32 == t[0])),
            };
            let (mut abs, mut sq) = (0.0f64, 0.0f64);
            if accuracy != AccuracyKind::Sparse {
                for (&p, &t) in p.iter().zip(t) {
                    let e = f64::from(p - t);
                    abs += e.abs();
                    sq += e * e;
                }
            }
            self.weight += w;
            self.correct += w * correct;
            self.abs += w * abs / width;
            self.sq += w * sq / width;
        }
    }

    /// The requested metrics, keys prefixed (e.g. `"val_"`).
    pub fn values(&self, kinds: &[MetricKind], prefix: &str) -> BTreeMap<String, f64> {
        let mean = |s: f64| {
            if self.weight > 0.0 {
                s / self.weight
            } else {
                0.0
            }
        };
        kinds
            .iter()
            .map(|k| {
                let v = match k {
                    MetricKind::Accuracy => mean(self.correct),
                    MetricKind::Mae => mean(self.abs),
                    MetricKind::Mse => mean(self.sq),
                    MetricKind::Rmse => mean(self.sq).sqrt(),
                };
                (format!("{prefix}{}", k.name()), v)
            })
            .collect()
    }
}
