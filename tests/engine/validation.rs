//! Every invalid spec is rejected with a message naming the field and the bad value.

use ndarray::Array2;
use nnserve::nn::{fit, DataShape, Samples, SpecError, TrainError, TrainingSpec};
use serde_json::{json, Value};

use crate::common::{blobs, options, validated, Recorder};

fn classifier() -> Value {
    json!({
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]},
        "loss": "sparse_categorical_crossentropy"
    })
}

fn shape(features: usize, labels_max: f64, integral: bool) -> DataShape {
    DataShape {
        rows: 100,
        features,
        targets: 1,
        target_min: vec![0.0],
        target_max: vec![labels_max],
        target_integral: vec![integral],
        columns: Vec::new(),
        class_names: None,
        missing_markers: None,
    }
}

/// The error message for a spec edited by `edit`, validated against 4 features, labels 0..=2.
fn rejection(edit: impl FnOnce(&mut Value)) -> String {
    rejection_for(edit, &shape(4, 2.0, true))
}

fn rejection_for(edit: impl FnOnce(&mut Value), data: &DataShape) -> String {
    let mut spec = classifier();
    edit(&mut spec);
    match TrainingSpec::from_json(&spec.to_string()) {
        Err(e) => e.to_string(),
        Ok(s) => s
            .validate(data)
            .expect_err("spec must be rejected")
            .to_string(),
    }
}

#[test]
fn the_base_spec_is_valid() {
    let spec = TrainingSpec::from_json(&classifier().to_string()).unwrap();
    let valid = spec.validate(&shape(4, 2.0, true)).unwrap();
    assert_eq!(valid.batch_sizes(), [32]);
    assert_eq!(valid.epochs(), 1);
    assert_eq!(valid.monitor(), ("loss", nnserve::nn::Mode::Min));
}

#[test]
fn each_invalid_spec_names_its_field_and_value() {
    let cases: Vec<(String, &[&str])> = vec![
        (
            rejection(|s| s["model"]["layers"][0]["activation"] = json!("sigmoidd")),
            &["model.layers[0].activation", "sigmoidd"],
        ),
        (
            rejection(|s| s["model"]["layers"][0]["units"] = json!(0)),
            &["model.layers[0].units must be at least 1, got 0"],
        ),
        (
            rejection(|s| s["model"]["layers"][1]["rate"] = json!(1.0)),
            &["model.layers[1].rate must be in [0, 1), got 1"],
        ),
        (
            rejection_for(
                |s| {
                    s["loss"] = json!("binary_crossentropy");
                    s["model"]["layers"][2]["activation"] = json!("softmax");
                },
                &DataShape {
                    rows: 100,
                    features: 4,
                    targets: 3,
                    target_min: vec![0.0; 3],
                    target_max: vec![1.0; 3],
                    target_integral: vec![true; 3],
                    columns: Vec::new(),
                    class_names: None,
                    missing_markers: None,
                },
            ),
            &[
                "model.layers[2].activation",
                "binary_crossentropy",
                "sigmoid",
                "got softmax",
            ],
        ),
        (
            rejection_for(|_| {}, &shape(4, 3.0, true)),
            &["loss", "[0, 3)", "[0, 3]"],
        ),
        (
            rejection_for(|_| {}, &shape(4, 2.0, false)),
            &["loss", "not all integers"],
        ),
        (
            rejection(|s| {
                s["model"]["layers"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, json!({"type": "input", "shape": [5]}))
            }),
            &["model.layers[0].shape", "[5]", "4 features"],
        ),
        (
            rejection(|s| s["model"]["layers"] = json!([])),
            &["model.layers must be a non-empty list, got []"],
        ),
        (
            rejection(|s| s["optimizer"] = json!({"type": "adam", "learning_rate": -0.1})),
            &["optimizer.learning_rate", "-0.1"],
        ),
        (
            rejection(|s| s["batch_size"] = json!(0)),
            &["batch_size must be at least 1, got 0"],
        ),
        (
            rejection(|s| s["batch_size"] = json!([32, 0])),
            &["batch_size[1] must be at least 1, got 0"],
        ),
        (
            rejection(|s| s["model"]["layers"][0]["activaton"] = json!("relu")),
            &["model.layers[0]", "activaton"],
        ),
        (
            rejection(|s| s["optimizer"] = json!("adamm")),
            &["optimizer", "adamm"],
        ),
        (
            rejection(|s| s["loss"] = json!("mse")),
            &["model.layers[2].units", "1 target columns", "3 units"],
        ),
        (
            rejection(|s| s["validation_split"] = json!(1.0)),
            &["validation_split must be in [0, 1), got 1"],
        ),
        (
            rejection(|s| s["epochs"] = json!(0)),
            &["epochs must be at least 1, got 0"],
        ),
        (
            rejection(|s| s["early_stopping"] = json!({"monitor": "val_loss"})),
            &[
                "early_stopping.monitor",
                "val_loss",
                "validation_split is 0",
            ],
        ),
        (
            rejection(|s| s["early_stopping"] = json!({"monitor": "accuracy"})),
            &["early_stopping.monitor", "accuracy"],
        ),
        (
            rejection(|s| s["reduce_lr_on_plateau"] = json!({"monitor": "loss", "factor": 1.5})),
            &["reduce_lr_on_plateau.factor must be in (0, 1), got 1.5"],
        ),
        (
            rejection(|s| s["class_weight"] = json!({"3": 2.0})),
            &["class_weight", "\"3\"", "[0, 3)"],
        ),
        (
            rejection(|s| s["class_weight"] = json!({"1": -2.0})),
            &["class_weight[\"1\"] must be at least 0, got -2"],
        ),
        (
            rejection(|s| s["metrics"] = json!(["mae"])),
            &["metrics[0]", "mae"],
        ),
        (
            rejection(|s| s["model"]["layers"][0]["kernel_regularizer"] = json!({"l2": -1})),
            &["model.layers[0].kernel_regularizer.l2", "-1"],
        ),
        (
            rejection(|s| {
                s["model"]["layers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "dropout", "rate": 0.1}))
            }),
            &["model.layers[3]", "must be dense"],
        ),
        (
            rejection_for(
                |_| {},
                &DataShape {
                    rows: 100,
                    features: 4,
                    targets: 2,
                    target_min: vec![0.0],
                    target_max: vec![1.0],
                    target_integral: vec![true],
                    columns: Vec::new(),
                    class_names: None,
                    missing_markers: None,
                },
            ),
            &["data.targets", "2 target columns"],
        ),
        (
            rejection(|s| s["model"]["layers"][2]["units"] = json!(1)),
            &["model.layers[2].units", "at least 2", "got 1"],
        ),
    ];
    for (message, needles) in cases {
        for needle in needles {
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
    }
}

#[test]
fn parse_errors_carry_the_path() {
    let mut spec = classifier();
    spec["model"]["layers"][2]["activation"] = json!("softmaxx");
    match TrainingSpec::from_json(&spec.to_string()) {
        Err(SpecError::Parse { path, message }) => {
            assert_eq!(path, "model.layers[2].activation");
            assert!(message.contains("softmaxx"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn defaults_and_aliases_follow_keras() {
    let spec = TrainingSpec::from_json(r#"{"model": {"layers": [{"type": "dense", "units": 1}]}, "loss": "mae", "optimizer": "sgd"}"#).unwrap();
    assert_eq!(spec.loss, nnserve::nn::LossKind::MeanAbsoluteError);
    assert_eq!(
        spec.optimizer,
        nnserve::nn::OptimizerSpec::Sgd(Default::default())
    );
    assert_eq!(spec.optimizer.learning_rate(), 0.01);
    assert!(spec.shuffle && spec.epochs == 1 && spec.validation_split == 0.0 && spec.seed == 0);
    let round = TrainingSpec::from_json(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(round, spec);
    let spec = TrainingSpec::from_json(
        r#"{"model": {"layers": [{"type": "dense", "units": 1}]}, "loss": "mse"}"#,
    )
    .unwrap();
    assert_eq!(
        spec.optimizer,
        nnserve::nn::OptimizerSpec::Adam(nnserve::nn::AdamSpec {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7
        })
    );
}

#[test]
fn data_that_does_not_match_the_validated_spec_is_refused_by_fit() {
    let (x, y) = blobs(30, 1);
    let valid = validated(classifier(), x.view(), y.view());
    let narrow = Array2::<f32>::zeros((30, 3));
    let err = fit(
        &valid,
        Samples::new(narrow.view(), y.view()),
        None,
        &options(8),
        &mut Recorder::default(),
    );
    assert!(
        matches!(&err, Err(TrainError::Data(m)) if m.contains("3 feature columns")),
        "{err:?}"
    );
    let mut bad = y.clone();
    bad[[4, 0]] = 5.0;
    let err = fit(
        &valid,
        Samples::new(x.view(), bad.view()),
        None,
        &options(8),
        &mut Recorder::default(),
    );
    assert!(
        matches!(&err, Err(TrainError::Data(m)) if m.contains("row 4")),
        "{err:?}"
    );
    let mut nan = x.clone();
    nan[[2, 1]] = f32::NAN;
    let err = fit(
        &valid,
        Samples::new(nan.view(), y.view()),
        None,
        &options(8),
        &mut Recorder::default(),
    );
    assert!(
        matches!(&err, Err(TrainError::Data(m)) if m.contains("row 2, column 1")),
        "{err:?}"
    );
}
