//! Batch scoring through the real server: a CSV body or a stored dataset answered line by
//! line (CSV or JSON rows, `?keep=` columns first), agreeing with predict from raw objects;
//! evaluate from raw JSON rows agreeing with the same rows as CSV; and the problems.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, churn_spec, churn_table, spawn_app, spawn_with, Options, TestApp,
};

/// A trained churn model and its training dataset's id.
async fn churn_model(app: &TestApp) -> (String, String) {
    let dataset = app.upload(churn_table(1000, 7), "?target=churn").await;
    let dataset = dataset["id"].as_str().unwrap().to_owned();
    let job = app.submit(&churn_spec(&dataset)).await;
    let job = app.wait_finished(&job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    (job["model_id"].as_str().unwrap().to_owned(), dataset)
}

async fn post(app: &TestApp, path: &str, csv: &str, accept: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "text/csv")
        .header("accept", accept)
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
}

/// The lines of a CSV answer, split into fields (these answers need no quoting).
async fn csv_answer(response: reqwest::Response) -> Vec<Vec<String>> {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/csv");
    text.lines()
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

/// The churn table's rows as predict's raw objects: numbers as numbers, empty cells null,
/// everything else the text (a missing marker included).
fn objects(table: &str) -> Vec<Value> {
    table
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let tenure = match f[2] {
                "" => Value::Null,
                t => json!(t.parse::<f64>().unwrap()),
            };
            json!({"customer": f[0], "plan": f[1], "tenure": tenure, "region": f[3]})
        })
        .collect()
}

fn bits(text: &str) -> u32 {
    text.parse::<f32>().unwrap().to_bits()
}

/// Rewrites `table`'s columns in the order `order` names them (by index), with `extra`
/// appended to each line.
fn reorder(table: &str, order: &[usize], extra: (&str, &str)) -> String {
    table
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let mut out: Vec<&str> = order.iter().map(|&c| f[c]).collect();
            out.push(if i == 0 { extra.0 } else { extra.1 });
            out.join(",") + "\n"
        })
        .collect()
}

#[tokio::test]
async fn a_csv_body_is_scored_line_by_line_as_raw_objects_predict() {
    let app = spawn_app().await;
    let (model, _) = churn_model(&app).await;
    let path = format!("/models/{model}/predict");
    // The label column is an extra the scoring ignores.
    let table = churn_table(60, 21);
    let lines =
        csv_answer(post(&app, &format!("{path}?keep=customer"), &table, "text/csv").await).await;
    assert_eq!(lines[0], ["customer", "class", "no", "yes"]);
    assert_eq!(lines.len(), 61, "a line per row after the header");

    let reference: Value = app
        .post_json(&path, &json!({"instances": objects(&table)}))
        .await
        .json()
        .await
        .unwrap();
    for (r, line) in lines[1..].iter().enumerate() {
        let customer = table.lines().nth(r + 1).unwrap().split(',').next().unwrap();
        assert_eq!(line[0], customer, "in the body's order");
        assert_eq!(line[1], reference["classes"][r], "row {r}");
        let p = reference["predictions"][r][0].as_f64().unwrap() as f32;
        assert_eq!(bits(&line[3]), p.to_bits(), "row {r}: P(yes) to the bit");
        assert_eq!(bits(&line[2]), (1.0 - p).to_bits(), "row {r}: P(no)");
    }

    // Columns in another order, an extra column, the label absent: the same answer.
    let shuffled = reorder(&table, &[3, 2, 0, 1], ("note", "x"));
    let again =
        csv_answer(post(&app, &format!("{path}?keep=customer"), &shuffled, "*/*").await).await;
    assert_eq!(again, lines);

    // Asked for JSON: the same rows as objects keyed by the header's names.
    let response = post(
        &app,
        &format!("{path}?keep=customer,region"),
        &table,
        "application/json",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let first = &text[..text.find('}').unwrap()];
    let at = |key: &str| first.find(&format!("\"{key}\":")).unwrap();
    let order = ["customer", "region", "class", "no", "yes"].map(at);
    assert!(order.is_sorted(), "keys in the CSV header's order: {first}");
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.len(), 60);
    for (row, line) in rows.iter().zip(&lines[1..]) {
        assert_eq!(row["customer"], line[0]);
        assert_eq!(row["class"], line[1]);
        let yes = row["yes"].as_f64().unwrap() as f32;
        assert_eq!(yes.to_bits(), bits(&line[3]));
    }
    assert!(rows.iter().any(|r| r["region"] == "N/A"), "kept as sent");
}

#[tokio::test]
async fn a_stored_dataset_is_scored_streamed_as_its_rows_predicted_one_by_one() {
    // Chunks of 4 KiB: the 3001 rows below are stored in about twelve.
    let app = spawn_with(Options::with(|c| c.dataset_chunk_bytes = 4 << 10)).await;
    let (model, dataset) = churn_model(&app).await;
    // Rows without a label are scored too.
    let mut table = churn_table(3000, 5);
    table.push_str("z00001,pro,12.5,north,\n");
    let scored = app.upload(table.clone(), "?target=churn").await;
    let scored_id = scored["id"].as_str().unwrap();
    let response = app
        .client
        .post(app.url(&format!(
            "/models/{model}/predict?dataset_id={scored_id}&keep=plan,tenure,churn"
        )))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed in chunks: {:?}",
        response.headers()
    );
    let lines = csv_answer(response).await;
    assert_eq!(lines[0], ["plan", "tenure", "churn", "class", "no", "yes"]);
    assert_eq!(lines.len(), 1 + 3001, "one line per stored row");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(
        lines[3001],
        ["pro", "12.5", "", "yes", &lines[3001][4], &lines[3001][5]]
    );
    for r in (0..3001).step_by(97) {
        let f: Vec<&str> = rows[r].split(',').collect();
        let line = &lines[r + 1];
        assert_eq!(
            (line[0].as_str(), line[2].as_str()),
            (f[1], f[4]),
            "row {r}"
        );
        // A stored number is written as the f32 it is (`39` for `39.0`); missing, empty.
        let tenure = |t: &str| t.parse::<f32>().ok();
        assert_eq!(tenure(&line[1]), tenure(f[2]), "row {r}");
        let alone: Value = app
            .post_json(
                &format!("/models/{model}/predict"),
                &json!({"instances": [objects(&format!("h\n{}", rows[r]))[0]]}),
            )
            .await
            .json()
            .await
            .unwrap();
        let p = alone["predictions"][0][0].as_f64().unwrap();
        let yes: f64 = line[5].parse().unwrap();
        assert!(
            (p - yes).abs() < 1e-5,
            "row {r}: {p} alone, {yes} in the stream"
        );
        assert_eq!(line[3], alone["classes"][0], "row {r}");
    }

    // JSON rows too; the training dataset itself scores.
    let response = app
        .client
        .post(app.url(&format!("/models/{model}/predict?dataset_id={dataset}")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rows: Vec<Value> = response.json().await.unwrap();
    assert_eq!(rows.len(), 1000);
    assert!(rows
        .iter()
        .all(|r| r["class"] == "yes" || r["class"] == "no"));
}

#[tokio::test]
async fn a_regression_is_scored_with_a_column_per_target() {
    let app = spawn_app().await;
    let mut table = String::from("id,size,kind,price,cost\n");
    for i in 0..200 {
        let size = (i % 17) as f64;
        let kind = ["a", "b"][i % 2];
        table.push_str(&format!(
            "r{i},{size},{kind},{},{}\n",
            2.0 * size,
            size + 1.0
        ));
    }
    let dataset = app.upload(table.clone(), "?target=price&target=cost").await;
    let job = app
        .submit(&json!({
            "dataset_id": dataset["id"],
            "model": {"layers": [{"type": "dense", "units": 2}]},
            "loss": "mse", "epochs": 2, "batch_size": 32
        }))
        .await;
    let model = app.wait_finished(&job).await["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/models/{model}/predict");
    let body: String = table.lines().take(6).map(|l| l.to_owned() + "\n").collect();
    let lines = csv_answer(post(&app, &format!("{path}?keep=id"), &body, "text/csv").await).await;
    assert_eq!(lines[0], ["id", "price", "cost"]);
    let instances: Vec<Value> = body
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            json!({"id": f[0], "size": f[1].parse::<f64>().unwrap(), "kind": f[2]})
        })
        .collect();
    let reference: Value = app
        .post_json(&path, &json!({"instances": instances}))
        .await
        .json()
        .await
        .unwrap();
    for (r, line) in lines[1..].iter().enumerate() {
        assert_eq!(line[0], format!("r{r}"));
        for t in 0..2 {
            let p = reference["predictions"][r][t].as_f64().unwrap() as f32;
            assert_eq!(bits(&line[1 + t]), p.to_bits(), "row {r}, target {t}");
        }
    }
}

#[tokio::test]
async fn evaluate_takes_raw_json_rows_as_it_takes_the_same_rows_as_csv() {
    let app = spawn_app().await;
    let (model, _) = churn_model(&app).await;
    let path = format!("/models/{model}/evaluate");
    let mut table = churn_table(200, 31);
    table.push_str("z1,pro,3,north,\n");
    let labels: Vec<Value> = table
        .lines()
        .skip(1)
        .map(|l| match l.rsplit(',').next().unwrap() {
            "" => Value::Null,
            label => json!(label),
        })
        .collect();
    let mut features = objects(&table);
    // Rows as arrays in column order are the same rows.
    features[0] = json!([
        "c00000",
        features[0]["plan"],
        features[0]["tenure"],
        features[0]["region"]
    ]);
    let by_json = app
        .post_json(&path, &json!({"features": features, "targets": labels}))
        .await;
    assert_eq!(by_json.status(), StatusCode::OK);
    let by_json: Value = by_json.json().await.unwrap();
    let by_csv: Value = app.post_csv(&path, table).await.json().await.unwrap();
    assert_eq!(
        by_json["rows"], 200,
        "the unlabelled row is left out: {by_json}"
    );
    assert_eq!(by_json, by_csv);
    assert!(
        by_json["metrics"]["accuracy"].as_f64().unwrap() > 0.95,
        "{by_json}"
    );

    assert_problem(
        app.post_json(
            &path,
            &json!({"features": [{"plan": "pro"}], "targets": ["maybe"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["targets[0]", "\"maybe\"", "no class"],
    )
    .await;
    assert_problem(
        app.post_json(
            &path,
            &json!({"features": [{"plan": "pro"}, {"plan": "gold"}], "targets": ["yes"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["2 rows", "targets has 1"],
    )
    .await;
}

#[tokio::test]
async fn batch_inputs_that_cannot_be_scored_are_problems_naming_what_is_wrong() {
    let app = spawn_app().await;
    let (model, dataset) = churn_model(&app).await;
    let path = format!("/models/{model}/predict");
    let table = "customer,plan,tenure,region\nc1,pro,3,north\n";
    let cases: [(&str, &str, StatusCode, &[&str]); 7] = [
        (
            "?keep=nope",
            table,
            StatusCode::UNPROCESSABLE_ENTITY,
            &["keep", "\"nope\""],
        ),
        (
            "?keep=plan,plan",
            table,
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"plan\" twice"],
        ),
        (
            "?keep=plan",
            "plan,tenure,region\npro,3,north\npro,4\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 3", "expected 3 fields"],
        ),
        (
            "",
            "customer,tenure,region\nc1,3,north\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"plan\"", "no column"],
        ),
        (
            "",
            "plan,tenure,region\npro,long,north\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 2", "\"tenure\"", "\"long\""],
        ),
        (
            "",
            "plan,tenure,region\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["no rows"],
        ),
        (
            "",
            "plan,plan\npro,pro\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"plan\"", "twice"],
        ),
    ];
    for (query, body, status, needles) in cases {
        let response = post(&app, &format!("{path}{query}"), body, "text/csv").await;
        assert_eq!(response.status(), status, "{query} {body:?}");
        assert_problem(response, status, needles).await;
    }
    // An identifier of up to 10 000 values is stored whole, so it can be kept.
    let kept = app
        .client
        .post(app.url(&format!("{path}?dataset_id={dataset}&keep=customer")))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), StatusCode::OK);
    let kept = kept.text().await.unwrap();
    assert!(
        kept.lines().nth(1).unwrap().starts_with("c00000,"),
        "{kept:.200}"
    );
    // An identifier stored only as a sample, or a column the dataset lacks.
    let large = app.upload(churn_table(10_001, 9), "?target=churn").await;
    let large = large["id"].as_str().unwrap();
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (query, status, needles) in [
        (
            format!("?dataset_id={unknown}"),
            StatusCode::NOT_FOUND,
            &["dataset", unknown][..],
        ),
        (
            format!("?dataset_id={large}&keep=customer"),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"customer\"", "identifier"],
        ),
        (
            format!("?dataset_id={dataset}&keep=colour"),
            StatusCode::UNPROCESSABLE_ENTITY,
            &["\"colour\""],
        ),
    ] {
        let response = app
            .client
            .post(app.url(&format!("{path}{query}")))
            .send()
            .await
            .unwrap();
        assert_problem(response, status, needles).await;
    }
    let other = app
        .upload(
            "customer,tenure,region,churn\nc1,3,north,yes\nc2,4,,no\n",
            "?target=churn",
        )
        .await;
    let response = app
        .client
        .post(app.url(&format!(
            "{path}?dataset_id={}",
            other["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"plan\"", "no column"],
    )
    .await;
    let response = post(
        &app,
        &format!("{path}?dataset_id={dataset}"),
        table,
        "text/csv",
    )
    .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["body must be empty"],
    )
    .await;
    let response = app
        .post_json(
            &format!("{path}?keep=plan"),
            &json!({"instances": [{"plan": "pro"}]}),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &["keep"]).await;

    // Still serving; spaces around a field are trimmed, as at upload.
    let lines = csv_answer(post(&app, &path, table, "text/csv").await).await;
    assert_eq!(lines.len(), 2);
    let padded = "customer,plan,tenure,region\nc1, pro , 3 ,north\n";
    assert_eq!(
        csv_answer(post(&app, &path, padded, "text/csv").await).await,
        lines
    );
}
