//! Every body form predict accepts and every problem it names, through the real server,
//! including bodies large enough to be parsed by two threads.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, binary_spec, spawn_app, spawn_with, Lcg, Options, TestApp};
use crate::journey::predict;

async fn trained_model(app: &TestApp) -> String {
    let dataset = app.linear_dataset(100, 7).await;
    let job = app.submit(&binary_spec(&dataset, 1)).await;
    app.wait_finished(&job).await["model_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post_raw(app: &TestApp, path: &str, body: impl Into<String>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .unwrap()
}

fn first(answer: &Value) -> f64 {
    answer["predictions"][0][0].as_f64().unwrap()
}

#[tokio::test]
async fn every_accepted_form_gives_the_same_prediction() {
    let app = spawn_app().await;
    let model = trained_model(&app).await;
    let path = format!("/models/{model}/predict");
    let row = [0.25, -1.5, 0.0, 2.0];
    let reference = predict(&app, &model, &json!({"instances": [row]})).await;
    let p = first(&reference);
    assert!((0.0..=1.0).contains(&p));

    let same_row_bodies = [
        // Keyed by name, in any order, with escapes in the names.
        r#"{"instances": [{"x3": 2, "x1": -1.5, "x0": 0.25, "x\u0032": 0}]}"#.to_owned(),
        // TensorFlow Serving's signature name, before or after, of any JSON type.
        r#"{"signature_name": "serving_default", "instances": [[0.25, -1.5, 0, 2]]}"#.to_owned(),
        r#"{"instances": [[25e-2, -15E-1, -0.0, 2.000]], "signature_name": {"a": [1, null]}}"#
            .to_owned(),
        // Any whitespace.
        "\n{ \"instances\" :\r\n [ [ 0.25 ,\t-1.5 , 0 , 2 ] ] }\n".to_owned(),
    ];
    for body in same_row_bodies {
        let response = post_raw(&app, &path, body.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["predictions"], reference["predictions"], "{body}");
        assert_eq!(answer["classes"], reference["classes"], "{body}");
    }

    // Rows alone and in a batch (row by row below 5 rows, a matrix product above) agree
    // to float precision; array and keyed rows mix in one body.
    let mut lcg = Lcg::new(11);
    let rows: Vec<[f64; 4]> = (0..40)
        .map(|_| [lcg.next(), lcg.next(), 0.0, lcg.next() * 3.0])
        .collect();
    let mut mixed: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
    mixed[7] = json!({"x0": rows[7][0], "x1": rows[7][1], "x2": 0, "x3": rows[7][3]});
    let batch = predict(&app, &model, &json!({"instances": mixed})).await;
    assert_eq!(batch["predictions"].as_array().unwrap().len(), 40);
    for i in [0, 7, 39] {
        let alone = first(&predict(&app, &model, &json!({"instances": [rows[i]]})).await);
        let within = batch["predictions"][i][0].as_f64().unwrap();
        assert!(
            (alone - within).abs() < 1e-5,
            "row {i}: {alone} vs {within}"
        );
    }
}

#[tokio::test]
async fn large_bodies_parse_on_two_threads_with_the_same_answers_and_errors() {
    let app = spawn_app().await;
    let model = trained_model(&app).await;
    let path = format!("/models/{model}/predict");
    // ~600 KB: above the size from which two threads parse, each half of the rows.
    let mut lcg = Lcg::new(5);
    let rows: Vec<String> = (0..12_000)
        .map(|i| {
            let v: Vec<String> = (0..4).map(|_| format!("{:.6}", lcg.next())).collect();
            if i == 9_000 {
                format!(
                    "{{\"x0\":{},\"x1\":{},\"x2\":{},\"x3\":{}}}",
                    v[0], v[1], v[2], v[3]
                )
            } else {
                format!("[{}]", v.join(", "))
            }
        })
        .collect();
    let body = format!("{{\"instances\": [{}]}}", rows.join(",\n"));
    assert!(body.len() > 512 << 10);
    let response = post_raw(&app, &path, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), rows.len());
    for i in [0, 5_999, 6_000, 9_000, 11_999] {
        let row: Value = serde_json::from_str(&rows[i]).unwrap();
        let alone = first(&predict(&app, &model, &json!({"instances": [row]})).await);
        let within = predictions[i][0].as_f64().unwrap();
        assert!(
            (alone - within).abs() < 1e-5,
            "row {i}: {alone} vs {within}"
        );
    }

    // A problem in the second half is named with its row number, as in the first.
    for bad in [100, 10_000] {
        let mut broken = rows.clone();
        broken[bad] = "[1, 2, 3]".into();
        let response = post_raw(
            &app,
            &path,
            format!("{{\"instances\": [{}]}}", broken.join(",")),
        )
        .await;
        assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            &[&format!("instances[{bad}] has 3 values"), "expects 4"],
        )
        .await;
    }
    let mut broken = rows.clone();
    broken[10_000] = "[1, 2, NaN, 4]".into();
    let response = post_raw(
        &app,
        &path,
        format!("{{\"instances\": [{}]}}", broken.join(",")),
    )
    .await;
    assert_problem(response, StatusCode::BAD_REQUEST, &["line", "column"]).await;
}

/// Over `--max-body-bytes` a predict or evaluate body is refused with a problem.
#[tokio::test]
async fn a_predict_body_over_the_limit_is_refused() {
    let app = spawn_with(Options {
        max_body_bytes: Some(16 << 10),
        ..Options::default()
    })
    .await;
    let model = trained_model(&app).await;
    let rows = vec!["[0.1,0.2,0.3,0.4]"; 2_000].join(",");
    for (path, body) in [
        ("predict", format!(r#"{{"instances":[{rows}]}}"#)),
        (
            "evaluate",
            format!(r#"{{"features":[{rows}],"targets":[]}}"#),
        ),
    ] {
        let response = post_raw(&app, &format!("/models/{model}/{path}"), body).await;
        assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, &["length limit"]).await;
    }
}

#[tokio::test]
async fn every_problem_is_named() {
    let app = spawn_app().await;
    let model = trained_model(&app).await;
    let path = format!("/models/{model}/predict");
    let unprocessable = [
        (
            r#"{"instances": [[1, null, 3, 4]]}"#,
            &["instances[0][1]", "null", "not a number"][..],
        ),
        (
            r#"{"instances": [[1, 2, true, 4]]}"#,
            &["instances[0][2]", "boolean"],
        ),
        (
            r#"{"instances": [[1, 2, [3], 4]]}"#,
            &["instances[0][2]", "array"],
        ),
        (
            r#"{"instances": [[1, 2, 3, 4], 5]}"#,
            &["instances[1]", "a number", "array of numbers"],
        ),
        (
            r#"{"instances": [[1, 2, 3, 4], []]}"#,
            &["instances[1] has 0 values"],
        ),
        (
            r#"{"instances": 5}"#,
            &["instances is a number", "array of rows"],
        ),
        (r#"[[1, 2, 3, 4]]"#, &["the body is an array", "instances"]),
        (
            r#"{"instances": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}"#,
            &["twice"],
        ),
        (
            r#"{"signature_name": "x"}"#,
            &["needs an \"instances\" array"],
        ),
        (
            r#"{"instances": [{"x0": "1", "x1": 2, "x2": 3, "x3": 4}]}"#,
            &["instances[0].x0", "string"],
        ),
        (
            r#"{"instances": [{"x0": 1, "x1": 2, "x2": 3, "x3": 4, "x0": 5}]}"#,
            &["gives feature \"x0\" twice"],
        ),
        (
            r#"{"instances": [[1, 2, 3, 4], {"x0": -1e39, "x1": 2, "x2": 3, "x3": 4}]}"#,
            &["instances[1].x0", "f32 range"],
        ),
        (
            r#"{"instances": [[1, 2, 3, 4], [1, 2, 3, 4e38]]}"#,
            &["instances[1][3]", "f32 range"],
        ),
    ];
    for (body, needles) in unprocessable {
        let response = post_raw(&app, &path, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, needles).await;
    }
    // Not JSON: where it stops being JSON.
    let malformed = [
        (
            r#"{"instances": [[NaN, 1, 2, 3]]}"#,
            &["line 1 column 17"][..],
        ),
        (r#"{"instances": [[Infinity, 1, 2, 3]]}"#, &["column 17"]),
        (r#"{"instances": [[-Infinity, 1, 2, 3]]}"#, &["column 18"]),
        (r#"{"instances": [[1, 2, 3, 4]],}"#, &["column 30"]),
        (
            r#"{"instances": [[1, 2, 3, 4]]} x"#,
            &["end of the body", "column 31"],
        ),
        (r#"{"instances": [[1, 2, 3, 4.]]}"#, &["a digit"]),
        (r#"{"instances": [[01, 2, 3, 4]]}"#, &["column 18"]),
        (
            "{\"instances\": [[1, 2, 3, 4]],\n \"signature_name\": \"a\u{1}\"}",
            &["line 2"],
        ),
        (r#"{"instances": [[1, 2, 3, 4]"#, &["EOF"]),
        ("", &["EOF"]),
    ];
    for (body, needles) in malformed {
        let response = post_raw(&app, &path, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_problem(response, StatusCode::BAD_REQUEST, needles).await;
    }
}
