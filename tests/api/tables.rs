//! Tables with text categories, empty cells, an identifier and a text label, encoded by the
//! model itself: upload report, training without any encoding in the spec, and predict
//! from raw values.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, churn_spec as spec, churn_table, spawn_app, spawn_with, Options, TestApp, PLANS,
};

/// The finished job, after checking it succeeded and that its last epoch's validation
/// accuracy is what the table's rule allows.
pub(crate) async fn succeeded_with_accuracy(app: &TestApp, job: &str) -> Value {
    let job = app.wait_finished(job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let metrics = app
        .get_json(&format!("/jobs/{}/metrics", job["id"].as_str().unwrap()))
        .await;
    let last = &metrics["epochs"].as_array().unwrap().last().unwrap();
    assert!(last["val_accuracy"].as_f64().unwrap() >= 0.97, "{last}");
    job
}

fn column<'v>(dataset: &'v Value, name: &str) -> &'v Value {
    dataset["column_report"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {dataset}"))
}

#[tokio::test]
async fn a_table_with_text_and_empty_cells_trains_and_predicts_from_raw_values() {
    let app = spawn_app().await;
    let dataset = app.upload(churn_table(1000, 7), "?target=churn").await;
    let id = dataset["id"].as_str().unwrap().to_owned();
    assert_eq!(column(&dataset, "customer")["type"], "identifier");
    assert_eq!(column(&dataset, "customer")["distinct"], 1000);
    let plan = column(&dataset, "plan");
    assert_eq!(
        (&plan["type"], &plan["distinct"]),
        (&json!("category"), &json!(3))
    );
    assert_eq!(plan["top"].as_array().unwrap().len(), 3);
    let tenure = column(&dataset, "tenure");
    assert_eq!(tenure["type"], "number");
    let missing = tenure["missing"].as_u64().unwrap();
    assert!((60..=140).contains(&missing), "{tenure}");
    assert!(tenure["max"].as_f64().unwrap() < 70.0);
    // "N/A" is missing: the region is "north" or nothing.
    let region = column(&dataset, "region");
    assert_eq!(
        (&region["distinct"], &region["top"][0]["value"]),
        (&json!(1), &json!("north"))
    );
    assert_eq!(column(&dataset, "churn")["type"], "category");
    assert_eq!(
        app.get_json(&format!("/datasets/{id}")).await["column_report"],
        dataset["column_report"]
    );

    let job = app.submit(&spec(&id)).await;
    let job = succeeded_with_accuracy(&app, &job).await;
    let model_id = job["model_id"].as_str().unwrap().to_owned();
    let model = app.get_json(&format!("/models/{model_id}")).await;
    let inputs = model["summary"]["inputs"].as_array().unwrap();
    let encodings: Vec<(&str, &str, u64)> = inputs
        .iter()
        .map(|i| {
            (
                i["column"].as_str().unwrap(),
                i["encoding"].as_str().unwrap(),
                i["width"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        encodings,
        [
            ("customer", "skip", 0),
            ("plan", "one_hot", 4),
            ("tenure", "standardize", 2),
            ("region", "one_hot", 3),
        ],
        "{model}"
    );

    let importance = app
        .get_json(&format!("/models/{model_id}/importance"))
        .await;
    let ranked: Vec<&str> = importance["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    // The identifier is not an input, so it is not ranked.
    assert_eq!(ranked.len(), 3, "{importance}");
    assert!(!ranked.contains(&"customer"), "{importance}");
    assert_eq!(&ranked[..2], ["plan", "tenure"], "{importance}");
    let of = |name: &str| {
        importance["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == name)
            .unwrap()["mean"]
            .as_f64()
            .unwrap()
    };
    assert!(of("plan") > 0.1, "{importance}");
    assert!(of("region").abs() < 0.05, "{importance}");
    assert_eq!(importance["repeats"], 5);

    let predict = |body: Value| {
        let app = &app;
        let url = format!("/models/{model_id}/predict");
        async move { app.post_json(&url, &body).await }
    };
    let objects = json!({"instances": [
        {"plan": "pro", "tenure": 30, "region": "north", "customer": "c99999"},
        {"plan": "basic", "tenure": 12.5},
        {"plan": "gold", "tenure": null},
        {"plan": "platinum", "tenure": "20"},
    ]});
    let response = predict(objects).await;
    assert_eq!(response.status(), StatusCode::OK);
    let by_name: Value = response.json().await.unwrap();
    assert_eq!(model["summary"]["class_names"], json!(["no", "yes"]));
    assert!(
        by_name["predictions"][0][0].as_f64().unwrap() > 0.9,
        "P(yes): {by_name}"
    );
    assert_eq!(
        by_name["classes"],
        json!(["yes", "no", "yes", "no"]),
        "a level first seen now goes out of vocabulary: {by_name}"
    );
    let arrays = json!({"instances": [
        ["c99999", "pro", 30, "north"],
        [null, "basic", 12.5, null],
        [null, "gold", null, null],
        [null, "platinum", "20", null],
    ]});
    let by_position: Value = predict(arrays).await.json().await.unwrap();
    assert_eq!(by_position, by_name, "objects and arrays are the same rows");

    // A missing marker sent as text is a missing value, as the upload read it.
    let marker: Value = predict(json!({"instances": [{"plan": "gold", "tenure": "NA"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        marker["predictions"][0], by_name["predictions"][2],
        "{marker}"
    );

    for (body, needles) in [
        (
            json!({"instances": [{"plan": "pro", "colour": "red"}]}),
            &["\"colour\"", "unknown"][..],
        ),
        (
            json!({"instances": [{"tenure": "long"}]}),
            &["\"tenure\"", "long"],
        ),
        (
            json!({"instances": [["pro", 3]]}),
            &["2 values", "4 columns"],
        ),
        (json!({"instances": [{"plan": true}]}), &["plan", "true"]),
    ] {
        assert_problem(
            predict(body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needles,
        )
        .await;
    }

    // Evaluate takes the same raw table as CSV, in another column order, with its own
    // vocabulary (levels appear in another order), and a row without a label.
    let mut fresh = String::from("churn,tenure,region,plan,customer\n");
    for line in churn_table(300, 99).lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        fresh.push_str(&format!("{},{},{},{},{}\n", f[4], f[2], f[3], f[1], f[0]));
    }
    fresh.push_str(",3,north,pro,x\n");
    let response = app
        .post_csv(&format!("/models/{model_id}/evaluate"), fresh)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let evaluation: Value = response.json().await.unwrap();
    assert_eq!(evaluation["rows"], 300, "{evaluation}");
    assert!(
        evaluation["metrics"]["accuracy"].as_f64().unwrap() >= 0.97,
        "{evaluation}"
    );
    assert_problem(
        app.post_csv(
            &format!("/models/{model_id}/evaluate"),
            "customer,plan,tenure,region,churn\nc1,pro,3,north,maybe\n",
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"maybe\"", "no class"],
    )
    .await;

    // The encoding travels with the stored model.
    let app = app.restart(Options::default()).await;
    let again: Value = app
        .post_json(
            &format!("/models/{model_id}/predict"),
            &json!({"instances": [
                {"plan": "pro", "tenure": 30, "region": "north", "customer": "c99999"},
                {"plan": "basic", "tenure": 12.5},
                {"plan": "gold", "tenure": null},
                {"plan": "platinum", "tenure": "20"},
            ]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, by_name);
}

/// A level that only the validation rows have is not in the vocabulary the model learnt:
/// the encoding is fitted on the training split alone.
#[tokio::test]
async fn the_encoding_is_fitted_on_the_training_rows_only() {
    let app = spawn_app().await;
    // With shuffle off and no validation split but `validation_split` 0.5, Keras holds out
    // rows at random; a level present in exactly one row ends up on one side.
    let mut csv = String::from("c,x,y\n");
    for i in 0..400 {
        let c = if i == 0 { "rare" } else { PLANS[i % 3] };
        csv.push_str(&format!("{c},{},{}\n", i % 7, i % 2));
    }
    let dataset = app.upload(csv, "").await;
    let mut job = spec(dataset["id"].as_str().unwrap());
    job["epochs"] = json!(1);
    job["validation_split"] = json!(0.5);
    let mut outcomes = Vec::new();
    for seed in 0..6 {
        job["seed"] = json!(seed);
        let id = app.submit(&job).await;
        let done = app.wait_finished(&id).await;
        let model = app
            .get_json(&format!("/models/{}", done["model_id"].as_str().unwrap()))
            .await;
        let c = &model["summary"]["inputs"][0];
        outcomes.push(c["levels"].as_array().unwrap().contains(&json!("rare")));
    }
    // About half the seeds put the one "rare" row in validation, where it must not count.
    assert!(
        outcomes.contains(&true) && outcomes.contains(&false),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn tables_that_cannot_be_used_are_refused_naming_the_column() {
    let app = spawn_app().await;
    assert_problem(
        app.post_csv("/datasets?types=age:number", "age,y\n3,1\nold,0\n")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["line 3", "\"age\"", "old"],
    )
    .await;
    assert_problem(
        app.post_csv("/datasets?types=zip:category", "a,y\n1,0\n")
            .await,
        StatusCode::BAD_REQUEST,
        &["\"zip\""],
    )
    .await;
    assert_problem(
        app.post_csv("/datasets?types=a:text", "a,y\n1,0\n").await,
        StatusCode::BAD_REQUEST,
        &["a:text"],
    )
    .await;
    assert_problem(
        app.post_csv("/datasets", "a,y\n1,yes\n2,0\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"y\"", "mixes numbers and text"],
    )
    .await;
    assert_eq!(
        app.get_json("/datasets").await["total"],
        0,
        "nothing stored"
    );

    let ids = app
        .upload("x,name\n1,ann\n2,bob\n3,cy\n", "?target=name")
        .await;
    let mut job = spec(ids["id"].as_str().unwrap());
    job.as_object_mut().unwrap().remove("validation_split");
    assert_problem(
        app.post_json("/jobs", &job).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"name\"", "identifier"],
    )
    .await;
    let mixed = app.upload("x,y\n1,0\nNA,1\n", "").await;
    let mut job = spec(mixed["id"].as_str().unwrap());
    job["model"]["layers"] = json!([
        {"type": "normalization"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}
    ]);
    job.as_object_mut().unwrap().remove("validation_split");
    assert_problem(
        app.post_json("/jobs", &job).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["model.layers[0]", "normalization"],
    )
    .await;
}

/// Rows whose label is missing are stored but left out of training.
#[tokio::test]
async fn rows_without_a_label_are_left_out_of_training() {
    let app = spawn_app().await;
    let mut csv = String::from("x,y\n");
    for i in 0..300 {
        let y = match i % 10 {
            0 => "",
            _ => ["no", "yes"][usize::from(i % 7 > 3)],
        };
        csv.push_str(&format!("{},{y}\n", i % 7));
    }
    let dataset = app.upload(csv, "").await;
    assert_eq!(dataset["rows"], 300);
    assert_eq!(column(&dataset, "y")["missing"], 30);
    let mut job = spec(dataset["id"].as_str().unwrap());
    job["epochs"] = json!(2);
    job["validation_split"] = json!(0.0);
    job["batch_size"] = json!(270);
    let id = app.submit(&job).await;
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["rows"],
        json!({"training": 270, "validation": 0, "unlabelled": 30, "dropped": 0})
    );
    let metrics = app.get_json(&format!("/jobs/{id}/metrics")).await;
    assert!(metrics["epochs"][1]["loss"].as_f64().unwrap().is_finite());
}

/// The same table larger than the memory budget: streamed chunk by chunk, the encoding
/// fitted on the training chunks as they pass, rows without a label skipped on reading.
#[tokio::test]
async fn a_table_streamed_from_the_database_is_encoded_as_in_memory() {
    let app = spawn_with(Options {
        workers: Some(1),
        dataset_memory_bytes: Some(8 << 10),
        ..Options::with(|c| c.dataset_chunk_bytes = 4 << 10)
    })
    .await;
    let mut csv = churn_table(2000, 11);
    csv.push_str("c99999,pro,3,north,\n");
    let dataset = app.upload(csv, "?target=churn").await;
    let job = app.submit(&spec(dataset["id"].as_str().unwrap())).await;
    let job = succeeded_with_accuracy(&app, &job).await;
    assert_eq!(job["data_path"], "streamed", "{job}");
    let model_id = job["model_id"].as_str().unwrap();
    let model = app.get_json(&format!("/models/{model_id}")).await;
    assert_eq!(model["summary"]["inputs"][1]["width"], 4, "{model}");
    let importance = app
        .get_json(&format!("/models/{model_id}/importance"))
        .await;
    assert!(
        importance["reason"].as_str().unwrap().contains("streamed"),
        "{importance}"
    );
    assert_eq!(importance["columns"], json!([]));
    let body = json!({"instances": [{"plan": "pro", "tenure": 30}, {"plan": "gold", "tenure": 5}]});
    let predicted: Value = app
        .post_json(&format!("/models/{model_id}/predict"), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(predicted["classes"], json!(["yes", "no"]), "{predicted}");
}

/// A model reads its clients' texts with the missing markers its dataset was uploaded with.
#[tokio::test]
async fn predict_reads_the_missing_markers_of_the_upload() {
    let app = spawn_app().await;
    let mut csv = String::from("x,colour,y\n");
    for i in 0..200 {
        let x = if i % 10 == 0 {
            "-".to_owned()
        } else {
            format!("{}", i % 7)
        };
        let colour = ["red", "blue", "?"][i % 3];
        csv.push_str(&format!("{x},{colour},{}\n", i % 2));
    }
    let dataset = app.upload(csv, "?na_values=-,?").await;
    assert_eq!(column(&dataset, "x")["missing"], 20);
    let mut job = spec(dataset["id"].as_str().unwrap());
    job["epochs"] = json!(2);
    let done = app.wait_finished(&app.submit(&job).await).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let predict = format!("/models/{}/predict", done["model_id"].as_str().unwrap());
    let answer = app
        .post_json(&predict, &json!({"instances": [{"x": "-", "colour": "?"}]}))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    // "NA" is not a marker of this upload: text in a column of numbers.
    assert_problem(
        app.post_json(
            &predict,
            &json!({"instances": [{"x": "NA", "colour": "red"}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"x\"", "NA"],
    )
    .await;
}
