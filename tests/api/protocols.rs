//! TensorFlow Serving's REST API and the Open Inference Protocol (KServe V2) through the
//! real server: their shapes and errors, models by name, version, label and id, and
//! predictions bit for bit `/predict`'s, in JSON and with V2's binary tensor extension.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{binary_spec, churn_spec, churn_table, spawn_app, TestApp};

/// Trains a small named model; returns its id.
async fn train(app: &TestApp, mut job: Value, name: &str) -> String {
    job["name"] = json!(name);
    job["epochs"] = json!(3);
    let id = app.submit(&job).await;
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done["model_id"].as_str().unwrap().to_owned()
}

async fn numeric_model(app: &TestApp) -> String {
    let dataset = app.linear_dataset(200, 5).await;
    train(app, binary_spec(&dataset, 3), "linear").await
}

async fn churn_model(app: &TestApp) -> String {
    let dataset = app.upload(churn_table(300, 7), "?target=churn").await;
    let dataset = dataset["id"].as_str().unwrap().to_owned();
    train(app, churn_spec(&dataset), "churn").await
}

/// Rows whose values are exact in f32, so any correct reader gets the same cells.
fn rows(n: usize) -> Vec<[f32; 4]> {
    (0..n)
        .map(|i| {
            let v = |k: usize| ((i * 7 + k * 13) % 97) as f32 / 32.0 - 1.5;
            [v(0), v(1), v(2), v(3)]
        })
        .collect()
}

async fn json_of(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A protocol error: `status`, `{"error": …}` as exactly `application/json`.
async fn assert_error(response: Response, status: StatusCode, needle: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.contains(needle),
        "{error:?} should mention {needle:?}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

/// `/predict`'s predictions as f32 bits, row-major.
async fn predict_bits(app: &TestApp, path: &str, instances: &Value) -> Vec<u32> {
    let answer = json_of(
        app.post_json(path, &json!({"instances": instances})).await,
        StatusCode::OK,
    )
    .await;
    bits(&answer["predictions"])
}

fn bits(values: &Value) -> Vec<u32> {
    match values {
        Value::Array(items) => items.iter().flat_map(bits).collect(),
        v => vec![(v.as_f64().unwrap() as f32).to_bits()],
    }
}

#[tokio::test]
async fn tf_serving_predicts_as_predict_does_by_rows_columns_version_and_label() {
    let app = spawn_app().await;
    let id = numeric_model(&app).await;
    let rows = rows(40);
    let expected = predict_bits(&app, "/models/linear/predict", &json!(rows)).await;

    let answer = json_of(
        app.post_json(
            "/v1/models/linear:predict",
            &json!({"signature_name": "serving_default", "instances": rows}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["predictions"]), expected);
    assert_eq!(answer.as_object().unwrap().len(), 1);

    let answer = json_of(
        app.post_json(
            "/v1/models/linear/versions/1:predict",
            &json!({"inputs": rows}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["outputs"]), expected);
    let columns: serde_json::Map<String, Value> = (0..4)
        .map(|c| {
            (
                format!("x{c}"),
                json!(rows.iter().map(|r| r[c]).collect::<Vec<_>>()),
            )
        })
        .collect();
    let answer = json_of(
        app.post_json(
            &format!("/v1/models/{id}:predict"),
            &json!({"inputs": columns}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["outputs"]), expected);

    let aliased = app
        .client
        .put(app.url("/models/linear/aliases/champion"))
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(aliased.status(), StatusCode::CREATED);
    let answer = json_of(
        app.post_json(
            "/v1/models/linear/labels/champion:predict",
            &json!({"instances": rows}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["predictions"]), expected);

    let status = app.get_json("/v1/models/linear").await;
    assert_eq!(
        status,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})
    );
    let metadata = app.get_json("/v1/models/linear/versions/1/metadata").await;
    assert_eq!(metadata["model_spec"]["name"], "linear");
    assert_eq!(metadata["model_spec"]["version"], "1");
    let signature = &metadata["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(signature["inputs"]["input"]["dtype"], "DT_FLOAT");
    assert_eq!(
        signature["inputs"]["input"]["tensor_shape"]["dim"],
        json!([{"size": "-1", "name": ""}, {"size": "4", "name": ""}])
    );
    assert_eq!(signature["outputs"]["predictions"]["dtype"], "DT_FLOAT");
}

#[tokio::test]
async fn tf_serving_refuses_as_tf_serving_does() {
    let app = spawn_app().await;
    numeric_model(&app).await;
    let both = json!({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]});
    let response = app.post_json("/v1/models/linear:predict", &both).await;
    assert_error(response, StatusCode::BAD_REQUEST, "both").await;
    let response = app
        .post_json("/v1/models/linear:predict", &json!({"instances": [[1, 2]]}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "has 2 values").await;
    let response = app
        .post_json(
            "/v1/models/linear:classify",
            &json!({"instances": [[1, 2, 3, 4]]}),
        )
        .await;
    assert_error(response, StatusCode::NOT_FOUND, ":classify").await;
    let response = app
        .post_json(
            "/v1/models/nothing:predict",
            &json!({"instances": [[1, 2, 3, 4]]}),
        )
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "nothing").await;
    let response = app.get("/v1/models/linear/versions/7").await;
    assert_error(response, StatusCode::NOT_FOUND, "7").await;
    let response = app.get("/v1/models/linear/other/thing").await;
    assert_error(response, StatusCode::NOT_FOUND, "no route").await;
    let response = app
        .client
        .post(app.url("/v1/models/linear:predict"))
        .body("{\"instances\": [")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "EOF").await;
}

#[tokio::test]
async fn tf_serving_reads_a_mixed_model_as_predict_does() {
    let app = spawn_app().await;
    churn_model(&app).await;
    let instances = json!([
        {"customer": "c1", "plan": "pro", "tenure": 30.0, "region": "north"},
        {"plan": "basic", "tenure": null, "region": "N/A"},
        {"customer": "c3", "plan": "gold", "tenure": 12.5, "region": "north"},
    ]);
    let expected = predict_bits(&app, "/models/churn/predict", &instances).await;
    let answer = json_of(
        app.post_json("/v1/models/churn:predict", &json!({"instances": instances}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["predictions"]), expected);
    let columns = json!({"plan": ["pro", "basic", "gold"], "tenure": [30.0, null, 12.5],
        "region": ["north", "N/A", "north"]});
    let answer = json_of(
        app.post_json("/v1/models/churn:predict", &json!({"inputs": columns}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["outputs"]), expected);
    let metadata = app.get_json("/v1/models/churn/metadata").await;
    let inputs =
        &metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"];
    assert_eq!(inputs["plan"]["dtype"], "DT_STRING");
    assert_eq!(inputs["tenure"]["dtype"], "DT_FLOAT");
}

/// A V2 binary request: the JSON header, then the raw inputs.
async fn post_binary(app: &TestApp, path: &str, header: &Value, data: &[u8]) -> Response {
    let header = serde_json::to_vec(header).unwrap();
    app.client
        .post(app.url(path))
        .header("inference-header-content-length", header.len())
        .header(CONTENT_TYPE, "application/octet-stream")
        .body([header.as_slice(), data].concat())
        .send()
        .await
        .unwrap()
}

/// The JSON header of a binary answer and the data after it.
async fn split_binary(response: Response) -> (Value, Vec<u8>) {
    assert_eq!(response.status(), StatusCode::OK);
    let length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    (
        serde_json::from_slice(&body[..length]).unwrap(),
        body[length..].to_vec(),
    )
}

#[tokio::test]
async fn v2_serves_health_metadata_and_inference_in_json_and_binary() {
    let app = spawn_app().await;
    numeric_model(&app).await;
    assert_eq!(app.get_json("/v2/health/live").await, json!({"live": true}));
    assert_eq!(
        app.get_json("/v2/health/ready").await,
        json!({"ready": true})
    );
    assert_eq!(
        app.get_json("/v2").await["extensions"],
        json!(["binary_tensor_data"])
    );
    let metadata = app.get_json("/v2/models/linear").await;
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        metadata["outputs"][0],
        json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 1]})
    );
    assert_eq!(
        metadata["outputs"][1],
        json!({"name": "class", "datatype": "INT64", "shape": [-1]})
    );
    assert_eq!(
        app.get_json("/v2/models/linear/versions/1/ready").await,
        json!({"name": "linear", "ready": true})
    );

    let rows = rows(300);
    let expected = predict_bits(&app, "/models/linear/predict", &json!(rows)).await;
    let request = json!({"id": "r1", "inputs": [{"name": "input", "shape": [300, 4],
        "datatype": "FP32", "data": rows}]});
    let answer = json_of(
        app.post_json("/v2/models/linear/infer", &request).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["id"], "r1");
    assert_eq!(answer["model_name"], "linear");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["outputs"][0]["name"], "probabilities");
    assert_eq!(answer["outputs"][0]["shape"], json!([300, 1]));
    assert_eq!(bits(&answer["outputs"][0]["data"]), expected);
    assert_eq!(answer["outputs"][1]["name"], "class");

    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let raw: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({"inputs": [{"name": "input", "shape": [300, 4], "datatype": "FP32",
            "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}]});
    let (answer, data) =
        split_binary(post_binary(&app, "/v2/models/linear/versions/1/infer", &header, &raw).await)
            .await;
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(answer["outputs"][0]["parameters"]["binary_data_size"], 1200);
    let got: Vec<u32> = data
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn v2_refuses_with_its_error_body() {
    let app = spawn_app().await;
    numeric_model(&app).await;
    let input = |shape: Value, data: Value| json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]});
    let response = app
        .post_json(
            "/v2/models/linear/infer",
            &input(json!([1, 3]), json!([1, 2, 3])),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "[rows, 4]").await;
    let response = app
        .post_json(
            "/v2/models/linear/infer",
            &input(json!([1, 4]), json!([1, 2, 3])),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "needs 4").await;
    let mut unknown = input(json!([1, 4]), json!([1, 2, 3, 4]));
    unknown["outputs"] = json!([{"name": "logits"}]);
    let response = app.post_json("/v2/models/linear/infer", &unknown).await;
    assert_error(response, StatusCode::BAD_REQUEST, "logits").await;
    let response = app
        .post_json(
            "/v2/models/nothing/infer",
            &input(json!([1, 4]), json!([1, 2, 3, 4])),
        )
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "nothing").await;
    let response = app.get("/v2/models/linear/versions/9/ready").await;
    assert_error(response, StatusCode::NOT_FOUND, "9").await;

    let header = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
        "parameters": {"binary_data_size": 16}}]});
    let response = post_binary(&app, "/v2/models/linear/infer", &header, &[0; 12]).await;
    assert_error(response, StatusCode::BAD_REQUEST, "binary_data_size").await;
    let nan: Vec<u8> = [1.0f32, f32::NAN, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let response = post_binary(&app, "/v2/models/linear/infer", &header, &nan).await;
    assert_error(response, StatusCode::BAD_REQUEST, "not a finite number").await;
    let response = app
        .client
        .post(app.url("/v2/models/linear/infer"))
        .header("inference-header-content-length", "18446744073709551616")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::BAD_REQUEST,
        "Inference-Header-Content-Length",
    )
    .await;
}

#[tokio::test]
async fn v2_reads_a_mixed_model_column_by_column_with_text_as_bytes() {
    let app = spawn_app().await;
    churn_model(&app).await;
    let expected = predict_bits(
        &app,
        "/models/churn/predict",
        &json!([
            {"plan": "pro", "tenure": 30.0, "region": "north"},
            {"plan": "basic", "tenure": null, "region": "N/A"},
        ]),
    )
    .await;
    let metadata = app.get_json("/v2/models/churn").await;
    let plan = metadata["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "plan")
        .unwrap();
    assert_eq!(plan["datatype"], "BYTES");
    assert_eq!(metadata["outputs"][1]["datatype"], "BYTES");
    let request = json!({"parameters": {"content_type": "pd"}, "inputs": [
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["pro", "basic"]},
        {"name": "tenure", "shape": [2, 1], "datatype": "FP64", "data": [[30.0], [null]]},
        {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["north", "N/A"]},
    ]});
    let answer = json_of(
        app.post_json("/v2/models/churn/infer", &request).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bits(&answer["outputs"][0]["data"]), expected);
    let classes = &answer["outputs"][1];
    assert_eq!(classes["datatype"], "BYTES");
    assert_eq!(classes["shape"], json!([2]));

    let mut texts = Vec::new();
    for text in ["pro", "basic"] {
        texts.extend_from_slice(&(text.len() as u32).to_le_bytes());
        texts.extend_from_slice(text.as_bytes());
    }
    let header = json!({"parameters": {"binary_data_output": true}, "inputs": [
        {"name": "plan", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": texts.len()}},
        {"name": "tenure", "shape": [2], "datatype": "FP32", "data": [30.0, null]},
        {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["north", "N/A"]},
    ]});
    let (answer, data) =
        split_binary(post_binary(&app, "/v2/models/churn/infer", &header, &texts).await).await;
    assert_eq!(answer["outputs"][0]["parameters"]["binary_data_size"], 8);
    let got: Vec<u32> = data[..8]
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, expected);
    let labels = &data[8..];
    let first = u32::from_le_bytes(labels[..4].try_into().unwrap()) as usize;
    assert_eq!(
        &labels[4..4 + first],
        classes["data"][0].as_str().unwrap().as_bytes()
    );
}
