//! Restarting the server on the same database.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{binary_spec, linear_rows, spawn_with, Options, TestDb};
use crate::journey::predict;

fn workers(n: usize) -> Options {
    Options {
        workers: Some(n),
        ..Options::default()
    }
}

#[tokio::test]
async fn models_predict_the_same_and_queued_jobs_run_after_a_restart() {
    let app = spawn_with(workers(1)).await;
    let dataset = app.linear_dataset(300, 5).await;
    let job = app.submit(&binary_spec(&dataset, 3)).await;
    let model = app.wait_finished(&job).await["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows: Vec<Vec<f64>> = linear_rows(20, 99)
        .into_iter()
        .map(|(x, _)| x.to_vec())
        .collect();
    let body = json!({"instances": rows});
    let before = predict(&app, &model, &body).await;

    // A server that runs no jobs: the model loads from the database and predicts the same
    // numbers; a new job stays queued.
    let app = app.restart(workers(0)).await;
    assert_eq!(predict(&app, &model, &body).await, before);
    let queued = app.submit(&binary_spec(&dataset, 2)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.get_json(&format!("/jobs/{queued}")).await["status"],
        "queued"
    );
    let listed = app.get_json("/jobs?status=queued").await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["id"], queued.as_str());

    // The queued job runs after the next restart.
    let app = app.restart(workers(1)).await;
    let finished = app.wait_finished(&queued).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(predict(&app, &model, &body).await, before);
    assert_eq!(app.get_json("/models").await["total"], 2);
}

/// A job interrupted by a shutdown (or found `running` after a crash) resumes from its last
/// checkpoint and ends exactly as an uninterrupted run of the same spec.
#[tokio::test]
async fn an_interrupted_job_resumes_from_its_checkpoint() {
    let app = spawn_with(workers(1)).await;
    let dataset = app.linear_dataset(2000, 8).await;
    let mut spec = binary_spec(&dataset, 40);
    spec["model"]["layers"][1]["units"] = json!(256);
    spec["model"]["layers"][3]["units"] = json!(256);
    spec["batch_size"] = json!(16);

    let control = app.submit(&spec).await;
    assert_eq!(app.wait_finished(&control).await["status"], "succeeded");
    let interrupted = app.submit(&spec).await;
    app.wait_job(&interrupted, |job| job["epoch"].as_u64().unwrap() >= 2)
        .await;

    let stopped = app.stop().await;
    let (status, done) = stopped.job_progress(&interrupted).await;
    assert_eq!(
        status, "queued",
        "a graceful stop puts the running job back in the queue"
    );
    assert!(
        (2..40).contains(&done),
        "stopped mid-way, after {done} epochs"
    );
    // What a crash leaves behind: the job still marked running.
    stopped
        .execute_sql(&format!(
            "UPDATE jobs SET status = 'running' WHERE id = '{interrupted}'"
        ))
        .await;
    let app = stopped.start(workers(1)).await;
    let job = app.wait_finished(&interrupted).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    let losses = |metrics: Value| -> Vec<(u64, f64)> {
        metrics["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["epoch"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
            .collect()
    };
    let resumed = losses(app.get_json(&format!("/jobs/{interrupted}/metrics")).await);
    let expected = losses(app.get_json(&format!("/jobs/{control}/metrics")).await);
    assert_eq!(resumed.len(), 40, "one row per epoch, none repeated");
    assert_eq!(resumed, expected);

    let model = |job: &Value| job["model_id"].as_str().unwrap().to_owned();
    let control_job = app.get_json(&format!("/jobs/{control}")).await;
    let rows: Vec<Vec<f64>> = linear_rows(10, 3)
        .into_iter()
        .map(|(x, _)| x.to_vec())
        .collect();
    let body = json!({"instances": rows});
    assert_eq!(
        predict(&app, &model(&job), &body).await,
        predict(&app, &model(&control_job), &body).await
    );
    let response = app.get(&format!("/jobs/{interrupted}/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A checkpoint that no longer loads (say, written by another engine version) costs the
/// trial its progress, not the job: the trial starts over and its epochs are not doubled.
#[tokio::test]
async fn an_unusable_checkpoint_restarts_the_trial() {
    let app = spawn_with(workers(1)).await;
    let dataset = app.linear_dataset(2000, 9).await;
    let mut spec = binary_spec(&dataset, 30);
    spec["model"]["layers"][1]["units"] = json!(256);
    spec["batch_size"] = json!(16);
    let id = app.submit(&spec).await;
    app.wait_job(&id, |job| job["epoch"].as_u64().unwrap() >= 2)
        .await;
    let stopped = app.stop().await;
    let (status, done) = stopped.job_progress(&id).await;
    assert_eq!(status, "queued");
    assert!(
        (2..30).contains(&done),
        "stopped mid-way, after {done} epochs"
    );
    let garbage = match stopped.db {
        TestDb::Sqlite(_) => "x'00ff'",
        TestDb::Postgres(_) => "'\\x00ff'::bytea",
    };
    stopped
        .execute_sql(&format!("UPDATE job_checkpoints SET state = {garbage}"))
        .await;

    let app = stopped.start(workers(1)).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["epoch"], 30);
    assert_eq!(app.epoch_numbers(&id).await, (1..=30).collect::<Vec<_>>());
}
