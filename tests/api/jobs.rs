//! Job submission: validation before queueing, batch-size trials.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, binary_spec, spawn_with, Options};

#[tokio::test]
async fn invalid_jobs_are_rejected_before_queueing() {
    let app = spawn_with(Options {
        workers: Some(0),
        ..Options::default()
    })
    .await;
    let dataset = app.linear_dataset(50, 1).await;
    let good = binary_spec(&dataset, 2);
    let with = |path: &[&str], value: Value| {
        let mut spec = good.clone();
        let mut target = &mut spec;
        for key in &path[..path.len() - 1] {
            target = if let Ok(i) = key.parse::<usize>() {
                &mut target[i]
            } else {
                &mut target[*key]
            };
        }
        target[path[path.len() - 1]] = value;
        spec
    };
    let mut without_dataset = good.clone();
    without_dataset
        .as_object_mut()
        .unwrap()
        .remove("dataset_id");
    let cases: Vec<(Value, &[&str])> = vec![
        (without_dataset, &["dataset_id"]),
        (
            with(&["dataset_id"], json!("nope")),
            &["dataset_id", "nope"],
        ),
        (
            with(
                &["dataset_id"],
                json!("00000000-0000-4000-8000-000000000000"),
            ),
            &["dataset_id", "not found"],
        ),
        (
            with(&["model", "layers", "2", "rate"], json!(1.0)),
            &["model.layers[2].rate", "1"],
        ),
        (
            with(&["model", "layers", "1", "activation"], json!("swish2")),
            &["model.layers[1].activation"],
        ),
        (with(&["epochs"], json!(0)), &["epochs"]),
        (with(&["loss"], json!("hinge_loss")), &["loss"]),
        (with(&["colour"], json!("red")), &["colour"]),
        (
            with(&["validation_split"], json!(0.999)),
            &["validation_split"],
        ),
        (json!([1, 2]), &["object"]),
    ];
    for (body, needles) in cases {
        let response = app.post_json("/jobs", &body).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, needles).await;
    }
    let response = app
        .client
        .post(app.url("/jobs"))
        .header("content-type", "application/json")
        .body("{\"dataset_id\": ")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, &["EOF"]).await;
    let listed = app.get_json("/jobs").await;
    assert_eq!(listed["total"], 0, "nothing was queued");

    assert_problem(
        app.get("/jobs?status=sleeping").await,
        StatusCode::BAD_REQUEST,
        &["sleeping"],
    )
    .await;
    let missing = "/jobs/00000000-0000-4000-8000-000000000000";
    assert_problem(app.get(missing).await, StatusCode::NOT_FOUND, &["job"]).await;
    let metrics = format!("{missing}/metrics");
    assert_problem(app.get(&metrics).await, StatusCode::NOT_FOUND, &["job"]).await;
}

#[tokio::test]
async fn a_batch_size_list_trains_one_trial_per_size_and_keeps_the_best() {
    let app = spawn_with(Options::default()).await;
    let dataset = app.linear_dataset(400, 6).await;
    let mut spec = binary_spec(&dataset, 3);
    spec["batch_size"] = json!([16, 64]);
    let id = app.submit(&spec).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["batch_sizes"], json!([16, 64]));
    assert_eq!(job["epochs"], 6);
    assert_eq!(job["epoch"], 6);

    let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
    let records = metrics["epochs"].as_array().unwrap();
    let tags: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["trial"]["batch_size"].as_u64().unwrap(),
                r["epoch"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tags, [(16, 1), (16, 2), (16, 3), (64, 1), (64, 2), (64, 3)]);

    // The kept trial is the one with the lowest val_loss at its best epoch.
    let best = records
        .iter()
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["val_loss"].as_f64().unwrap())
        })
        .unwrap();
    let best_size = best["trial"]["batch_size"].clone();
    assert_eq!(job["best_batch_size"], best_size);
    assert_eq!(job["best_epoch"], best["epoch"]);
    assert_eq!(job["best_value"], best["val_loss"]);
    let model = app
        .get_json(&format!("/models/{}", job["model_id"].as_str().unwrap()))
        .await;
    assert_eq!(model["batch_size"], best_size);
}
