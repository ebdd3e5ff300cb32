//! Parquet uploads written by an independent writer (pyarrow, in the venv `.ci/test-python`
//! makes) store the same dataset as the same table sent as CSV: same report, same cells
//! (checked end to end by training the same seeded job on both), same predictions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_with, test_python, Lcg, Options, TestApp};

const PARQUET: &str = "application/vnd.apache.parquet";

fn python() -> Option<PathBuf> {
    test_python("pyarrow")
}

/// Builds a table with pyarrow from `columns` (name → {"type", "values"}, in order) and
/// writes it as Parquet with the given writer options (`write_table`'s keywords).
const WRITER: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
spec = json.load(sys.stdin)
types = {
    "double": pa.float64(), "int64": pa.int64(), "string": pa.string(), "bool": pa.bool_(),
    "dictionary": pa.dictionary(pa.int32(), pa.string()), "list": pa.list_(pa.int64()),
}
arrays = [pa.array(c["values"], type=types[c["type"]]) for c in spec["columns"]]
table = pa.table(arrays, names=[c["name"] for c in spec["columns"]])
pq.write_table(table, spec["path"], **spec["options"])
"#;

fn write_parquet(python: &Path, dir: &Path, columns: &Value, options: Value) -> Vec<u8> {
    let path = dir.join("table.parquet");
    let spec = json!({"columns": columns, "path": path, "options": options});
    let mut child = Command::new(python)
        .args(["-c", WRITER])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python starts");
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    assert!(child.wait().unwrap().success(), "pyarrow wrote the file");
    std::fs::read(path).unwrap()
}

/// The same columns as CSV: nulls as empty fields, booleans as pyarrow spells them.
fn to_csv(columns: &Value) -> String {
    let columns = columns.as_array().unwrap();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut csv = names.join(",") + "\n";
    let rows = columns[0]["values"].as_array().unwrap().len();
    for row in 0..rows {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match &c["values"][row] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        csv.push_str(&(fields.join(",") + "\n"));
    }
    csv
}

/// A churn table with every kind of column the upload reads: an identifier, text with
/// nulls, floats with nulls, integers, an integer code (a category by `types`), a
/// dictionary-encoded column, booleans, and a text label missing for some rows.
fn table(rows: usize, seed: u64) -> Value {
    let mut lcg = Lcg::new(seed);
    let mut uniform = move || (lcg.next() + 1.0) / 2.0;
    let mut columns: Vec<(&str, &str, Vec<Value>)> = [
        ("customer", "string"),
        ("plan", "string"),
        ("tenure", "double"),
        ("visits", "int64"),
        ("zip", "int64"),
        ("region", "dictionary"),
        ("member", "bool"),
        ("churn", "string"),
    ]
    .into_iter()
    .map(|(name, kind)| (name, kind, Vec::with_capacity(rows)))
    .collect();
    for i in 0..rows {
        let plan = ["basic", "pro", "gold"][(uniform() * 3.0) as usize % 3];
        let tenure = (uniform() * 7000.0).round() / 100.0;
        let missing = uniform() < 0.1;
        let churn = if uniform() < 0.05 {
            Value::Null
        } else {
            json!(if plan == "pro" || missing {
                "yes"
            } else {
                "no"
            })
        };
        let row = [
            json!(format!("c{i:05}")),
            if uniform() < 0.05 {
                Value::Null
            } else {
                json!(plan)
            },
            if missing { Value::Null } else { json!(tenure) },
            json!((uniform() * 40.0) as i64 - 5),
            if uniform() < 0.1 {
                Value::Null
            } else {
                json!(10_000 + (uniform() * 6.0) as i64)
            },
            match uniform() {
                u if u < 0.1 => Value::Null,
                u if u < 0.5 => json!("north"),
                _ => json!("south"),
            },
            json!(uniform() < 0.3),
            churn,
        ];
        for (column, value) in columns.iter_mut().zip(row) {
            column.2.push(value);
        }
    }
    Value::Array(
        columns
            .into_iter()
            .map(|(name, kind, values)| json!({"name": name, "type": kind, "values": values}))
            .collect(),
    )
}

async fn post_parquet(app: &TestApp, query: &str, body: Vec<u8>) -> Response {
    app.client
        .post(app.url(&format!("/datasets{query}")))
        .header("content-type", PARQUET)
        .body(body)
        .send()
        .await
        .expect("request")
}

fn spec(dataset_id: &str) -> Value {
    json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}
        ]},
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.02},
        "metrics": ["accuracy"],
        "epochs": 3,
        "batch_size": 128,
        "validation_split": 0.2,
        "seed": 5
    })
}

/// Trains the seeded job on `dataset`; returns each epoch's (loss, val_loss) bits and the
/// model's predictions of a few raw rows.
async fn train(app: &TestApp, dataset: &str) -> (Vec<(u64, u64)>, Value) {
    let job = app.submit(&spec(dataset)).await;
    let job = app.wait_finished(&job).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let metrics = app
        .get_json(&format!("/jobs/{}/metrics", job["id"].as_str().unwrap()))
        .await;
    let bits = |epoch: &Value, key: &str| epoch[key].as_f64().unwrap().to_bits();
    let losses = metrics["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (bits(e, "loss"), bits(e, "val_loss")))
        .collect();
    let rows = json!({"instances": [
        {"plan": "pro", "tenure": 30, "visits": 3, "zip": "10002", "region": "north", "member": "true"},
        {"plan": "basic", "tenure": null, "zip": "10004", "member": "false"},
        {"plan": "gold", "tenure": 61.25, "region": "south"},
    ]});
    let model = job["model_id"].as_str().unwrap();
    let response = app
        .post_json(&format!("/models/{model}/predict"), &rows)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    (losses, response.json().await.unwrap())
}

#[tokio::test]
async fn a_parquet_file_stores_the_same_dataset_as_the_same_table_in_csv() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Small chunks, so the rows of both uploads span several.
    let app = spawn_with(Options::with(|c| c.dataset_chunk_bytes = 16 << 10)).await;
    let columns = table(9000, 21);
    let query = "?target=churn&types=zip:category";
    let from_csv = app.upload(to_csv(&columns), query).await;
    let mut views = vec![];
    for options in [
        json!({"compression": "snappy", "row_group_size": 2000}),
        json!({"compression": "none", "use_dictionary": false}),
    ] {
        let file = write_parquet(&python, dir.path(), &columns, options.clone());
        let response = post_parquet(&app, query, file).await;
        let status = response.status();
        let created: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{options}: {created}");
        views.push(created);
    }
    // The report as served, without what differs by upload (id, time) or by summation order:
    // blocks of CSV bytes and Parquet batches add up the same numbers in other groupings, so
    // a mean and a deviation may differ in their last bits; they are compared apart.
    let shown = |d: &Value| {
        let app = &app;
        let id = d["id"].as_str().unwrap().to_owned();
        async move {
            let mut view = app.get_json(&format!("/datasets/{id}")).await;
            let object = view.as_object_mut().unwrap();
            for key in ["id", "created_at"] {
                object.remove(key);
            }
            let mut moments = vec![];
            for column in view["column_report"].as_array_mut().unwrap() {
                let column = column.as_object_mut().unwrap();
                let mut take = |key| column.remove(key).and_then(|v| v.as_f64());
                moments.push((take("mean"), take("std")));
            }
            (view, moments)
        }
    };
    let (expected, moments) = shown(&from_csv).await;
    let report = &expected["column_report"];
    let kind = |i: usize| report[i]["type"].as_str().unwrap();
    assert_eq!(
        (0..8).map(kind).collect::<Vec<_>>(),
        [
            "identifier",
            "category",
            "number",
            "number",
            "category",
            "category",
            "category",
            "category"
        ],
        "{report}"
    );
    assert!(report[2]["missing"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(
        report[6]["distinct"], 2,
        "booleans are two levels: {report}"
    );
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (a, b) => a == b,
    };
    for view in &views {
        let (view, got) = shown(view).await;
        assert_eq!(view, expected);
        for ((mean, std), (want_mean, want_std)) in got.into_iter().zip(&moments) {
            assert!(
                close(mean, *want_mean) && close(std, *want_std),
                "{moments:?}"
            );
        }
    }
    assert_eq!(views[0]["rows"], 9000);

    let (losses, predictions) = train(&app, from_csv["id"].as_str().unwrap()).await;
    assert_eq!(losses.len(), 3);
    for view in &views {
        let (again, predicted) = train(&app, view["id"].as_str().unwrap()).await;
        assert_eq!(again, losses, "the same cells train to the same bits");
        assert_eq!(predicted, predictions);
    }
}

#[tokio::test]
async fn files_that_cannot_be_stored_are_refused_naming_the_problem() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app().await;
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert_problem(
        post_parquet(&app, "", garbage).await,
        StatusCode::BAD_REQUEST,
        &["not a Parquet file"],
    )
    .await;
    assert_problem(
        post_parquet(&app, "", Vec::new()).await,
        StatusCode::BAD_REQUEST,
        &["not a Parquet file"],
    )
    .await;

    let good = write_parquet(&python, dir.path(), &table(50, 3), json!({}));
    let cut = good[..good.len() / 2].to_vec();
    assert_problem(
        post_parquet(&app, "", cut).await,
        StatusCode::BAD_REQUEST,
        &["Parquet"],
    )
    .await;
    assert_problem(
        post_parquet(&app, "?types=plan:number&target=churn", good.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["row 1", "\"plan\"", "is not a number"],
    )
    .await;
    assert_problem(
        post_parquet(&app, "?types=nope:number", good.clone()).await,
        StatusCode::BAD_REQUEST,
        &["\"nope\""],
    )
    .await;
    let nested = json!([
        {"name": "x", "type": "double", "values": [1.0, 2.0]},
        {"name": "tags", "type": "list", "values": [[1, 2], null]},
        {"name": "y", "type": "int64", "values": [0, 1]},
    ]);
    let nested = write_parquet(&python, dir.path(), &nested, json!({}));
    assert_problem(
        post_parquet(&app, "", nested).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        &["\"tags\"", "List"],
    )
    .await;
    assert_eq!(
        app.get_json("/datasets").await["total"],
        0,
        "nothing stored"
    );

    let small = spawn_with(Options {
        max_body_bytes: Some(good.len() - 1),
        ..Options::default()
    })
    .await;
    assert_problem(
        post_parquet(&small, "", good).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        &["larger than the limit"],
    )
    .await;
    assert_eq!(small.get_json("/datasets").await["total"], 0);
}
