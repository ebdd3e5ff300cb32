//! Process deaths of the real binary: SIGKILL mid-epoch and mid-upload, SIGTERM, a job
//! that keeps killing its process, and an allocation the operating system refuses.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{binary_spec, linear_rows, to_csv, TestApp};
use crate::process::start;

/// Wide layers and small batches: tens of milliseconds per epoch or more, so a kill
/// lands inside an epoch.
fn slow_spec(dataset: &str, epochs: usize) -> Value {
    let mut spec = binary_spec(dataset, epochs);
    spec["model"]["layers"][1]["units"] = json!(256);
    spec["model"]["layers"][3]["units"] = json!(256);
    spec["batch_size"] = json!(8);
    spec
}

/// Epoch records without their wall-clock time, which no two runs share.
async fn records(app: &TestApp, job: &str) -> Vec<Value> {
    let metrics = app.get_json(&format!("/jobs/{job}/metrics")).await;
    metrics["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("seconds");
            e
        })
        .collect()
}

async fn predictions(app: &TestApp, model: &str) -> Value {
    let rows: Vec<Vec<f64>> = linear_rows(30, 77)
        .into_iter()
        .map(|(x, _)| x.to_vec())
        .collect();
    let response = app
        .post_json(
            &format!("/models/{model}/predict"),
            &json!({"instances": rows}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// One job trained to the end by one process: the control for the killed runs.
async fn control_run(csv: &str, spec: impl Fn(&str) -> Value) -> (Vec<Value>, Value) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start(&dir, &["--workers", "1"], None);
    let dataset = server.app.upload(csv.to_owned(), "?target=label").await;
    let job = server
        .app
        .submit(&spec(dataset["id"].as_str().unwrap()))
        .await;
    let done = server.app.wait_finished(&job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let model = done["model_id"].as_str().unwrap();
    (
        records(&server.app, &job).await,
        predictions(&server.app, model).await,
    )
}

#[tokio::test]
async fn sigkill_mid_epoch_resumes_bit_identically() {
    let csv = to_csv(&linear_rows(600, 11));
    let epochs = 8;
    let (control, control_predictions) = control_run(&csv, |d| slow_spec(d, epochs)).await;

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start(&dir, &["--workers", "1"], None);
    let dataset = server.app.upload(csv.clone(), "?target=label").await;
    let job = server
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), epochs))
        .await;
    let mut kills = 0;
    let mut server = Some(server);
    // Two deaths at different epochs, each inside an epoch (after one finished).
    for after in [2, 5] {
        let app = &server.as_ref().unwrap().app;
        let seen = app
            .wait_job(&job, |j| j["epoch"].as_u64() >= Some(after))
            .await;
        assert_eq!(seen["status"], "running", "{seen}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let db = app.db.clone();
        server.take().unwrap().sigkill();
        kills += 1;
        assert_eq!(db.integrity().await, "ok");
        server = Some(start(&dir, &["--workers", "1"], None));
    }
    let server = server.unwrap();
    let done = server.app.wait_finished(&job).await;
    assert_eq!(done["status"], "succeeded", "{done} after {kills} kills");
    let resumed = records(&server.app, &job).await;
    let numbers: Vec<u64> = resumed
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=epochs as u64).collect::<Vec<_>>(),
        "no epoch missing or doubled"
    );
    assert_eq!(resumed, control, "every epoch's metrics to the last bit");
    let model = done["model_id"].as_str().unwrap();
    assert_eq!(predictions(&server.app, model).await, control_predictions);
    let db = server.app.db.clone();
    let (status, _) = server.sigterm();
    assert!(status.success());
    assert_eq!(db.integrity().await, "ok");
}

/// Opens an upload whose head promises `total` bytes and sends `sent` of them.
async fn partial_upload(app: &TestApp, csv: &str, sent: usize) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /datasets?target=label&name=partial HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        csv.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&csv.as_bytes()[..sent]).await.unwrap();
    tcp.flush().await.unwrap();
    tcp
}

#[tokio::test]
async fn sigkill_during_an_upload_leaves_no_partial_dataset() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start(&dir, &[], None);
    let kept = server
        .app
        .upload(to_csv(&linear_rows(50, 1)), "?target=label")
        .await;
    // Several 8 MiB chunks' worth, most of it sent before the kill.
    let csv = to_csv(&linear_rows(400_000, 2));
    let _upload = partial_upload(&server.app, &csv, csv.len() * 3 / 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = server.app.db.clone();
    server.sigkill();
    assert_eq!(db.integrity().await, "ok");
    let server = start(&dir, &[], None);
    let list = server.app.get_json("/datasets").await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["id"], kept["id"]);
    let rows = server.app.stored_chunk_rows().await;
    assert_eq!(rows, 50, "no chunk of the killed upload is left");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_checkpoints_and_exits_0() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start(&dir, &["--workers", "1"], None);
    let csv = to_csv(&linear_rows(600, 3));
    let dataset = server.app.upload(csv.clone(), "?target=label").await;
    let job = server
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), 30))
        .await;
    server
        .app
        .wait_job(&job, |j| j["epoch"].as_u64() >= Some(1))
        .await;
    let mut upload = partial_upload(&server.app, &csv, csv.len() / 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let db = server.app.db.clone();
    let rest = csv.as_bytes()[csv.len() / 2..].to_vec();
    let finish = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        upload.write_all(&rest).await.unwrap();
        let mut answer = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut upload, &mut answer)
            .await
            .ok();
        String::from_utf8_lossy(&answer).into_owned()
    });
    let (status, took) = tokio::task::spawn_blocking(move || server.sigterm())
        .await
        .unwrap();
    let answer = finish.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight upload finished: {answer}"
    );
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert_eq!(db.integrity().await, "ok");

    let server = start(&dir, &["--workers", "1"], None);
    assert_eq!(server.app.get_json("/datasets").await["total"], 2);
    let done = server.app.wait_job(&job, |j| {
        j["status"] != "queued" && j["status"] != "running"
    });
    let done = tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .expect("finishes");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        server.app.epoch_numbers(&job).await,
        (1..=30).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_job_whose_process_dies_three_times_before_an_epoch_is_failed() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut server = start(&dir, &["--workers", "1"], None);
    // An epoch of seconds: 20 000 rows in batches of 8 through 256-wide layers.
    let csv = to_csv(&linear_rows(20_000, 4));
    let dataset = server.app.upload(csv, "?target=label").await;
    let job = server
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), 3))
        .await;
    for death in 1..=3 {
        let running = server.app.wait_job(&job, |j| j["status"] != "queued").await;
        assert_eq!(running["status"], "running", "death {death}: {running}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.sigkill();
        server = start(&dir, &["--workers", "1"], None);
        let seen = server.app.get_json(&format!("/jobs/{job}")).await;
        assert_eq!(
            seen["epoch"], 0,
            "each death came before the first epoch ended"
        );
        if death < 3 {
            assert_ne!(
                seen["status"], "failed",
                "resumed after death {death}: {seen}"
            );
        } else {
            assert_eq!(seen["status"], "failed", "{seen}");
            let error = seen["error"].as_str().unwrap();
            assert!(error.contains("died 3 times in a row"), "{error}");
        }
    }
    // The dataset is free again and the service serves.
    let deleted = server
        .app
        .delete(&format!("/datasets/{}", dataset["id"].as_str().unwrap()))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

/// Under an address-space limit the kernel refuses the big kernel's pages: the job fails
/// with the allocator's refusal in its error, and the process goes on serving.
#[tokio::test]
async fn a_refused_allocation_fails_only_its_job() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start(
        &dir,
        &["--workers", "1", "--max-job-memory-bytes", "1000000000000"],
        Some("ulimit -v 4000000 && exec \"$0\" \"$@\""),
    );
    let dataset = server
        .app
        .upload(to_csv(&linear_rows(100, 5)), "?target=label")
        .await;
    let id = dataset["id"].as_str().unwrap();
    let mut huge = binary_spec(id, 1);
    // 45 000² ≈ 2·10⁹ weights: 8 GB for the kernel alone, over the 4 GB allowed.
    huge["model"]["layers"][1]["units"] = json!(45_000);
    huge["model"]["layers"][3]["units"] = json!(45_000);
    let job = server.app.submit(&huge).await;
    let failed = server.app.wait_finished(&job).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("out of memory"), "{error}");
    assert!(failed["model_id"].is_null());
    let small = server.app.submit(&binary_spec(id, 2)).await;
    assert_eq!(
        server.app.wait_finished(&small).await["status"],
        "succeeded"
    );
    assert_eq!(server.app.get("/healthz").await.status(), StatusCode::OK);
}
