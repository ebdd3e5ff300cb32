//! Model names, versions and aliases through the real server: a name and an alias across a
//! retraining, versions under concurrent jobs, promotion and its refusal, deleting what an
//! alias points at, the refusals, and the metadata a model shows.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, binary_spec, churn_spec, churn_table, spawn_app, spawn_with, Options, TestApp,
};

/// Instances of the churn table as a client sends them (the id column included: the model
/// leaves it out).
fn churn_instances() -> Value {
    json!({"instances": [
        {"customer": "c90001", "plan": "pro", "tenure": 30.0, "region": "north"},
        {"customer": "c90002", "plan": "basic", "tenure": 12.5, "region": "N/A"},
        {"customer": "c90003", "plan": "gold", "tenure": null, "region": "north"},
        {"customer": "c90004", "plan": "basic", "tenure": 61.0, "region": "north"},
    ]})
}

async fn churn_dataset(app: &TestApp) -> String {
    let dataset = app.upload(churn_table(300, 7), "?target=churn").await;
    dataset["id"].as_str().unwrap().to_owned()
}

/// A small churn job: a few epochs over 300 rows.
fn churn_job(dataset: &str, seed: u64, registry: Value) -> Value {
    let mut job = churn_spec(dataset);
    job["epochs"] = json!(4);
    job["seed"] = json!(seed);
    for (key, value) in registry.as_object().unwrap() {
        job[key] = value.clone();
    }
    job
}

/// Trains `job` to success; returns the job's view.
async fn train(app: &TestApp, job: &Value) -> Value {
    let id = app.submit(job).await;
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

async fn predict_at(app: &TestApp, reference: &str, body: &Value) -> Value {
    let response = app
        .post_json(&format!("/models/{reference}/predict"), body)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{reference}: {answer}");
    answer
}

async fn put_alias(app: &TestApp, name: &str, alias: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/models/{name}/aliases/{alias}")))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_name_and_an_alias_serve_across_a_retraining() {
    let app = spawn_app().await;
    let dataset = churn_dataset(&app).await;
    let first = train(&app, &churn_job(&dataset, 1, json!({"name": "churn"}))).await;
    assert_eq!(
        (&first["name"], &first["version"]),
        (&json!("churn"), &json!(1))
    );
    assert_eq!(first["promotion"], Value::Null);
    let v1 = first["model_id"].as_str().unwrap().to_owned();

    let created = put_alias(&app, "churn", "champion", &json!({"version": 1})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created.headers()["location"],
        "/models/churn/aliases/champion"
    );
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["model_id"], v1.as_str());
    assert_eq!(created["reference"], "churn@champion");
    assert_eq!(created["previous_version"], Value::Null);
    let again = put_alias(&app, "churn", "champion", &json!({"version": 1})).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["previous_version"], 1);

    let body = churn_instances();
    let before = predict_at(&app, &v1, &body).await;
    assert_eq!(predict_at(&app, "churn@champion", &body).await, before);
    assert_eq!(predict_at(&app, "churn", &body).await, before);

    // Retraining under the same name, promoted: callers of churn@champion need no change.
    let second = train(
        &app,
        &churn_job(&dataset, 2, json!({"name": "churn", "promote": "champion"})),
    )
    .await;
    assert_eq!(second["version"], 2);
    assert_eq!(second["promote"], "champion");
    let promotion = &second["promotion"];
    assert_eq!(promotion["alias"], "champion");
    assert_eq!(promotion["moved"], true, "{promotion}");
    assert_eq!(promotion["previous_version"], 1);
    let v2 = second["model_id"].as_str().unwrap().to_owned();

    let after = predict_at(&app, &v2, &body).await;
    assert_ne!(after, before, "two seeds, two models");
    assert_eq!(predict_at(&app, "churn@champion", &body).await, after);
    assert_eq!(predict_at(&app, "churn%40champion", &body).await, after);
    assert_eq!(predict_at(&app, "churn", &body).await, after);
    assert_eq!(predict_at(&app, "churn@latest", &body).await, after);
    assert_eq!(predict_at(&app, "churn/versions/2", &body).await, after);
    // The first version stays reachable, bit for bit as by its id.
    assert_eq!(predict_at(&app, "churn/versions/1", &body).await, before);

    let shown = app.get_json("/models/churn@champion").await;
    assert_eq!(shown["id"], v2.as_str());
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["aliases"], json!(["champion"]));
    assert_eq!(
        app.get_json("/models/churn/versions/1").await["aliases"],
        json!([])
    );
    let importance = app.get_json("/models/churn/versions/1/importance").await;
    assert_eq!(importance["model_id"], v1.as_str());
    let labelled = json!({"features": body["instances"], "targets": ["yes", "no", "yes", "no"]});
    let by_name = app
        .post_json("/models/churn/versions/1/evaluate", &labelled)
        .await;
    assert_eq!(by_name.status(), StatusCode::OK);
    let by_id = app
        .post_json(&format!("/models/{v1}/evaluate"), &labelled)
        .await;
    assert_eq!(
        by_name.json::<Value>().await.unwrap(),
        by_id.json::<Value>().await.unwrap()
    );

    let versions = app.get_json("/models?name=churn").await;
    assert_eq!(versions["total"], 2);
    let listed: Vec<&Value> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["version"])
        .collect();
    assert_eq!(listed, [&json!(2), &json!(1)]);
    let page = app.get_json("/models?name=churn&limit=1&offset=1").await;
    assert_eq!(page["items"][0]["id"], v1.as_str());
    assert_eq!(app.get_json("/models?name=other").await["total"], 0);

    let aliases = app.get_json("/models/churn/aliases").await;
    assert_eq!(aliases["latest_version"], 2);
    assert_eq!(aliases["aliases"].as_array().unwrap().len(), 1);
    assert_eq!(aliases["aliases"][0]["version"], 2);
    let alias = app.get_json("/models/churn/aliases/champion").await;
    assert_eq!(alias["model_id"], v2.as_str());

    // Moved back by hand, it answers from the first version again at once.
    let moved = put_alias(&app, "churn", "champion", &json!({"version": 1})).await;
    assert_eq!(moved.status(), StatusCode::OK);
    assert_eq!(moved.json::<Value>().await.unwrap()["previous_version"], 2);
    assert_eq!(predict_at(&app, "churn@champion", &body).await, before);
}

#[tokio::test]
async fn versions_are_numbered_once_under_concurrent_jobs() {
    let app = spawn_with(Options {
        workers: Some(2),
        ..Options::default()
    })
    .await;
    let dataset = app.linear_dataset(200, 3).await;
    let mut ids = Vec::new();
    for seed in 0..4 {
        let mut job = binary_spec(&dataset, 2);
        job["seed"] = json!(seed);
        job["name"] = json!("race");
        ids.push(app.submit(&job).await);
    }
    let mut versions = Vec::new();
    let mut models = Vec::new();
    for id in &ids {
        let done = app.wait_finished(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        versions.push(done["version"].as_u64().unwrap());
        models.push(done["model_id"].as_str().unwrap().to_owned());
        let model = app
            .get_json(&format!("/models/{}", done["model_id"].as_str().unwrap()))
            .await;
        assert_eq!(model["version"], done["version"]);
    }
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4]);
    models.sort();
    models.dedup();
    assert_eq!(models.len(), 4);
    assert_eq!(app.get_json("/models?name=race").await["total"], 4);

    // A deleted version's number is never given again.
    let deleted = app.delete("/models/race/versions/4").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_json("/models/race").await["version"], 3);
    let mut job = binary_spec(&dataset, 1);
    job["name"] = json!("race");
    let id = app.submit(&job).await;
    assert_eq!(app.wait_finished(&id).await["version"], 5);
    assert_eq!(app.get_json("/models/race").await["version"], 5);
}

#[tokio::test]
async fn promote_if_better_refuses_a_worse_model_and_remembers_it() {
    let app = spawn_app().await;
    let dataset = churn_dataset(&app).await;
    let gate = json!({"name": "gate", "promote": "champion", "promote_if_better": true});
    let mut good = churn_job(&dataset, 1, gate.clone());
    good["epochs"] = json!(15);
    let first = train(&app, &good).await;
    assert_eq!(first["promotion"]["moved"], true, "{first}");
    assert_eq!(first["promotion"]["previous_version"], Value::Null);

    // One epoch at a rate too small to learn anything: a worse val_loss.
    let mut bad = churn_job(&dataset, 1, gate.clone());
    bad["epochs"] = json!(1);
    bad["optimizer"] = json!({"type": "adam", "learning_rate": 1e-6});
    let second = train(&app, &bad).await;
    let promotion = &second["promotion"];
    assert_eq!(promotion["moved"], false, "{promotion}");
    assert_eq!(promotion["monitor"], "val_loss");
    assert!(
        promotion["value"].as_f64().unwrap() > promotion["previous_value"].as_f64().unwrap(),
        "{promotion}"
    );
    let reason = promotion["reason"].as_str().unwrap();
    assert!(
        reason.contains("worse") && reason.contains("lower is better"),
        "{reason}"
    );
    let champion = app.get_json("/models/gate@champion").await;
    assert_eq!(champion["version"], 1);
    assert_eq!(champion["id"], first["model_id"]);
    // The refused model is still its name's latest version.
    assert_eq!(app.get_json("/models/gate").await["version"], 2);

    // Accuracy is better higher: a model at least as accurate moves it.
    let mut accurate = churn_job(&dataset, 1, gate.clone());
    accurate["epochs"] = json!(15);
    accurate["early_stopping"] = json!({"monitor": "val_accuracy", "patience": 20});
    let third = train(&app, &accurate).await;
    assert_eq!(third["monitor_mode"], "max");
    assert_eq!(third["promotion"]["monitor"], "val_accuracy");
    assert_eq!(third["promotion"]["moved"], true, "{third}");

    // Without promote_if_better the alias moves whatever the value.
    let mut always = bad.clone();
    always["promote_if_better"] = json!(false);
    let fourth = train(&app, &always).await;
    assert_eq!(fourth["promotion"]["moved"], true, "{fourth}");
    assert_eq!(fourth["promotion"]["previous_version"], 3);

    // What the jobs decided survives a restart.
    let job = second["id"].as_str().unwrap().to_owned();
    let app = app.restart(Options::default()).await;
    let again = app.get_json(&format!("/jobs/{job}")).await;
    assert_eq!(again["promotion"], second["promotion"]);
    assert_eq!(app.get_json("/models/gate@champion").await["version"], 4);
}

#[tokio::test]
async fn an_aliased_version_is_not_deleted() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(200, 5).await;
    let mut job = binary_spec(&dataset, 1);
    job["name"] = json!("kept");
    job["promote"] = json!("champion");
    let done = train(&app, &job).await;
    let id = done["model_id"].as_str().unwrap().to_owned();
    assert_eq!(
        put_alias(&app, "kept", "staging", &json!({"version": 1}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let body = json!({"instances": [[0.1, 0.2, 0.3, 0.4]]});
    predict_at(&app, "kept@staging", &body).await;

    for path in [format!("/models/{id}"), "/models/kept/versions/1".into()] {
        assert_problem(
            app.delete(&path).await,
            StatusCode::CONFLICT,
            &["kept@champion", "kept@staging"],
        )
        .await;
    }
    assert_problem(
        app.delete("/models/kept@champion").await,
        StatusCode::CONFLICT,
        &["kept@champion"],
    )
    .await;
    assert_problem(
        app.delete("/models/kept").await,
        StatusCode::BAD_REQUEST,
        &["/models/kept/versions/"],
    )
    .await;

    for alias in ["champion", "staging"] {
        let path = format!("/models/kept/aliases/{alias}");
        assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
        assert_problem(
            app.delete(&path).await,
            StatusCode::NOT_FOUND,
            &["no alias", alias],
        )
        .await;
    }
    // The alias is gone from the cache too.
    let response = app.post_json("/models/kept@staging/predict", &body).await;
    assert_problem(response, StatusCode::NOT_FOUND, &["no alias \"staging\""]).await;
    predict_at(&app, "kept/versions/1", &body).await;
    assert_eq!(
        app.delete("/models/kept/versions/1").await.status(),
        StatusCode::NO_CONTENT
    );
    for path in ["/models/kept/versions/1/predict", "/models/kept/predict"] {
        let response = app.post_json(path, &body).await;
        assert_problem(response, StatusCode::NOT_FOUND, &["kept"]).await;
    }
    assert_problem(
        app.get(&format!("/models/{id}")).await,
        StatusCode::NOT_FOUND,
        &["model"],
    )
    .await;
    let aliases = app.get_json("/models/kept/aliases").await;
    assert_eq!(
        aliases,
        json!({"name": "kept", "latest_version": null, "aliases": []})
    );
}

#[tokio::test]
async fn bad_names_references_and_aliases_are_refused() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(120, 9).await;
    let job = |registry: Value| {
        let mut job = binary_spec(&dataset, 1);
        for (key, value) in registry.as_object().unwrap() {
            job[key] = value.clone();
        }
        job
    };
    let long = "n".repeat(65);
    let refused = [
        (json!({"name": "Churn"}), vec!["name", "lower-case"]),
        (json!({"name": long}), vec!["name", "64"]),
        (json!({"name": "a b"}), vec!["name"]),
        (json!({"name": 5}), vec!["name must be a string"]),
        (
            json!({"name": "0b9b7a3e-2f67-4c1e-9a51-9d0c5e0f6a11"}),
            vec!["UUID"],
        ),
        (
            json!({"promote": "champion"}),
            vec!["promote", "needs a name"],
        ),
        (
            json!({"name": "x", "promote": "latest"}),
            vec!["promote", "reserved"],
        ),
        (json!({"name": "x", "promote": "Top"}), vec!["promote"]),
        (
            json!({"name": "x", "promote_if_better": true}),
            vec!["promote_if_better needs promote"],
        ),
        (
            json!({"name": "x", "promote": "top", "promote_if_better": "yes"}),
            vec!["promote_if_better must be true or false"],
        ),
        (
            json!({"name": "x", "promote": "top", "promote_if_better": true,
                   "validation_split": 0.0}),
            vec!["promote_if_better", "\"loss\""],
        ),
    ];
    for (registry, needles) in refused {
        let response = app.post_json("/jobs", &job(registry.clone())).await;
        let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &needles).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{registry}");
    }
    // null is the same as leaving a field out.
    let done = train(&app, &job(json!({"name": "x", "promote": null}))).await;
    assert_eq!(
        (&done["version"], &done["promote"]),
        (&json!(1), &Value::Null)
    );
}

#[tokio::test]
async fn unknown_and_malformed_references_are_404_and_400() {
    let app = spawn_app().await;
    let dataset = app.linear_dataset(120, 9).await;
    let mut job = binary_spec(&dataset, 1);
    job["name"] = json!("known");
    train(&app, &job).await;
    let not_found = [
        ("/models/nobody", "no model is named \"nobody\""),
        ("/models/nobody@champion", "no model is named"),
        (
            "/models/known@champion",
            "model \"known\" has no alias \"champion\"",
        ),
        (
            "/models/known/versions/9",
            "model \"known\" has no version 9",
        ),
        (
            "/models/0b9b7a3e-2f67-4c1e-9a51-9d0c5e0f6a11",
            "model 0b9b7a3e",
        ),
        ("/models/nobody/aliases", "no model is named"),
        ("/models/known/aliases/champion", "no alias"),
    ];
    for (path, needle) in not_found {
        assert_problem(app.get(path).await, StatusCode::NOT_FOUND, &[needle]).await;
    }
    let body = json!({"instances": [[0.1, 0.2, 0.3, 0.4]]});
    for path in ["/models/nobody/predict", "/models/known/versions/2/predict"] {
        let response = app.post_json(path, &body).await;
        assert_problem(response, StatusCode::NOT_FOUND, &["no"]).await;
    }
    let malformed = [
        ("/models/Known", "not a model reference"),
        ("/models/known@", "not a model reference"),
        ("/models/known@Champion/predict", "the alias"),
        ("/models/known/versions/0", "whole number from 1"),
        ("/models/known/versions/v1/predict", "whole number from 1"),
        ("/models/Known/versions/1", "the name"),
        ("/models/Known/aliases", "the name"),
        ("/models?name=Known", "name"),
    ];
    for (path, needle) in malformed {
        let response = if path.ends_with("/predict") {
            app.post_json(path, &body).await
        } else {
            app.get(path).await
        };
        assert_problem(response, StatusCode::BAD_REQUEST, &[needle]).await;
    }

    let puts = [
        (
            "nobody",
            "champion",
            json!({"version": 1}),
            StatusCode::NOT_FOUND,
            "no model is named",
        ),
        (
            "known",
            "champion",
            json!({"version": 7}),
            StatusCode::NOT_FOUND,
            "has no version 7",
        ),
        (
            "known",
            "Champ",
            json!({"version": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the alias",
        ),
        (
            "known",
            "latest",
            json!({"version": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reserved",
        ),
        (
            "known",
            "champion",
            json!({"version": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "from 1",
        ),
        (
            "known",
            "champion",
            json!({"version": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "version",
        ),
        (
            "known",
            "champion",
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "version",
        ),
        (
            "known",
            "champion",
            json!({"version": 1, "model": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
    ];
    for (name, alias, body, status, needle) in puts {
        let response = put_alias(&app, name, alias, &body).await;
        assert_problem(response, status, &[needle]).await;
    }
    assert_problem(
        app.delete("/models/known/aliases/champion").await,
        StatusCode::NOT_FOUND,
        &["no alias"],
    )
    .await;
    // Nothing above made an alias.
    assert_eq!(
        app.get_json("/models/known/aliases").await["aliases"],
        json!([])
    );
}

#[tokio::test]
async fn a_model_shows_its_name_inputs_outputs_and_size() {
    let app = spawn_app().await;
    let dataset = churn_dataset(&app).await;
    let done = train(
        &app,
        &churn_job(&dataset, 1, json!({"name": "meta", "promote": "champion"})),
    )
    .await;
    let model = app.get_json("/models/meta@champion").await;
    assert_eq!(model["name"], "meta");
    assert_eq!(model["version"], 1);
    assert_eq!(model["aliases"], json!(["champion"]));
    assert_eq!(model["job_id"], done["id"]);
    assert_eq!(model["dataset_id"], dataset.as_str());
    let inputs: Vec<(String, String, String, u64)> = model["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["column"].as_str().unwrap().to_owned(),
                i["type"].as_str().unwrap().to_owned(),
                i["encoding"].as_str().unwrap().to_owned(),
                i["width"].as_u64().unwrap(),
            )
        })
        .collect();
    let summary = &model["summary"]["inputs"];
    let expected = [
        ("customer", "identifier", "skip", 0),
        (
            "plan",
            "category",
            "one_hot",
            summary[1]["width"].as_u64().unwrap(),
        ),
        ("tenure", "number", "standardize", 2),
        (
            "region",
            "category",
            "one_hot",
            summary[3]["width"].as_u64().unwrap(),
        ),
    ];
    let expected: Vec<(String, String, String, u64)> = expected
        .iter()
        .map(|(c, t, e, w)| (c.to_string(), t.to_string(), e.to_string(), *w))
        .collect();
    assert_eq!(inputs, expected, "{model}");
    assert_eq!(model["class_names"], json!(["no", "yes"]));
    assert_eq!(
        model["outputs"],
        json!([
            {"name": "predictions", "shape": [null, 1], "dtype": "float32",
             "meaning": "probability", "labels": ["yes"]},
            {"name": "classes", "shape": [null], "dtype": "string", "meaning": "class",
             "labels": ["no", "yes"]},
        ])
    );
    let stored = stored_weight_bytes(&app, model["id"].as_str().unwrap()).await;
    assert_eq!(model["weights_bytes"], stored);
    assert!(stored > 1000, "{stored}");

    // A model of plain numbers: every column a number fed as it is.
    let numbers = app.linear_dataset(120, 4).await;
    let plain = train(&app, &binary_spec(&numbers, 1)).await;
    let model = app
        .get_json(&format!("/models/{}", plain["model_id"].as_str().unwrap()))
        .await;
    assert_eq!(model["name"], Value::Null);
    assert_eq!(model["version"], Value::Null);
    assert_eq!(model["aliases"], json!([]));
    assert_eq!(model["class_names"], Value::Null);
    let columns: Vec<&Value> = model["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["column"])
        .collect();
    assert_eq!(
        columns,
        [&json!("x0"), &json!("x1"), &json!("x2"), &json!("x3")]
    );
    assert_eq!(
        model["inputs"][0],
        json!({"column": "x0", "type": "number", "encoding": "none", "width": 1})
    );
    assert_eq!(
        model["outputs"][1],
        json!({"name": "classes", "shape": [null], "dtype": "int64", "meaning": "class",
               "labels": null})
    );
}

/// The size of a model's weights as the database holds them.
async fn stored_weight_bytes(app: &TestApp, id: &str) -> i64 {
    // octet_length is SQL's name for it, and both backends know it.
    let sql = "SELECT CAST(octet_length(weights) AS BIGINT) FROM models WHERE id = $1";
    app.db.number(sql, &[id]).await.expect("the model's row")
}
