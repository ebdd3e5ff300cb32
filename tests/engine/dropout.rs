//! Prediction is deterministic and dropout-free: it equals a plain forward pass
//! computed here from the saved weights.

use ndarray::{Array1, Array2};
use serde_json::json;

use crate::common::{blobs, tensor, train};

fn weights(bytes: &[u8], name: &str) -> (Array2<f32>, Array1<f32>) {
    let (shape, k) = tensor(bytes, &format!("{name}.kernel"));
    let (_, b) = tensor(bytes, &format!("{name}.bias"));
    (
        Array2::from_shape_vec((shape[0], shape[1]), k).unwrap(),
        Array1::from(b),
    )
}

#[test]
fn predict_is_deterministic_and_ignores_dropout() {
    let (x, y) = blobs(120, 2);
    let spec = json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 12, "activation": "relu"},
            {"type": "dropout", "rate": 0.5},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy", "epochs": 3, "batch_size": 16
    });
    let (out, _) = train(spec, &x, &y).unwrap();
    let first = out.model.predict(x.view()).unwrap();
    assert_eq!(first, out.model.predict(x.view()).unwrap());

    let bytes = out.model.to_safetensors();
    let (_, mean) = tensor(&bytes, "normalization.mean");
    let (_, var) = tensor(&bytes, "normalization.variance");
    let (w1, b1) = weights(&bytes, "dense");
    let (w2, b2) = weights(&bytes, "dense_1");
    for (r, row) in x.rows().into_iter().enumerate() {
        let norm: Array1<f32> = row
            .iter()
            .enumerate()
            .map(|(j, &v)| (v - mean[j]) / var[j].sqrt())
            .collect();
        let hidden = (norm.dot(&w1) + &b1).mapv(|v| v.max(0.0));
        let logits = hidden.dot(&w2) + &b2;
        let max = logits.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let exp = logits.mapv(|v| (v - max).exp());
        let probs = &exp / exp.sum();
        for (a, b) in probs.iter().zip(first.row(r)) {
            assert!((a - b).abs() < 1e-5, "row {r}: {probs} vs {}", first.row(r));
        }
    }
}

#[test]
fn normalization_uses_training_statistics_and_survives_constant_features() {
    let (mut x, y) = blobs(90, 4);
    x.column_mut(3).fill(7.0);
    let spec = json!({
        "model": {"layers": [{"type": "normalization"}, {"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy", "epochs": 2, "batch_size": 8
    });
    let (out, rec) = train(spec, &x, &y).unwrap();
    assert!(rec.records.iter().all(|r| r.loss.is_finite()));
    let bytes = out.model.to_safetensors();
    let (_, mean) = tensor(&bytes, "normalization.mean");
    let (_, var) = tensor(&bytes, "normalization.variance");
    for j in 0..4 {
        let col: Vec<f64> = x.column(j).iter().map(|&v| f64::from(v)).collect();
        let m = col.iter().sum::<f64>() / 90.0;
        let v = col.iter().map(|c| (c - m).powi(2)).sum::<f64>() / 90.0;
        assert!((f64::from(mean[j]) - m).abs() < 1e-5 && (f64::from(var[j]) - v).abs() < 1e-4);
    }
    let mut probe = x.slice(ndarray::s![..2, ..]).to_owned();
    probe[[0, 3]] = 8.0;
    assert!(out
        .model
        .predict(probe.view())
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}
