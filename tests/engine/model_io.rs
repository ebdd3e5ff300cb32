//! Summary, safetensors round trip, and the model's input checks.

use ndarray::Array2;
use nnserve::nn::{Model, ModelError, Samples, Task};
use serde_json::json;

use crate::common::{blobs, tensor, train};

fn assert_send_sync<T: Send + Sync + Clone>() {}

#[test]
fn model_types_are_send_and_sync() {
    assert_send_sync::<Model>();
    assert_send_sync::<nnserve::nn::ValidSpec>();
    assert_send_sync::<nnserve::nn::TrainingState>();
}

#[test]
fn summary_matches_keras_for_the_w1_network() {
    let mut g = crate::common::Gen::new(1);
    let x = g.matrix(40, 784);
    let y = Array2::from_shape_fn((40, 1), |(r, _)| (r % 10) as f32);
    let spec = json!({
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy", "batch_size": 20
    });
    let (out, _) = train(spec, &x, &y).unwrap();
    let s = out.model.summary();
    let rows: Vec<(&str, &str, Vec<Option<usize>>, usize)> = s
        .layers
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.kind.as_str(),
                l.output_shape.clone(),
                l.params,
            )
        })
        .collect();
    // Keras: model.summary() of the same Sequential model.
    assert_eq!(
        rows,
        [
            (
                "normalization",
                "Normalization",
                vec![None, Some(784)],
                1569
            ),
            ("dense", "Dense", vec![None, Some(256)], 200_960),
            ("dropout", "Dropout", vec![None, Some(256)], 0),
            ("dense_1", "Dense", vec![None, Some(128)], 32_896),
            ("dense_2", "Dense", vec![None, Some(10)], 1_290),
        ]
    );
    assert_eq!(
        (s.total_params, s.trainable_params, s.non_trainable_params),
        (236_715, 235_146, 1_569)
    );
    assert_eq!(
        (
            out.model.input_width(),
            out.model.output_width(),
            out.model.task()
        ),
        (784, 10, Task::Multiclass)
    );
}

#[test]
fn safetensors_round_trip_and_corruption() {
    let (x, y) = blobs(60, 5);
    let spec = json!({
        "model": {"layers": [
            {"type": "input", "shape": [4]},
            {"type": "normalization"},
            {"type": "dense", "units": 5, "activation": "elu", "use_bias": false},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "epochs": 2, "batch_size": 8
    });
    let (out, _) = train(spec, &x, &y).unwrap();
    let bytes = out.model.to_safetensors();
    let back = Model::from_safetensors(&bytes).unwrap();
    assert_eq!(back, out.model);
    assert_eq!(
        back.predict(x.view()).unwrap(),
        out.model.predict(x.view()).unwrap()
    );
    assert_eq!(tensor(&bytes, "dense.kernel").0, [4, 5]);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.tensor("dense.bias").is_err(),
        "use_bias false has no bias tensor"
    );
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let spec_json = &meta.metadata().as_ref().unwrap()["spec"];
    assert_eq!(
        &serde_json::from_str::<nnserve::nn::TrainingSpec>(spec_json).unwrap(),
        out.model.spec()
    );

    assert!(matches!(
        Model::from_safetensors(b"not a model"),
        Err(ModelError::Corrupt(_))
    ));
    assert!(matches!(
        Model::from_safetensors(&bytes[..bytes.len() - 4]),
        Err(ModelError::Corrupt(_))
    ));

    let eval = out
        .model
        .evaluate(Samples::new(x.view(), y.view()))
        .unwrap();
    assert!(eval.loss.is_finite() && (0.0..=1.0).contains(&eval.metrics["accuracy"]));
}

#[test]
fn predict_checks_its_input() {
    let (x, y) = blobs(30, 6);
    let spec = json!({
        "model": {"layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "loss": "binary_crossentropy", "batch_size": 8
    });
    let y = y.mapv(|c| f32::from(u8::from(c == 1.0)));
    let (out, _) = train(spec, &x, &y).unwrap();
    let wide = Array2::<f32>::zeros((2, 5));
    assert_eq!(
        out.model.predict(wide.view()),
        Err(ModelError::WidthMismatch {
            row: 0,
            expected: 4,
            got: 5
        })
    );
    let mut nan = Array2::<f32>::zeros((2, 4));
    nan[[1, 2]] = f32::INFINITY;
    assert_eq!(
        out.model.predict(nan.view()),
        Err(ModelError::NonFinite { row: 1, column: 2 })
    );
    assert_eq!(
        out.model
            .predict(Array2::zeros((0, 4)).view())
            .unwrap()
            .dim(),
        (0, 1)
    );
    let p = ndarray::array![[0.2f32], [0.7]];
    assert_eq!(out.model.classes(p.view()), Some(vec![0, 1]));
}
