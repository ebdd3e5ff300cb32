//! How a job ends besides success, over HTTP: divergence fails it and keeps nothing; early
//! stopping keeps the best epoch's weights, not the last epoch's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Lcg, TestApp};
use crate::journey::predict;

/// A regression table whose targets are large enough for SGD with a huge step to overflow.
fn exploding_csv() -> String {
    let mut rng = Lcg::new(17);
    let mut csv = String::from("a,b,c,y\n");
    for _ in 0..64 {
        let (a, b, c) = (rng.next() * 100.0, rng.next() * 100.0, rng.next() * 100.0);
        csv.push_str(&format!("{a:.4},{b:.4},{c:.4},1000000\n"));
    }
    csv
}

#[tokio::test]
async fn a_diverging_job_fails_naming_epoch_and_batch_and_keeps_nothing() {
    let app = spawn_app().await;
    let dataset = app.upload(exploding_csv(), "?name=explode&target=y").await;
    let dataset = dataset["id"].as_str().unwrap();
    let id = app
        .submit(&json!({
            "dataset_id": dataset,
            "model": {"layers": [{"type": "dense", "units": 1}]},
            "loss": "mse",
            "optimizer": {"type": "sgd", "learning_rate": 1e6},
            "epochs": 5, "batch_size": 8, "validation_split": 0.25, "seed": 1
        }))
        .await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("diverged") && error.contains("epoch 1") && error.contains("batch "),
        "{error}"
    );
    assert_eq!(job["model_id"], Value::Null);
    assert_eq!(app.get_json("/models").await["total"], 0);
    let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
    assert_eq!(metrics["epochs"], json!([]), "no epoch finished");

    // Nothing holds the dataset any more: it can be deleted, and then it is gone.
    let path = format!("/datasets/{dataset}");
    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.stored_chunk_rows().await, 0);
}

/// Labels that are coin flips: a wide network can only memorise them, so the validation loss
/// turns up after a few epochs while the training loss keeps falling.
fn noise_csv() -> String {
    let mut rng = Lcg::new(23);
    let mut csv = String::from("a,b,c,d,label\n");
    for _ in 0..120 {
        let x: Vec<String> = (0..4).map(|_| format!("{:.5}", rng.next())).collect();
        let label = u8::from(rng.next() > 0.0);
        csv.push_str(&format!("{},{label}\n", x.join(",")));
    }
    csv
}

fn memorising_spec(dataset: &str, epochs: usize, early_stopping: Option<Value>) -> Value {
    let mut spec = json!({
        "dataset_id": dataset,
        "model": {"layers": [
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dense", "units": 64, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "epochs": epochs, "batch_size": 16, "validation_split": 0.3, "seed": 5
    });
    if let Some(es) = early_stopping {
        spec["early_stopping"] = es;
    }
    spec
}

async fn trained_model(app: &TestApp, spec: &Value) -> (Value, String) {
    let id = app.submit(spec).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let model = job["model_id"].as_str().unwrap().to_owned();
    (job, model)
}

#[tokio::test]
async fn an_early_stopped_job_serves_its_best_epoch() {
    let app = spawn_app().await;
    let dataset = app.upload(noise_csv(), "?name=noise").await;
    let dataset = dataset["id"].as_str().unwrap();
    let patience = 3;
    let es = json!({"monitor": "val_loss", "patience": patience, "restore_best_weights": true});
    let (job, stopped) = trained_model(&app, &memorising_spec(dataset, 200, Some(es))).await;
    assert_eq!(job["stopped_early"], true, "{job}");
    let best = job["best_epoch"].as_u64().unwrap() as usize;
    let last = job["epoch"].as_u64().unwrap() as usize;
    assert_eq!(
        last,
        best + patience,
        "stopped {patience} epochs after the best"
    );
    assert!(last < 200);

    let metrics = app
        .get_json(&format!("/jobs/{}/metrics", job["id"].as_str().unwrap()))
        .await;
    let val: Vec<f64> = metrics["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["val_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(val.len(), last);
    let lowest = val.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(val[best - 1], lowest);
    assert_eq!(job["best_value"].as_f64().unwrap(), lowest);

    // The same seed trained for exactly `best` epochs, and for all `last`: the stopped job's
    // model must answer as the first does, not as the second.
    let (_, at_best) = trained_model(&app, &memorising_spec(dataset, best, None)).await;
    let (_, at_last) = trained_model(&app, &memorising_spec(dataset, last, None)).await;
    let mut rng = Lcg::new(99);
    let rows: Vec<Vec<f64>> = (0..20)
        .map(|_| (0..4).map(|_| rng.next()).collect())
        .collect();
    let body = json!({ "instances": rows });
    let served = predict(&app, &stopped, &body).await["predictions"].clone();
    assert_eq!(served, predict(&app, &at_best, &body).await["predictions"]);
    assert_ne!(served, predict(&app, &at_last, &body).await["predictions"]);
}
