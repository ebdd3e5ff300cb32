//! Jobs that choose how each column becomes input values (`features`, `crosses`,
//! `exclude`), on the churn table of `tables`: the choices reach the model, the model
//! predicts from raw values with them, and a bad choice is refused naming the column.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, churn_spec as spec, churn_table, spawn_app, spawn_with, Options, TestApp,
};
use crate::tables::succeeded_with_accuracy;

/// (column, encoding, width) of each input in a model's summary.
async fn inputs(app: &TestApp, job: &Value) -> (String, Vec<(String, String, u64)>, Value) {
    let model_id = job["model_id"].as_str().unwrap().to_owned();
    let model = app.get_json(&format!("/models/{model_id}")).await;
    let inputs = model["summary"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["column"].as_str().unwrap().to_owned(),
                i["encoding"].as_str().unwrap().to_owned(),
                i["width"].as_u64().unwrap(),
            )
        })
        .collect();
    (model_id, inputs, model)
}

#[tokio::test]
async fn configured_columns_reach_the_model_and_its_predictions() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(1000, 7), "?target=churn").await;
    let id = dataset["id"].as_str().unwrap();
    let mut job = spec(id);
    job["features"] = json!({
        "customer": {"type": "string_categorical", "max_tokens": 5},
        "plan": {"type": "string_hashed", "num_bins": 64},
        "tenure": {"type": "float_discretized", "num_bins": 4},
    });
    job["crosses"] = json!([{"feature_names": ["plan", "region"], "crossing_dim": 8}]);
    let job = app.submit(&job).await;
    let job = succeeded_with_accuracy(&app, &job).await;
    let (model_id, inputs, model) = inputs(&app, &job).await;
    let expected = [
        ("customer", "one_hot", 6),
        ("plan", "hashed", 64),
        // Four bins and the missing indicator (the rule needs to see a missing tenure).
        ("tenure", "discretize", 5),
        ("region", "one_hot", 3),
        ("plan_X_region", "cross", 8),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(c, e, w)| (c.to_string(), e.to_string(), *w))
        .collect();
    assert_eq!(inputs, expected, "{model}");
    let tenure = &model["summary"]["inputs"][2];
    let bounds: Vec<f64> = tenure["bin_boundaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect();
    assert_eq!(bounds.len(), 3, "{tenure}");
    assert!(bounds.windows(2).all(|w| w[0] < w[1]) && bounds[0] > 0.0 && bounds[2] < 70.0);
    assert!(tenure["missing_indicator"].as_bool().unwrap());
    // Every customer appears once, so the five kept are the first five of the training
    // split, in upload order (ties keep it).
    let kept: Vec<&str> = model["summary"]["inputs"][0]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 5, "{model}");
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]) && kept[4] < "c00020",
        "{kept:?}"
    );

    let answer = app
        .post_json(
            &format!("/models/{model_id}/predict"),
            &json!({"instances": [
                {"customer": "c00001", "plan": "pro", "tenure": 30, "region": "north"},
                {"customer": "new", "plan": "basic", "tenure": 30, "region": "north"},
                {"customer": "new", "plan": "basic", "tenure": null},
                {"plan": "platinum", "tenure": 12.5, "region": "south"},
            ]}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    let classes = &answer["classes"];
    assert_eq!(
        (&classes[0], &classes[1], &classes[2]),
        (&json!("yes"), &json!("no"), &json!("yes")),
        "{answer}"
    );
    assert!(
        classes[3].is_string(),
        "an unseen plan is a valid value: {answer}"
    );
}

/// A plan embedded in a trained table of two values per slot: the summary counts the
/// table as trainable weights, and the stored model predicts from raw text with it.
#[tokio::test]
async fn an_embedded_column_trains_its_table() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(1000, 7), "?target=churn").await;
    let mut job = spec(dataset["id"].as_str().unwrap());
    job["features"] = json!({
        "plan": {"type": "string_categorical", "output_mode": "embedding", "embedding_dim": 2},
    });
    let job = app.submit(&job).await;
    let job = succeeded_with_accuracy(&app, &job).await;
    let (model_id, inputs, model) = inputs(&app, &job).await;
    assert_eq!(inputs[1], ("plan".into(), "embedding".into(), 2), "{model}");
    let encoding = &model["summary"]["layers"][0];
    // One out-of-vocabulary row and one per plan, two values each.
    assert_eq!(
        (&encoding["name"], &encoding["params"]),
        (&json!("encoding"), &json!(8)),
        "{model}"
    );
    let dense = model["summary"]["layers"][1]["params"].as_u64().unwrap();
    assert_eq!(
        model["summary"]["trainable_params"].as_u64().unwrap(),
        8 + dense + model["summary"]["layers"][2]["params"].as_u64().unwrap()
    );
    let answer = app
        .post_json(
            &format!("/models/{model_id}/predict"),
            &json!({"instances": [
                {"customer": "c00001", "plan": "pro", "tenure": 30, "region": "north"},
                {"customer": "c00002", "plan": "basic", "tenure": 30, "region": "north"},
                {"plan": "platinum", "tenure": 12.5, "region": "south"},
            ]}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["classes"][0], "yes", "{answer}");
    assert_eq!(answer["classes"][1], "no", "{answer}");
    assert!(answer["classes"][2].is_string(), "{answer}");
}

/// `missing: "drop_row"` leaves the rows without a tenure out of training and validation,
/// in memory and streamed alike; the job counts them, and predict refuses a row without
/// one (the model learnt nothing for it).
#[tokio::test]
async fn drop_row_leaves_the_rows_without_the_value_out() {
    let csv = churn_table(2000, 11);
    let empty = csv
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(2) == Some(""))
        .count();
    assert!(empty > 100, "{empty}");
    let in_memory = spawn_app().await;
    let streamed = spawn_with(Options {
        workers: Some(1),
        dataset_memory_bytes: Some(8 << 10),
        ..Options::with(|c| c.dataset_chunk_bytes = 4 << 10)
    })
    .await;
    for (app, path) in [(&in_memory, "memory"), (&streamed, "streamed")] {
        let dataset = app.upload(csv.clone(), "?target=churn").await;
        let mut job = spec(dataset["id"].as_str().unwrap());
        job["features"] = json!({"tenure": {"type": "float_normalized", "missing": "drop_row"}});
        let job = app.submit(&job).await;
        let job = succeeded_with_accuracy(app, &job).await;
        assert_eq!(job["data_path"], path, "{job}");
        let rows = &job["rows"];
        assert_eq!(rows["dropped"], empty, "{job}");
        assert_eq!(rows["unlabelled"], 0, "{job}");
        let trained = rows["training"].as_u64().unwrap() + rows["validation"].as_u64().unwrap();
        assert_eq!(trained as usize, 2000 - empty, "{job}");
        let (model_id, inputs, model) = inputs(app, &job).await;
        // No trained row misses a tenure, so there is no indicator.
        assert_eq!(
            inputs[2],
            ("tenure".into(), "standardize".into(), 1),
            "{model}"
        );
        let predict = format!("/models/{model_id}/predict");
        let answer: Value = app
            .post_json(
                &predict,
                &json!({"instances": [{"plan": "pro", "tenure": 30}]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["classes"], json!(["yes"]), "{answer}");
        let body =
            json!({"instances": [{"plan": "pro", "tenure": 30}, {"plan": "pro", "tenure": null}]});
        assert_problem(
            app.post_json(&predict, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            &["tenure", "drop_row"],
        )
        .await;
    }
}

#[tokio::test]
async fn an_excluded_column_is_not_read() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(1000, 7), "?target=churn").await;
    let mut job = spec(dataset["id"].as_str().unwrap());
    job["exclude"] = json!(["plan"]);
    let id = app.submit(&job).await;
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["spec"]["exclude"], json!(["plan"]));
    let (_, inputs, _) = inputs(&app, &done).await;
    assert_eq!(inputs[1], ("plan".into(), "skip".into(), 0));
    // Without the plan the rule is out of reach: "pro" is a third of the rows.
    let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
    let last = metrics["epochs"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["val_accuracy"].as_f64().unwrap() < 0.9, "{last}");
    let model_id = done["model_id"].as_str().unwrap();
    let importance = app
        .get_json(&format!("/models/{model_id}/importance"))
        .await;
    let listed: Vec<&str> = importance["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert!(
        !listed.contains(&"plan") && listed.contains(&"tenure"),
        "{importance}"
    );
}

#[tokio::test]
async fn bad_column_choices_are_refused_naming_the_column() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(200, 7), "?target=churn").await;
    let id = dataset["id"].as_str().unwrap();
    let refused = |extra: Value| {
        let mut job = spec(id);
        for (k, v) in extra.as_object().unwrap() {
            job[k] = v.clone();
        }
        job
    };
    for (extra, needles) in [
        (
            json!({"features": {"plan ": "string_categorical"}}),
            vec!["features.plan ", "plan, tenure"],
        ),
        (
            json!({"features": {"plan": "float_normalized"}}),
            vec!["features.plan.type", "holds text"],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "max_tokens": 0}}}),
            vec!["features.plan.max_tokens", "in [1, 1048576]"],
        ),
        (
            json!({"features": {"plan": {"type": "string_hashed", "num_bins": 1_000_000_000_000u64}}}),
            vec!["features.plan.num_bins", "1000000000000"],
        ),
        (
            json!({"crosses": [{"feature_names": ["plan", "region"], "crossing_dim": 0}]}),
            vec!["crosses[0].crossing_dim"],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "max_token": 5}}}),
            vec!["features.plan", "max_token"],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "output_mode": "multi_hot"}}}),
            vec!["features.plan.output_mode", "multi_hot"],
        ),
        (
            json!({"features": {"tenure": "float_discretized"}}),
            vec!["features.tenure.num_bins"],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "output_mode": "embedding"}}}),
            vec!["features.plan.embedding_dim", "output_mode \"embedding\""],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "embedding_dim": 4}}}),
            vec!["features.plan.embedding_dim", "only"],
        ),
        (
            json!({"features": {"plan": {"type": "string_categorical", "max_tokens": 100000, "output_mode": "embedding", "embedding_dim": 1000}}}),
            vec!["features.plan.embedding_dim", "16777216"],
        ),
        (
            json!({"features": {"plan": {"type": "string_hashed", "num_bins": 8, "output_mode": "embedding"}}}),
            vec!["features.plan.output_mode", "string_hashed"],
        ),
        (
            json!({"features": {"tenure": {"type": "float", "missing": "drop_row", "missing_indicator": true}}}),
            vec!["features.tenure.missing_indicator", "drop_row"],
        ),
        (
            json!({"crosses": [{"feature_names": ["plan", "region"], "crossing_dim": 4, "output_mode": "embedding"}]}),
            vec!["crosses[0].output_mode", "one_hot"],
        ),
        (
            json!({"exclude": ["churn"]}),
            vec!["exclude[0]", "\"churn\""],
        ),
        (
            json!({"crosses": [{"feature_names": ["plan", "tenure"], "crossing_dim": 4}]}),
            vec!["crosses[0].feature_names[1]", "\"tenure\""],
        ),
    ] {
        assert_problem(
            app.post_json("/jobs", &refused(extra)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            &needles,
        )
        .await;
    }
    assert_eq!(app.get_json("/jobs").await["total"], 0, "nothing queued");
}
