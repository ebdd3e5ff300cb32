//! Keras `Normalization` after `adapt`: each feature standardised with the mean and
//! variance of the training split. Not trained; its statistics travel with the model.

use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut2, Zip};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Normalization {
    pub mean: Array1<f32>,
    pub variance: Array1<f32>,
    inv_std: Array1<f32>,
}

impl Normalization {
    pub fn from_stats(mean: Array1<f32>, variance: Array1<f32>) -> Normalization {
        // A constant feature keeps scale 1 instead of Keras' 1/ε: on the training rows it
        // is 0 either way, but unseen values must not be blown up by 10⁷.
        let inv_std = variance.mapv(|v| {
            let std = v.max(0.0).sqrt();
            if std > 1e-7 {
                1.0 / std
            } else {
                1.0
            }
        });
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
        let mut sum = vec![0.0f64; width];
        let mut sq = vec![0.0f64; width];
        let mut n = 0usize;
        let rows: Vec<ArrayView1<f32>> = rows.collect();
        for r in &rows {
            for (s, &v) in sum.iter_mut().zip(r) {
                *s += f64::from(v);
            }
            n += 1;
        }
        let count = n.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        // Two passes: the one-pass formula loses precision for large offsets.
        for r in &rows {
            for ((q, &v), m) in sq.iter_mut().zip(r).zip(&mean) {
                let d = f64::from(v) - m;
                *q += d * d;
            }
        }
        let mean = mean.iter().map(|&m| m as f32).collect();
        let variance = sq.iter().map(|q| (q / count) as f32).collect();
        Normalization::from_stats(mean, variance)
    }

    pub fn width(&self) -> usize {
        self.mean.len()
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
