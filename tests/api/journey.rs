//! The whole journey: CSV upload → job → metrics → predict → accuracy on held-back rows.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{binary_spec, linear_rows, spawn_app, to_csv};

#[tokio::test]
async fn upload_train_watch_and_predict() {
    let app = spawn_app().await;
    let rows = linear_rows(1000, 11);
    let (train, held_back) = rows.split_at(800);
    let dataset = app.upload(to_csv(train), "?name=linear&target=label").await;
    let dataset_id = dataset["id"].as_str().unwrap();

    let epochs = 12;
    let job_id = app.submit(&binary_spec(dataset_id, epochs)).await;
    let job = app.wait_finished(&job_id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["epoch"], epochs);
    assert_eq!(job["epochs"], epochs);
    assert_eq!(job["monitor"], "val_loss");
    assert!(job["best_epoch"]
        .as_u64()
        .is_some_and(|e| (1..=epochs as u64).contains(&e)));
    let model_id = job["model_id"].as_str().expect("model_id").to_owned();

    // One row per epoch, in order, with a training loss that falls.
    let metrics = app.get_json(&format!("/jobs/{job_id}/metrics")).await;
    let records = metrics["epochs"].as_array().unwrap();
    assert_eq!(records.len(), epochs);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["epoch"], i + 1);
        for key in [
            "loss",
            "val_loss",
            "accuracy",
            "val_accuracy",
            "learning_rate",
            "seconds",
        ] {
            assert!(
                record[key].is_number(),
                "epoch {} lacks {key}: {record}",
                i + 1
            );
        }
        assert!(
            record.get("trial").is_none(),
            "single batch size: no trial tag"
        );
        // The rate as the spec wrote it, not its f32 widened (0.009999999776482582).
        assert_eq!(record["learning_rate"], 0.01);
    }
    let losses: Vec<f64> = records
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    let third = epochs / 3;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (early, middle, late) = (
        mean(&losses[..third]),
        mean(&losses[third..2 * third]),
        mean(&losses[2 * third..]),
    );
    assert!(
        early > middle && middle > late,
        "loss should fall: {losses:?}"
    );
    assert!(
        losses[epochs - 1] < 0.5 * losses[0],
        "loss should at least halve: {losses:?}"
    );
    assert_eq!(metrics["best_epoch"], job["best_epoch"]);

    // The model describes itself.
    let model = app.get_json(&format!("/models/{model_id}")).await;
    assert_eq!(model["job_id"], job_id.as_str());
    assert_eq!(model["dataset_id"], dataset_id);
    assert_eq!(model["task"], "binary");
    assert_eq!(model["feature_names"], json!(["x0", "x1", "x2", "x3"]));
    assert_eq!(model["target_names"], json!(["label"]));
    assert_eq!(model["final_metrics"]["epoch"], epochs);
    assert_eq!(model["summary"]["layers"].as_array().unwrap().len(), 5);
    assert!(model["summary"]["total_params"].as_u64().unwrap() > 100);
    assert_eq!(app.get_json("/models").await["total"], 1);

    // Held-back rows: the rule is linear, so the net should get nearly all of them.
    let instances: Vec<Vec<f64>> = held_back.iter().map(|(x, _)| x.to_vec()).collect();
    let answer = predict(&app, &model_id, &json!({"instances": instances})).await;
    let predictions = answer["predictions"].as_array().unwrap();
    let classes = answer["classes"].as_array().unwrap();
    assert_eq!(predictions.len(), held_back.len());
    let mut correct = 0;
    for ((prediction, class), (_, label)) in predictions.iter().zip(classes).zip(held_back) {
        let p = prediction[0].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(class.as_u64().unwrap(), u64::from(p > 0.5));
        correct += usize::from(class.as_u64().unwrap() == u64::from(*label));
    }
    let accuracy = correct as f64 / held_back.len() as f64;
    assert!(accuracy >= 0.9, "held-back accuracy {accuracy}");

    // Rows keyed by feature name give the same answer as arrays (one row each: a row alone
    // and the same row in a large batch agree to float precision, not to the bit).
    let (x, _) = held_back[0];
    let keyed = json!({"instances": [{"x3": x[3], "x1": x[1], "x0": x[0], "x2": x[2]}]});
    let alone = predict(&app, &model_id, &json!({"instances": [x]})).await;
    assert_eq!(
        predict(&app, &model_id, &keyed).await["predictions"][0],
        alone["predictions"][0]
    );
    let within = predictions[0][0].as_f64().unwrap();
    assert!((alone["predictions"][0][0].as_f64().unwrap() - within).abs() < 1e-5);

    // Evaluate on the held-back rows, as JSON and as CSV: same loss, accuracy as computed.
    let features: Vec<Vec<f64>> = held_back.iter().map(|(x, _)| x.to_vec()).collect();
    let labels: Vec<u8> = held_back.iter().map(|(_, l)| *l).collect();
    let response = app
        .post_json(
            &format!("/models/{model_id}/evaluate"),
            &json!({"features": features, "targets": labels}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let by_json: Value = response.json().await.unwrap();
    assert_eq!(by_json["rows"], held_back.len());
    let evaluated_accuracy = by_json["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        (evaluated_accuracy - accuracy).abs() < 0.02,
        "{evaluated_accuracy} vs {accuracy}"
    );
    let response = app
        .post_csv(&format!("/models/{model_id}/evaluate"), to_csv(held_back))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let by_csv: Value = response.json().await.unwrap();
    assert!((by_csv["loss"].as_f64().unwrap() - by_json["loss"].as_f64().unwrap()).abs() < 1e-4);

    // The loss curve renders.
    let svg = app.get(&format!("/jobs/{job_id}/loss.svg")).await;
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
}

pub async fn predict(app: &crate::helpers::TestApp, model_id: &str, body: &Value) -> Value {
    let response = app
        .post_json(&format!("/models/{model_id}/predict"), body)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}
