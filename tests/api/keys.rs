//! API keys on every endpoint of the document: none, wrong, predict and full keys.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use nnserve::config::Config;
use nnserve::startup::{Application, StartError};

use crate::helpers::{binary_spec, linear_rows, spawn_with, to_csv, Options, TestApp};

const FULL: &str = "full-key-for-tests";
const PREDICT: &str = "predict-key-for-tests";

async fn keyed_app() -> TestApp {
    spawn_with(Options::with(|c| {
        c.api_keys = vec![FULL.into()];
        c.predict_api_keys = vec!["".into(), PREDICT.into()];
    }))
    .await
}

/// Every operation of the served document, with `{id}` and `{ref}` replaced by an id that
/// exists nowhere, and a name, version and alias that do not either (so a full key that
/// passes gets 404, and nothing is deleted).
fn operations() -> Vec<(Method, String, String)> {
    let document: Value = serde_json::from_str(&nnserve::http::openapi_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "0b9b7a3e-2f67-4c1e-9a51-9d0c5e0f6a11")
                .replace("{ref}", "0b9b7a3e-2f67-4c1e-9a51-9d0c5e0f6a11")
                .replace("{name}", "nobody")
                .replace("{version}", "1")
                .replace("{alias}", "champion");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            out.push((method, path.clone(), concrete));
        }
    }
    assert!(out.len() >= 17, "{out:?}");
    out
}

fn predict_may(method: &Method, path: &str) -> bool {
    // TensorFlow Serving's and the Open Inference Protocol's routes serve models only.
    path.starts_with("/v1/models/")
        || path.starts_with("/v2")
        || matches!(
            (method.as_str(), path),
            ("GET", "/models")
                | ("GET", "/models/{ref}")
                | ("POST", "/models/{ref}/predict")
                | ("POST", "/models/{ref}/evaluate")
                | ("GET", "/models/{name}/versions/{version}")
                | ("POST", "/models/{name}/versions/{version}/predict")
                | ("POST", "/models/{name}/versions/{version}/evaluate")
                | ("GET", "/models/{name}/aliases")
                | ("GET", "/models/{name}/aliases/{alias}")
                | ("GET", "/openapi.json")
        )
}

async fn call(app: &TestApp, method: &Method, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .header("content-type", "application/json");
    if let Some(value) = auth {
        request = request.header("authorization", value);
    }
    if *method == Method::POST {
        request = request.body("{}");
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn every_endpoint_checks_the_key_and_its_kind() {
    let app = keyed_app().await;
    for (method, pattern, path) in operations() {
        let open = matches!(pattern.as_str(), "/healthz" | "/readyz");
        let what = format!("{method} {pattern}");
        for auth in [
            None,
            Some("Bearer wrong-key".to_owned()),
            Some(format!("Bearer {}", &FULL[..FULL.len() - 1])),
            Some(format!("Basic {FULL}")),
            Some("Bearer ".to_owned()),
        ] {
            let response = call(&app, &method, &path, auth.as_deref()).await;
            if open {
                assert_eq!(response.status(), StatusCode::OK, "{what} {auth:?}");
                continue;
            }
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{what} {auth:?}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"nnserve\""
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        let predict = call(&app, &method, &path, Some(&format!("Bearer {PREDICT}"))).await;
        if predict_may(&method, &pattern) || open {
            assert!(
                !matches!(
                    predict.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{what} with a predict key: {}",
                predict.status()
            );
        } else {
            assert_eq!(
                predict.status(),
                StatusCode::FORBIDDEN,
                "{what} with a predict key"
            );
            let body: Value = predict.json().await.unwrap();
            assert!(
                body["detail"].as_str().unwrap().contains("predict key"),
                "{body}"
            );
        }
        let full = call(&app, &method, &path, Some(&format!("bearer {FULL}"))).await;
        assert!(
            !matches!(
                full.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            "{what} with the full key: {}",
            full.status()
        );
    }
}

#[tokio::test]
async fn a_predict_key_serves_a_model_that_a_full_key_trained() {
    let app = keyed_app().await;
    let full = format!("Bearer {FULL}");
    let predict = format!("Bearer {PREDICT}");
    let upload = app
        .client
        .post(app.url("/datasets?target=label"))
        .header("authorization", &full)
        .header("content-type", "text/csv")
        .body(to_csv(&linear_rows(200, 5)))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let dataset: Value = upload.json().await.unwrap();
    let spec = binary_spec(dataset["id"].as_str().unwrap(), 1);
    let submit = app
        .client
        .post(app.url("/jobs"))
        .header("authorization", &predict)
        .json(&spec);
    assert_eq!(submit.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let submit = app
        .client
        .post(app.url("/jobs"))
        .header("authorization", &full)
        .json(&spec);
    let job: Value = submit.send().await.unwrap().json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let job = loop {
        let job: Value = app
            .client
            .get(app.url(&format!("/jobs/{id}")))
            .header("authorization", &full)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] != "queued" && job["status"] != "running" {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let model = job["model_id"].as_str().expect("a model");
    let answer = app
        .client
        .post(app.url(&format!("/models/{model}/predict")))
        .header("authorization", &predict)
        .json(&json!({"instances": [[0.1, 0.2, 0.3, 0.4]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // Scoring a stored dataset would show its rows, which a predict key may not read.
    let dataset_id = dataset["id"].as_str().unwrap();
    for (key, status) in [(&predict, StatusCode::FORBIDDEN), (&full, StatusCode::OK)] {
        for query in ["dataset_id", "dataset%5Fid"] {
            let scored = app
                .client
                .post(app.url(&format!("/models/{model}/predict?{query}={dataset_id}")))
                .header("authorization", key)
                .send()
                .await
                .unwrap();
            assert_eq!(scored.status(), status, "{key} {query}");
        }
    }
    let delete = app
        .client
        .delete(app.url(&format!("/models/{model}")))
        .header("authorization", &predict)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_public_address_needs_a_key_or_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::new(format!("sqlite://{}", dir.path().join("k.db").display()));
        c.addr = "0.0.0.0:0".parse().unwrap();
        c.workers = Some(0);
        c
    };
    let refused = Application::build(config()).await.err().expect("refused");
    assert!(matches!(refused, StartError::Unauthenticated { .. }));
    assert!(
        refused.to_string().contains("--allow-unauthenticated"),
        "{refused}"
    );
    let mut keyed = config();
    keyed.api_keys = vec![FULL.into()];
    assert!(Application::build(keyed).await.is_ok());
    let mut open = config();
    open.allow_unauthenticated = true;
    assert!(Application::build(open).await.is_ok());
}
