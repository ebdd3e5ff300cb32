use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_with, Options, TestApp};

const SMALL: &str = "a,b,label\n1,2,0\n3.5,-4e-1,1\n5,6,2\n";

#[tokio::test]
async fn csv_upload_is_stored_listed_and_deleted() {
    let app = spawn_app().await;
    let response = app.post_csv("/datasets?name=tiny", SMALL).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/datasets/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["name"], "tiny");
    assert_eq!(created["rows"], 3);
    assert_eq!(created["features"], 2);
    assert_eq!(created["targets"], 1);
    assert_eq!(created["columns"], json!(["a", "b", "label"]));
    assert_eq!(created["target_names"], json!(["label"]));

    assert_eq!(app.get_json(&location).await, created);
    let list = app.get_json("/datasets").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0], created);

    assert_eq!(app.delete(&location).await.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get(&location).await,
        StatusCode::NOT_FOUND,
        &["dataset"],
    )
    .await;
    assert_problem(
        app.delete(&location).await,
        StatusCode::NOT_FOUND,
        &["dataset"],
    )
    .await;
    assert_eq!(
        app.stored_chunk_rows().await,
        0,
        "chunks are deleted with the dataset"
    );
}

#[tokio::test]
async fn repeated_target_parameters_pick_several_targets() {
    let app = spawn_app().await;
    let created = app
        .upload("y1,x,y2,z\n1,2,3,4\n5,6,7,8\n", "?target=y2&target=y1")
        .await;
    assert_eq!(created["feature_names"], json!(["x", "z"]));
    assert_eq!(created["target_names"], json!(["y2", "y1"]));
    assert_eq!(created["name"], "unnamed");
}

#[tokio::test]
async fn json_upload_accepts_a_target_column_or_rows() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/datasets",
            &json!({"name": "j", "features": [[1, 2], [3, 4]], "targets": [0, 1],
                    "feature_names": ["p", "q"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["columns"], json!(["p", "q", "y"]));
    let body: Value = app
        .post_json(
            "/datasets",
            &json!({"features": [[1], [2]], "targets": [[1, 2], [3, 4]]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["target_names"], json!(["y0", "y1"]));
    assert_eq!(app.stored_chunk_rows().await, 4);
}

/// Each bad upload gets its status and a detail naming the fault, and nothing is stored.
#[tokio::test]
async fn bad_csv_is_rejected_and_nothing_is_stored() {
    let app = spawn_app().await;
    app.upload(SMALL, "").await;
    let cases: &[(&str, &str, StatusCode, &[&str])] = &[
        (
            "a,b\n1,2\n3,4,5\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 3", "expected 2", "got 3"],
        ),
        (
            "a,b\n1,2\n3,x7\n",
            "?types=b:number",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 3", "column 2", "\"b\"", "x7"],
        ),
        (
            "a,b\n1,NaN\n",
            "?na_values=",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 2", "column 2", "NaN"],
        ),
        (
            "a,b\n1,2\ninf,1\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 3", "column 1", "inf"],
        ),
        (
            "a,b\n1,,\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["line 2"],
        ),
        (
            "a,b\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["no data rows"],
        ),
        ("", "", StatusCode::BAD_REQUEST, &["empty"]),
        (
            "a,b\n1,2\n",
            "?target=c",
            StatusCode::BAD_REQUEST,
            &["unknown target column \"c\"", "\"a\""],
        ),
        (
            "a,b\n1,2\n",
            "?target=a&target=b",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["feature column"],
        ),
        (
            "a,a\n1,2\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["appears twice"],
        ),
        (
            "1,2\n3,4\n",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["header"],
        ),
        (
            "a,b\n1,2\n",
            "?colour=red",
            StatusCode::BAD_REQUEST,
            &["colour"],
        ),
        (
            "a,b\n1,2\n",
            "?name=a%00b",
            StatusCode::BAD_REQUEST,
            &["name", "control character"],
        ),
    ];
    for (csv, query, status, needles) in cases {
        let response = app.post_csv(&format!("/datasets{query}"), *csv).await;
        assert_problem(response, *status, needles).await;
    }
    assert_unchanged(&app).await;

    let response = app
        .client
        .post(app.url("/datasets"))
        .header("content-type", "text/plain")
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, &["text/csv"]).await;
    assert_unchanged(&app).await;
}

#[tokio::test]
async fn bad_json_is_rejected_and_nothing_is_stored() {
    let app = spawn_app().await;
    app.upload(SMALL, "").await;
    let cases = [
        (
            json!({"features": [[1, 2], [3]], "targets": [0, 1]}),
            &["features[1]", "expected 2"][..],
        ),
        (
            json!({"features": [[1], [2]], "targets": [0]}),
            &["2 rows", "targets has 1"],
        ),
        (json!({"features": [], "targets": []}), &["no data rows"]),
        (
            json!({"features": [[1e39]], "targets": [0]}),
            &["features[0][0]"],
        ),
        (
            json!({"features": [[1]], "targets": [0], "colour": 1}),
            &["colour"],
        ),
        (json!({"features": [["a"]], "targets": [0]}), &["features"]),
    ];
    for (body, needles) in cases {
        let response = app.post_json("/datasets", &body).await;
        let status = response.status();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {status}"
        );
        assert_problem(response, status, needles).await;
    }
    let response = app
        .client
        .post(app.url("/datasets"))
        .header("content-type", "application/json")
        .body("{\"features\": [[1,")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, &["EOF"]).await;
    assert_unchanged(&app).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app = spawn_with(Options {
        max_body_bytes: Some(64),
        ..Options::default()
    })
    .await;
    let big = format!("a,b\n{}", "1,2\n".repeat(100));
    let response = app.post_csv("/datasets", big).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, &["64 bytes"]).await;
    assert_eq!(app.get_json("/datasets").await["total"], 0);
    assert_eq!(app.stored_chunk_rows().await, 0);
}

/// A body of several megabytes arrives in many frames and fills more than one chunk.
#[tokio::test]
async fn a_large_upload_streams_into_several_chunks() {
    let app = spawn_app().await;
    let columns = 21;
    let rows = 110_000;
    let mut csv = (0..columns)
        .map(|c| format!("c{c}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    let line = (0..columns)
        .map(|c| (c % 10).to_string())
        .collect::<Vec<_>>()
        .join(",");
    for _ in 0..rows {
        csv.push_str(&line);
        csv.push('\n');
    }
    let created = app.upload(csv, "").await;
    assert_eq!(created["rows"], rows);
    assert_eq!(app.stored_chunk_rows().await, rows as i64);

    // The same body with its very last value broken stores nothing at all.
    let mut bad = created_csv_with_bad_tail(columns, rows);
    bad.push('\n');
    let response = app.post_csv("/datasets", bad).await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[&format!("line {}", rows + 1)],
    )
    .await;
    assert_eq!(app.stored_chunk_rows().await, rows as i64);
}

fn created_csv_with_bad_tail(columns: usize, rows: usize) -> String {
    let mut csv = (0..columns)
        .map(|c| format!("c{c}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    let line = vec!["1"; columns].join(",");
    for _ in 0..rows - 1 {
        csv.push_str(&line);
        csv.push('\n');
    }
    csv.push_str(&vec!["1"; columns - 1].join(","));
    csv.push_str(",inf");
    csv
}

async fn assert_unchanged(app: &TestApp) {
    let list = app.get_json("/datasets").await;
    assert_eq!(list["total"], 1, "only the first upload is stored");
    assert_eq!(app.stored_chunk_rows().await, 3);
}

#[tokio::test]
async fn datasets_survive_a_restart() {
    let app = spawn_app().await;
    let created = app.upload(SMALL, "?name=kept").await;
    let app = app.restart(Options::default()).await;
    let path = format!("/datasets/{}", created["id"].as_str().unwrap());
    assert_eq!(app.get_json(&path).await, created);
}
