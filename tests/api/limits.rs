//! Resource limits: memory admission for jobs and predicts, the queue bound, request
//! timeouts, the bound on concurrent requests and the model cache's byte bound.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_problem, binary_spec, spawn_app, spawn_with, Options, TestApp};

fn bomb(dataset: &str, units: u64) -> Value {
    let mut spec = binary_spec(dataset, 1);
    spec["model"]["layers"] = json!([
        {"type": "dense", "units": units, "activation": "relu"},
        {"type": "dense", "units": units, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}
    ]);
    spec
}

#[tokio::test]
async fn memory_bombs_are_refused_before_anything_is_allocated() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(200, 1).await;
    for units in [100_000, 1_000_000_000] {
        let response = app.post_json("/jobs", &bomb(&dataset, units)).await;
        assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            &[
                "estimated",
                "--max-job-memory-bytes",
                "layer \"dense_1\" with",
                "GiB",
            ],
        )
        .await;
    }
    assert_eq!(app.get_json("/jobs").await["total"], 0, "nothing queued");
    // Still serving, and training.
    let id = app.submit(&binary_spec(&dataset, 2)).await;
    assert_eq!(app.wait_finished(&id).await["status"], "succeeded");
}

#[tokio::test]
async fn a_job_over_a_configured_limit_names_it() {
    let app = spawn_with(Options::with(|c| c.max_job_memory_bytes = Some(100_000))).await;
    let dataset = app.linear_dataset(200, 1).await;
    let mut spec = binary_spec(&dataset, 1);
    spec["model"]["layers"][1]["units"] = json!(2000);
    let body = assert_problem(
        app.post_json("/jobs", &spec).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["limit of 97.7 KiB", "layer \"dense\""],
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("with 10000 parameters"),
        "{body}"
    );
}

/// Keras trains one batch of all rows when `batch_size` exceeds them: the same epochs
/// as `batch_size` = the training rows, and no buffer sized by the request.
#[tokio::test]
async fn a_batch_size_beyond_the_rows_is_one_batch_of_all_rows() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(200, 2).await;
    let mut losses = Vec::new();
    for batch_size in [json!(1_000_000_000_000u64), json!(160)] {
        let mut spec = binary_spec(&dataset, 3);
        spec["batch_size"] = batch_size;
        let id = app.submit(&spec).await;
        assert_eq!(app.wait_finished(&id).await["status"], "succeeded");
        let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
        let epochs: Vec<(Value, Value)> = metrics["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["loss"].clone(), e["val_loss"].clone()))
            .collect();
        assert_eq!(epochs.len(), 3);
        losses.push(epochs);
    }
    assert_eq!(losses[0], losses[1]);
}

async fn small_model(app: &TestApp) -> String {
    let dataset = app.linear_dataset(200, 3).await;
    let id = app.submit(&binary_spec(&dataset, 1)).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["model_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_predict_body_that_could_exceed_the_memory_limit_is_refused() {
    let app = spawn_with(Options::with(|c| c.max_job_memory_bytes = Some(2 << 20))).await;
    let model = small_model(&app).await;
    let row = json!([0.1, 0.2, 0.3, 0.4]);
    let small = json!({"instances": vec![row.clone(); 10]});
    let path = format!("/models/{model}/predict");
    assert_eq!(app.post_json(&path, &small).await.status(), StatusCode::OK);
    let large = json!({"instances": vec![row; 60_000]});
    assert_problem(
        app.post_json(&path, &large).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["rows", "estimated", "--max-job-memory-bytes", "fewer rows"],
    )
    .await;
    assert_eq!(app.post_json(&path, &small).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let app = spawn_with(Options {
        workers: Some(0),
        ..Options::with(|c| c.max_queued_jobs = 2)
    })
    .await;
    let dataset = app.linear_dataset(100, 4).await;
    let first = app.submit(&binary_spec(&dataset, 1)).await;
    app.submit(&binary_spec(&dataset, 1)).await;
    let response = app.post_json("/jobs", &binary_spec(&dataset, 1)).await;
    let retry = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(retry.parse::<u64>().unwrap() > 0);
    assert_problem(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        &["2 jobs are already queued", "--max-queued-jobs"],
    )
    .await;
    assert_eq!(app.get_json("/jobs").await["total"], 2);
    // A cancelled job frees its place.
    let cancel = app
        .post_json(&format!("/jobs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    app.submit(&binary_spec(&dataset, 1)).await;
}

/// Sends the head of an upload that promises more body than it sends, and keeps the
/// connection open: a slow client.
async fn slow_upload(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /datasets?target=label HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\nx0,label\n1,0\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp
}

async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut buffer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buffer))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn a_slow_client_times_out_with_408_and_stores_nothing() {
    let app = spawn_with(Options::with(|c| c.request_timeout_seconds = 1)).await;
    let mut tcp = slow_upload(&app).await;
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("--request-timeout-seconds"), "{answer}");
    assert_eq!(app.get_json("/datasets").await["total"], 0);
}

#[tokio::test]
async fn requests_beyond_the_concurrency_bound_get_503_but_probes_answer() {
    let app = spawn_with(Options::with(|c| c.max_concurrent_requests = 1)).await;
    let held = slow_upload(&app).await;
    // The upload holds the only slot once its head is parsed.
    let mut busy = None;
    for _ in 0..100 {
        let response = app.get("/datasets").await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            busy = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = busy.expect("a second request is refused while the slot is held");
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_problem(
        busy,
        StatusCode::SERVICE_UNAVAILABLE,
        &["--max-concurrent-requests"],
    )
    .await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        if app.get("/datasets").await.status() == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the slot is freed when the slow client goes away");
}

/// With room for one model only, serving a second evicts the first: it is read from the
/// database again on its next request, which the test proves by removing its row.
#[tokio::test]
async fn the_model_cache_evicts_the_least_recently_used_model() {
    let app = spawn_with(Options::with(|c| c.model_cache_bytes = 1)).await;
    let first = small_model(&app).await;
    let second = small_model(&app).await;
    let body = json!({"instances": [[0.1, 0.2, 0.3, 0.4]]});
    let predict = |id: &str| format!("/models/{id}/predict");
    let answer: Value = app
        .post_json(&predict(&first), &body)
        .await
        .json()
        .await
        .unwrap();
    let again: Value = app
        .post_json(&predict(&second), &body)
        .await
        .json()
        .await
        .unwrap();
    assert!(answer["predictions"].is_array() && again["predictions"].is_array());
    // The second is cached: it still answers after its row is gone.
    app.db
        .execute(&format!("DELETE FROM models WHERE id = '{second}'"))
        .await;
    assert_eq!(
        app.post_json(&predict(&second), &body).await.status(),
        StatusCode::OK
    );
    // The first was evicted: it answers only while its row exists, and the same again.
    let reloaded: Value = app
        .post_json(&predict(&first), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reloaded, answer);
    // Now the first is the one cached, and the second (row gone) cannot come back.
    assert_eq!(
        app.post_json(&predict(&second), &body).await.status(),
        StatusCode::NOT_FOUND
    );
}
