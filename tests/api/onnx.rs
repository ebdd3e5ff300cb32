//! `GET /models/{ref}/model.onnx` checked by runtimes nnserve did not write: onnxruntime
//! (with onnx's full checker, in the venv `.ci/test-python` makes) and tract run the
//! exported file on random rows, and their outputs equal `/predict`'s within 1e-5.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tract_onnx::prelude::*;

use crate::helpers::{
    assert_problem, binary_spec, churn_spec, churn_table, spawn_app, test_python, Lcg, TestApp,
    PLANS,
};

const TOLERANCE: f64 = 1e-5;

fn python() -> Option<PathBuf> {
    test_python("onnxruntime")
}

/// Runs `model` in onnxruntime on `inputs` (name → {"type", "rows"}) with
/// `tests/api/onnx_run.py`; its answer.
fn onnxruntime(python: &Path, model: &[u8], inputs: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, model).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/onnx_run.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let request = json!({"model": path, "inputs": inputs});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "onnxruntime: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

/// Trains `spec` to the end; the model id.
async fn train(app: &TestApp, spec: &Value) -> String {
    let job = app.submit(spec).await;
    let job = app.wait_finished(&job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["model_id"].as_str().unwrap().to_owned()
}

async fn onnx_of(app: &TestApp, model: &str) -> Vec<u8> {
    let response = app.get(&format!("/models/{model}/model.onnx")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/onnx");
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.contains(".onnx\""), "{disposition}");
    response.bytes().await.unwrap().to_vec()
}

async fn predict(app: &TestApp, model: &str, instances: &[Value]) -> Vec<Vec<f64>> {
    let response = app
        .post_json(
            &format!("/models/{model}/predict"),
            &json!({ "instances": instances }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    matrix(&answer["predictions"])
}

fn matrix(value: &Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn assert_close(what: &str, got: &[Vec<f64>], expected: &[Vec<f64>]) {
    assert_eq!(got.len(), expected.len(), "{what}: rows");
    let worst = got
        .iter()
        .flatten()
        .zip(expected.iter().flatten())
        .map(|(g, e)| (g - e).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "{what}: {} rows, largest |ONNX − predict| {worst:e}",
        got.len()
    );
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g.len(), e.len(), "{what}: row {i}'s width");
        for (j, (g, e)) in g.iter().zip(e).enumerate() {
            assert!(
                (g - e).abs() <= TOLERANCE,
                "{what}: row {i} output {j}: ONNX {g}, predict {e}"
            );
        }
    }
}

/// Rows of four numbers in [-3, 3), wider than the training data's range.
fn numeric_rows(rows: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut lcg = Lcg::new(seed);
    (0..rows)
        .map(|_| (0..4).map(|_| (lcg.next() * 3e5).round() / 1e5).collect())
        .collect()
}

/// A table of four numbers with a three-class label and a regression target.
fn numeric_table(rows: usize, target: &str) -> String {
    let mut csv = String::from("x0,x1,x2,x3,");
    csv.push_str(target);
    csv.push('\n');
    for x in numeric_rows(rows, 11) {
        let label = match target {
            "class" => format!("{}", (x[0] + x[1] > 0.0) as u8 + (x[2] > 1.0) as u8),
            _ => format!("{:.5}", 2.0 * x[0] - x[1] * x[3] + 0.5),
        };
        csv.push_str(&format!("{},{},{},{},{label}\n", x[0], x[1], x[2], x[3]));
    }
    csv
}

fn numeric_spec(dataset: &str, layers: Value, loss: &str) -> Value {
    json!({
        "dataset_id": dataset,
        "model": {"layers": layers},
        "loss": loss,
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "epochs": 3,
        "batch_size": 32,
        "validation_split": 0.2,
        "seed": 4
    })
}

/// The numeric models: a binary classifier (normalization, relu, dropout, tanh,
/// sigmoid), a three-class softmax through every other activation, a regression.
async fn numeric_models(app: &TestApp) -> Vec<(&'static str, String)> {
    let linear = app.linear_dataset(400, 5).await;
    let classes = app
        .upload(numeric_table(400, "class"), "?target=class")
        .await;
    let values = app.upload(numeric_table(400, "y"), "?target=y").await;
    let id = |d: &Value| d["id"].as_str().unwrap().to_owned();
    let multiclass = numeric_spec(
        &id(&classes),
        json!([
            {"type": "normalization"},
            {"type": "dense", "units": 12, "activation": "elu"},
            {"type": "dense", "units": 10, "activation": "gelu"},
            {"type": "dense", "units": 8, "activation": "swish"},
            {"type": "dense", "units": 8, "activation": "leaky_relu"},
            {"type": "dense", "units": 6, "activation": "softplus", "use_bias": false},
            {"type": "dense", "units": 3, "activation": "softmax"}
        ]),
        "sparse_categorical_crossentropy",
    );
    let regression = numeric_spec(
        &id(&values),
        json!([
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "dense", "units": 1}
        ]),
        "mean_squared_error",
    );
    vec![
        ("binary", train(app, &binary_spec(&linear, 3)).await),
        ("multiclass", train(app, &multiclass).await),
        ("regression", train(app, &regression).await),
    ]
}

#[tokio::test]
async fn numeric_models_run_in_onnxruntime_as_predict_answers() {
    let Some(python) = python() else { return };
    let app = spawn_app().await;
    // Few rows take predict's one-row path, more its batched one.
    let rows = numeric_rows(300, 99);
    for (kind, model) in numeric_models(&app).await {
        let onnx = onnx_of(&app, &model).await;
        let answer = onnxruntime(
            &python,
            &onnx,
            json!({"input": {"type": "float", "rows": rows}}),
        );
        assert_eq!(answer["inputs"], json!(["input"]), "{kind}");
        assert_eq!(answer["outputs"], json!(["predictions"]), "{kind}");
        let metadata = &answer["metadata"];
        assert_eq!(
            metadata["feature_names"], r#"["x0","x1","x2","x3"]"#,
            "{kind}"
        );
        assert_eq!(metadata["nnserve_model_id"], model.as_str(), "{kind}");
        for n in [3, rows.len()] {
            let instances: Vec<Value> = rows[..n].iter().map(|r| json!(r)).collect();
            let expected = predict(&app, &model, &instances).await;
            let got = matrix(&answer["predictions"]);
            assert_close(kind, &got[..n], &expected);
        }
    }
}

#[tokio::test]
async fn tract_runs_a_numeric_model_as_predict_answers() {
    let app = spawn_app().await;
    let linear = app.linear_dataset(400, 5).await;
    let model = train(&app, &binary_spec(&linear, 3)).await;
    let onnx = onnx_of(&app, &model).await;
    let rows = numeric_rows(50, 7);
    let values: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut onnx.as_slice())
        .expect("tract reads the file")
        .with_input_fact(0, f32::fact([rows.len(), 4]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::Array2::from_shape_vec((rows.len(), 4), values).unwrap();
    let outputs = plan.run(tvec!(Tensor::from(input).into())).unwrap();
    let got: Vec<Vec<f64>> = outputs[0]
        .to_array_view::<f32>()
        .unwrap()
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let instances: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
    assert_close("tract", &got, &predict(&app, &model, &instances).await);
}

/// Churn rows as predict's instances and as the ONNX inputs: plans and regions seen in
/// training, unseen ones and missing ones; tenures inside and outside the training range,
/// and missing ones.
fn churn_rows(rows: usize, seed: u64) -> (Vec<Value>, Value) {
    let mut lcg = Lcg::new(seed);
    let mut pick = |of: &[Value]| of[((lcg.next() + 1.0) / 2.0 * of.len() as f64) as usize].clone();
    let plans: Vec<Value> = PLANS
        .iter()
        .map(|&p| json!(p))
        .chain([json!("platinum"), json!("NA"), Value::Null])
        .collect();
    let regions = [json!("north"), json!("N/A"), json!("south"), Value::Null];
    let tenures: Vec<Value> = (0..20)
        .map(|i| json!(f64::from(i) * 4.5 - 10.0))
        .chain([Value::Null])
        .collect();
    let mut instances = Vec::new();
    let mut onnx = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rows {
        let (plan, tenure, region) = (pick(&plans), pick(&tenures), pick(&regions));
        instances.push(json!({"plan": plan, "tenure": tenure, "region": region}));
        // A text column's missing value travels as a missing marker.
        let text = |v: &Value| json!([v.as_str().unwrap_or("NA")]);
        onnx[0].push(text(&plan));
        onnx[1].push(json!([tenure]));
        onnx[2].push(text(&region));
    }
    let [plan, tenure, region] = onnx;
    let inputs = json!({
        "plan": {"type": "string", "rows": plan},
        "tenure": {"type": "float", "rows": tenure},
        "region": {"type": "string", "rows": region},
    });
    (instances, inputs)
}

#[tokio::test]
async fn encoded_columns_run_in_onnxruntime_as_predict_answers() {
    let Some(python) = python() else { return };
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(600, 7), "?target=churn").await;
    let mut job = churn_spec(dataset["id"].as_str().unwrap());
    job["epochs"] = json!(3);
    let defaults = job.clone();
    job["features"] = json!({
        "plan": {"type": "string_categorical", "output_mode": "embedding", "embedding_dim": 2},
        "tenure": {"type": "float_discretized", "num_bins": 4},
        "region": {"type": "string_categorical", "missing_indicator": true},
    });
    let configured = job.clone();
    job["features"] = json!({
        "tenure": {"type": "float_rescaled", "scale": 0.1, "offset": -1, "missing": {"constant": 5}},
        "region": {"type": "string_categorical", "max_tokens": 1},
    });
    let rescaled = job;
    let (instances, inputs) = churn_rows(200, 3);
    for (kind, spec) in [
        ("defaults", defaults),
        ("configured", configured),
        ("rescaled", rescaled),
    ] {
        let model = train(&app, &spec).await;
        let answer = onnxruntime(&python, &onnx_of(&app, &model).await, inputs.clone());
        assert_eq!(
            answer["inputs"],
            json!(["plan", "tenure", "region"]),
            "{kind}"
        );
        assert_eq!(
            answer["metadata"]["feature_names"], r#"["plan","tenure","region"]"#,
            "{kind}"
        );
        assert_eq!(
            answer["metadata"]["class_names"], r#"["no","yes"]"#,
            "{kind}"
        );
        let expected = predict(&app, &model, &instances).await;
        assert_close(kind, &matrix(&answer["predictions"]), &expected);
    }
}

#[tokio::test]
async fn parts_onnx_cannot_compute_are_refused_naming_them() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(300, 7), "?target=churn").await;
    let mut job = churn_spec(dataset["id"].as_str().unwrap());
    job["epochs"] = json!(1);
    let refused = [
        (
            json!({"plan": {"type": "string_hashed", "num_bins": 8}}),
            json!([]),
            vec!["\"plan\"", "hashed"],
        ),
        (
            json!({"plan": {"type": "string_categorical", "num_oov_indices": 2}}),
            json!([]),
            vec!["\"plan\"", "num_oov_indices"],
        ),
        (
            json!({}),
            json!([{"feature_names": ["plan", "region"], "crossing_dim": 4}]),
            vec!["cross", "\"plan\"", "\"region\""],
        ),
    ];
    for (features, crosses, needles) in refused {
        job["features"] = features;
        job["crosses"] = crosses;
        let model = train(&app, &job).await;
        let response = app.get(&format!("/models/{model}/model.onnx")).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &needles).await;
    }
    let unknown = "/models/00000000-0000-4000-8000-000000000000/model.onnx";
    assert_problem(app.get(unknown).await, StatusCode::NOT_FOUND, &[]).await;
}

#[tokio::test]
async fn a_named_version_exports_under_its_name() {
    let app = spawn_app().await;
    let linear = app.linear_dataset(200, 5).await;
    let mut spec = binary_spec(&linear, 1);
    spec["name"] = json!("linear");
    let model = train(&app, &spec).await;
    let response = app.get("/models/linear/versions/1/model.onnx").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"linear-v1.onnx\""
    );
    let by_version = response.bytes().await.unwrap();
    assert_eq!(by_version.to_vec(), onnx_of(&app, &model).await);
    assert_problem(
        app.get("/models/linear/versions/2/model.onnx").await,
        StatusCode::NOT_FOUND,
        &[],
    )
    .await;
}
