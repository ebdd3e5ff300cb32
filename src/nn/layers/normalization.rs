//! Keras `Normalization` after `adapt`: each feature standardised with the mean and
//! variance of the training split. Not trained; its statistics travel with the model.

use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut2, Zip};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::nn::error::SpecError;
use crate::nn::layers::{Cost, Place};
use crate::nn::model::tensor_codec::{read_f32, TensorList};

pub(crate) const NAME: &str = "normalization";
pub(crate) const KIND: &str = "Normalization";

/// Keras `Normalization` after `adapt` on the training split; no options.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NormalizationSpec {}

impl NormalizationSpec {
    pub(crate) fn check(&self, place: &Place<'_>) -> Result<(), SpecError> {
        if place.first {
            Ok(())
        } else {
            Err(SpecError::incompatible(
                place.at,
                "normalization must be the first layer: its statistics are the input features'",
            ))
        }
    }
}

/// Mean and variance per feature; per row its output, and in training the gradient.
pub(crate) fn cost(width: u128) -> Cost {
    Cost {
        parameters: 2 * width,
        kernel: 0,
        trained: 0,
        width,
        per_row_training: 2 * width,
        per_row_forward: width,
    }
}

/// A constant feature keeps scale 1 instead of Keras' 1/ε: on the training rows it is 0
/// either way, but unseen values must not be blown up by 10⁷.
fn std_of(variance: f32) -> f32 {
    let std = variance.max(0.0).sqrt();
    if std > 1e-7 {
        std
    } else {
        1.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Normalization {
    pub mean: Array1<f32>,
    pub variance: Array1<f32>,
    inv_std: Array1<f32>,
}

impl Normalization {
    pub fn from_stats(mean: Array1<f32>, variance: Array1<f32>) -> Normalization {
        let inv_std = variance.mapv(|v| 1.0 / std_of(v));
        Normalization {
            mean,
            variance,
            inv_std,
        }
    }

    /// Population mean and variance (as Keras' adapt) of the given rows, in f64.
    pub fn adapt<'a>(
        width: usize,
        rows: impl Iterator<Item = ArrayView1<'a, f32>>,
    ) -> Normalization {
        let rows: Vec<ArrayView1<f32>> = rows.collect();
        Normalization::from_moments(&Moments::of_part(width, rows.iter().map(|r| r.iter())))
    }

    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// The standard deviation each feature is divided by.
    pub fn std(&self) -> Array1<f32> {
        self.variance.mapv(std_of)
    }

    /// Keras counts mean, variance and the sample count as (non-trainable) weights.
    pub fn params(&self) -> usize {
        2 * self.width() + 1
    }

    /// `{name}.mean` and `{name}.variance`: tensors rather than JSON text, so the
    /// statistics round-trip bit-exactly.
    pub fn push_tensors(&self, name: &str, list: &mut TensorList) {
        let width = vec![self.width()];
        list.push(
            format!("{name}.mean"),
            width.clone(),
            self.mean.iter().copied(),
        );
        list.push(
            format!("{name}.variance"),
            width,
            self.variance.iter().copied(),
        );
    }

    pub fn read(st: &SafeTensors<'_>, name: &str, width: usize) -> Result<Normalization, String> {
        let mean = read_f32(st, &format!("{name}.mean"), &[width])?;
        let variance = read_f32(st, &format!("{name}.variance"), &[width])?;
        Ok(Normalization::from_stats(mean.into(), variance.into()))
    }

    /// One row: `out = (x − mean) / std`.
    pub fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        let x = ArrayView2::from_shape((1, x.len()), x).expect("one row");
        let width = out.len();
        let out = ArrayViewMut2::from_shape((1, width), out).expect("one row");
        self.forward(x, out);
    }

    /// Mean and population variance accumulated part by part (a streamed adapt).
    pub fn from_moments(m: &Moments) -> Normalization {
        let count = m.n.max(1) as f64;
        let mean = m.mean.iter().map(|&v| v as f32).collect();
        let variance = m.m2.iter().map(|q| (q / count) as f32).collect();
        Normalization::from_stats(mean, variance)
    }

    pub fn forward(&self, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        let (mean, scale) = (self.mean.view(), self.inv_std.view());
        let (mean_s, scale_s) = (mean.as_slice().unwrap(), scale.as_slice().unwrap());
        for (xr, mut or) in x.rows().into_iter().zip(out.rows_mut()) {
            if let (Some(xs), Some(os)) = (xr.as_slice(), or.as_slice_mut()) {
                for (((o, &x), &m), &s) in os.iter_mut().zip(xs).zip(mean_s).zip(scale_s) {
                    *o = (x - m) * s;
                }
                continue;
            }
            Zip::from(or)
                .and(xr)
                .and(mean)
                .and(scale)
                .for_each(|o, &x, &m, &s| *o = (x - m) * s);
        }
    }
}

/// Count, mean and sum of squared deviations per feature, in f64. Each part is
/// summarised with two passes (as `adapt`) and merged with Chan et al.'s pairwise
/// formula, which stays exact to rounding however many parts there are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Moments {
    n: usize,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    pub fn new(width: usize) -> Moments {
        Moments {
            n: 0,
            mean: vec![0.0; width],
            m2: vec![0.0; width],
        }
    }

    /// The moments of one part, in two passes: the one-pass formula loses precision for
    /// large offsets.
    fn of_part<'r, R: IntoIterator<Item = &'r f32>>(
        width: usize,
        rows: impl Iterator<Item = R> + Clone,
    ) -> Moments {
        let mut mean = vec![0.0f64; width];
        let mut n = 0usize;
        for r in rows.clone() {
            for (s, &v) in mean.iter_mut().zip(r) {
                *s += f64::from(v);
            }
            n += 1;
        }
        let count = n.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= count);
        let mut m2 = vec![0.0f64; width];
        for r in rows {
            for ((q, &v), m) in m2.iter_mut().zip(r).zip(&mean) {
                let d = f64::from(v) - m;
                *q += d * d;
            }
        }
        Moments { n, mean, m2 }
    }

    /// Adds one part's rows (each at least `width` long; the rest is ignored).
    pub fn add_part(&mut self, rows: &[&[f32]]) {
        if rows.is_empty() {
            return;
        }
        let width = self.mean.len();
        let part = Moments::of_part(width, rows.iter().map(|r| &r[..width]));
        let (na, nb) = (self.n as f64, part.n as f64);
        let n = na + nb;
        for j in 0..width {
            let delta = part.mean[j] - self.mean[j];
            self.mean[j] += delta * nb / n;
            self.m2[j] += part.m2[j] + delta * delta * na * nb / n;
        }
        self.n += part.n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A large offset and a small spread: the case where one-pass formulas lose digits.
    #[test]
    fn merged_parts_match_the_two_pass_adapt() {
        let (rows, width) = (1000, 3);
        let x = Array2::from_shape_fn((rows, width), |(r, c)| {
            let wobble = ((r * 7919 + c * 104_729) % 1000) as f32 / 1000.0;
            1.0e4 * (c as f32 + 1.0) + wobble * (c as f32 + 0.5)
        });
        let whole = Normalization::adapt(width, x.rows().into_iter());
        let mut m = Moments::new(width);
        for part in [0..1, 1..300, 300..301, 301..777, 777..1000] {
            let slices: Vec<&[f32]> = part.map(|r| x.row(r).to_slice().unwrap()).collect();
            m.add_part(&slices);
        }
        let merged = Normalization::from_moments(&m);
        // Closed form of the population variance for the check of the reference itself.
        let col: Vec<f64> = x.column(2).iter().map(|&v| f64::from(v)).collect();
        let mean = col.iter().sum::<f64>() / rows as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
        assert!((f64::from(whole.variance[2]) - var).abs() <= 1e-6 * var);
        for j in 0..width {
            let rel = |a: f32, b: f32| (f64::from(a) - f64::from(b)).abs() / f64::from(b.abs());
            assert!(rel(merged.mean[j], whole.mean[j]) <= 1e-6, "mean {j}");
            assert!(
                rel(merged.variance[j], whole.variance[j]) <= 1e-6,
                "variance {j}"
            );
        }
    }
}
