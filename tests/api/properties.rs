//! Generated input against the real server's three parsers (CSV upload, predict body, job spec):
//! whatever arrives, the answer is a success or a 4xx problem document, never a 5xx or a dead
//! process, and what was stored before still reads back.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use crate::helpers::{binary_spec, linear_rows, spawn_with, Options, TestApp};

/// Cases per property; each is one HTTP round trip of a few hundred bytes.
const CASES: u32 = 256;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        // The tree stays clean: a failure prints its minimal input instead of saving it.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Any JSON value, nested a few levels, with the numbers and strings that trip parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("relu".to_owned()),
            Just("dense".to_owned()),
            Just("".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("units".to_owned()),
                    Just("x0".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text made of what CSV is made of, so most cases get past the first byte.
fn csv_like() -> impl Strategy<Value = String> {
    let header = prop_oneof![Just("x0,x1,x2,x3,label\n".to_owned()), "[a-z,\"]{0,20}\n?"];
    (header, "[0-9eE.,+\\-\n\r\" a-z]{0,300}").prop_map(|(h, body)| h + &body)
}

/// Tables that are mostly right: numbers with the odd empty, non-finite, quoted or ragged cell.
fn table_like() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        40 => (-1e3f64..1e3).prop_map(|f| format!("{f:.3}")),
        1 => prop_oneof![
            Just(String::new()),
            Just("nan".to_owned()),
            Just("1e999".to_owned()),
            Just("\"2\"".to_owned()),
            "[a-z]{1,3}",
        ],
    ];
    let width = prop_oneof![8 => Just(5usize), 1 => 4..=6usize];
    let row = width
        .prop_flat_map(move |n| prop::collection::vec(cell.clone(), n))
        .prop_map(|cells| cells.join(","));
    prop::collection::vec(row, 0..12)
        .prop_map(|rows| format!("x0,x1,x2,x3,label\n{}\n", rows.join("\n")))
}

/// Rows to predict that are mostly right: four numbers, sometimes another count or a stray value.
fn instances_like() -> impl Strategy<Value = Value> {
    let value = prop_oneof![30 => (-10f64..10.0).prop_map(|f| json!(f)), 1 => any_json()];
    let width = prop_oneof![8 => Just(4usize), 1 => 3..=5usize];
    let row = width.prop_flat_map(move |n| prop::collection::vec(value.clone(), n));
    prop::collection::vec(row, 0..6).prop_map(Value::from)
}

/// Values a spec's numbers are often replaced by: small integers and fractions, or anything.
fn spec_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..300).prop_map(Value::from),
        (-1f64..2.0).prop_map(|f| json!(f)),
        any_json(),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..400)
}

/// Sends one body and checks the answer's shape.
async fn check(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> StatusCode {
    let response = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body.clone())
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let shown = String::from_utf8_lossy(&body);
    assert!(
        status.is_success() || status.is_client_error(),
        "{path} answered {status} to {shown:?}: {text}"
    );
    if status.is_client_error() {
        assert_eq!(
            kind.as_deref(),
            Some("application/problem+json"),
            "{shown:?}"
        );
        let problem: Value = serde_json::from_str(&text).expect("a JSON problem");
        assert_eq!(problem["status"], status.as_u16());
        assert!(
            !problem["detail"].as_str().unwrap_or("").is_empty(),
            "{shown:?}: {text}"
        );
    }
    status
}

struct Setup {
    runtime: Runtime,
    app: TestApp,
    dataset: String,
    model: String,
}

/// A server with nothing training (generated specs may be valid), a dataset and a model.
fn setup() -> Setup {
    let runtime = Runtime::new().unwrap();
    let (app, dataset, model) = runtime.block_on(async {
        let trainer = spawn_with(Options::default()).await;
        let dataset = trainer.linear_dataset(200, 7).await;
        let job = trainer.submit(&binary_spec(&dataset, 2)).await;
        let model = trainer.wait_finished(&job).await["model_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let app = trainer
            .restart(Options {
                workers: Some(0),
                ..Options::default()
            })
            .await;
        (app, dataset, model)
    });
    Setup {
        runtime,
        app,
        dataset,
        model,
    }
}

impl Setup {
    /// What was stored before the generated input is still there, byte for byte.
    fn assert_intact(&self, prediction: &Value) {
        self.runtime.block_on(async {
            let dataset = self
                .app
                .get_json(&format!("/datasets/{}", self.dataset))
                .await;
            assert_eq!(dataset["rows"], 200);
            assert_eq!(&self.predict().await, prediction);
        });
    }

    async fn predict(&self) -> Value {
        let rows: Vec<Vec<f64>> = linear_rows(4, 1)
            .into_iter()
            .map(|(x, _)| x.to_vec())
            .collect();
        crate::journey::predict(&self.app, &self.model, &json!({ "instances": rows })).await
    }
}

#[test]
fn uploads_of_any_bytes_get_an_answer() {
    let setup = setup();
    let before = setup.runtime.block_on(setup.predict());
    let strategy = prop_oneof![
        bytes(),
        csv_like().prop_map(String::into_bytes),
        table_like().prop_map(String::into_bytes),
    ];
    runner()
        .run(&strategy, |body| {
            setup
                .runtime
                .block_on(check(&setup.app, "/datasets?name=p", "text/csv", body));
            Ok(())
        })
        .unwrap();
    let json_bodies = any_json().prop_map(|v| json!({"features": v, "targets": [[1]]}));
    runner()
        .run(&json_bodies, |body| {
            let body = body.to_string().into_bytes();
            let path = "/datasets";
            setup
                .runtime
                .block_on(check(&setup.app, path, "application/json", body));
            Ok(())
        })
        .unwrap();
    setup.assert_intact(&before);
}

#[test]
fn predict_bodies_of_any_shape_get_an_answer() {
    let setup = setup();
    let before = setup.runtime.block_on(setup.predict());
    let path = format!("/models/{}/predict", setup.model);
    let strategy = prop_oneof![
        bytes(),
        any_json().prop_map(|v| json!({ "instances": v }).to_string().into_bytes()),
        any_json().prop_map(|v| json!({ "instances": [v] }).to_string().into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        instances_like().prop_map(|v| json!({ "instances": v }).to_string().into_bytes()),
    ];
    runner()
        .run(&strategy, |body| {
            let status = setup
                .runtime
                .block_on(check(&setup.app, &path, "application/json", body));
            prop_assert_ne!(status, StatusCode::CREATED);
            Ok(())
        })
        .unwrap();
    setup.assert_intact(&before);
}

/// Replaces the value at one place in a valid spec, chosen by `at` among all its places.
fn mutate(spec: &mut Value, at: usize, value: Value) {
    fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    pointers(child, format!("{here}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    pointers(child, format!("{here}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(here);
    }
    let mut places = Vec::new();
    pointers(spec, String::new(), &mut places);
    let place = &places[at % places.len()];
    *spec.pointer_mut(place).expect("a place in the spec") = value;
}

#[test]
fn job_specs_of_any_shape_get_an_answer() {
    let setup = setup();
    let before = setup.runtime.block_on(setup.predict());
    let good = binary_spec(&setup.dataset, 2);
    let strategy = prop_oneof![
        bytes(),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        (any::<usize>(), spec_value()).prop_map(move |(at, v)| {
            let mut spec = good.clone();
            mutate(&mut spec, at, v);
            spec.to_string().into_bytes()
        }),
    ];
    runner()
        .run(&strategy, |body| {
            setup
                .runtime
                .block_on(check(&setup.app, "/jobs", "application/json", body));
            Ok(())
        })
        .unwrap();
    setup.assert_intact(&before);
}
