//! Concurrency limits, FIFO order and cancellation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, binary_spec, spawn_with, Options, TestApp};

fn workers(n: usize) -> Options {
    Options {
        workers: Some(n),
        ..Options::default()
    }
}

/// A spec slow enough (wide layers, small batches) to observe while it runs.
fn slow_spec(dataset: &str, epochs: usize) -> Value {
    let mut spec = binary_spec(dataset, epochs);
    spec["model"]["layers"][1]["units"] = json!(256);
    spec["model"]["layers"][3]["units"] = json!(256);
    spec["batch_size"] = json!(8);
    spec
}

async fn statuses(app: &TestApp, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let job = app.get_json(&format!("/jobs/{id}")).await;
        out.push(job["status"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn two_workers_run_two_jobs_while_the_third_waits() {
    let app = spawn_with(workers(2)).await;
    let dataset = app.linear_dataset(1000, 4).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.submit(&slow_spec(&dataset, 6)).await);
    }
    app.wait_job(&ids[1], |job| job["status"] == "running")
        .await;
    let seen = statuses(&app, &ids).await;
    assert_eq!(seen[..2], ["running", "running"], "{seen:?}");
    assert_eq!(
        seen[2], "queued",
        "the third job waits for a free worker: {seen:?}"
    );
    assert_eq!(app.get_json("/jobs?status=running").await["total"], 2);

    for id in &ids {
        assert_eq!(app.wait_finished(id).await["status"], "succeeded");
    }
    let time = |job: &Value, key: &str| job[key].as_str().unwrap().to_owned();
    let jobs: Vec<Value> = fetch_jobs(&app, &ids).await;
    let first_finish = time(&jobs[0], "finished_at").min(time(&jobs[1], "finished_at"));
    assert!(
        time(&jobs[2], "started_at") >= first_finish,
        "FIFO: the third starts when a slot frees"
    );

    // Newest first, paginated.
    let page = app.get_json("/jobs?limit=2").await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["id"], ids[2].as_str());
    assert_eq!(page["items"][1]["id"], ids[1].as_str());
    let rest = app.get_json("/jobs?limit=2&offset=2").await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str());
}

async fn fetch_jobs(app: &TestApp, ids: &[String]) -> Vec<Value> {
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(app.get_json(&format!("/jobs/{id}")).await);
    }
    jobs
}

#[tokio::test]
async fn a_queued_job_cancels_at_once() {
    let app = spawn_with(workers(0)).await;
    let dataset = app.linear_dataset(100, 1).await;
    let id = app.submit(&binary_spec(&dataset, 3)).await;

    // A queued job holds on to its dataset.
    let response = app.delete(&format!("/datasets/{dataset}")).await;
    assert_problem(response, StatusCode::CONFLICT, &["queued or running"]).await;

    let response = app
        .client
        .post(app.url(&format!("/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["status"], "cancelled");
    assert!(job["finished_at"].is_string());

    let again = app
        .client
        .post(app.url(&format!("/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::CONFLICT, &["already cancelled"]).await;
    let missing = "/jobs/00000000-0000-4000-8000-000000000000/cancel";
    let response = app.client.post(app.url(missing)).send().await.unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, &["job"]).await;

    assert_eq!(
        app.delete(&format!("/datasets/{dataset}")).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_running_job_stops_within_a_batch_and_keeps_its_epochs() {
    let app = spawn_with(workers(1)).await;
    let dataset = app.linear_dataset(1000, 2).await;
    let epochs = 500;
    let id = app.submit(&slow_spec(&dataset, epochs)).await;
    app.wait_job(&id, |job| job["epoch"].as_u64().unwrap() >= 1)
        .await;

    let response = app
        .client
        .post(app.url(&format!("/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["model_id"].is_null());

    let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
    let done = metrics["epochs"].as_array().unwrap().len();
    assert!((1..epochs).contains(&done), "{done} epochs kept");
    assert_eq!(job["epoch"], done);

    // The worker is free again.
    let next = app.submit(&binary_spec(&dataset, 2)).await;
    assert_eq!(app.wait_finished(&next).await["status"], "succeeded");
}
