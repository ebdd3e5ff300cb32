//! Many clients at once while two jobs write epochs: predicts, uploads, submissions, cancels and
//! deletes interleave on one SQLite file, and no answer is a 5xx or a leaked `SQLITE_BUSY`.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{binary_spec, linear_rows, spawn_with, to_csv, Options, TestApp};

/// What one request got back.
struct Answer {
    what: String,
    status: StatusCode,
    body: String,
}

impl Answer {
    /// The `id` of the resource this answer created.
    fn id(&self) -> String {
        let body: Value = serde_json::from_str(&self.body).expect("a JSON body");
        body["id"].as_str().expect("an id").to_owned()
    }
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<(&str, String)>) -> Answer {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    Answer {
        what: format!("{method} {path}"),
        status,
        body: response.text().await.expect("body"),
    }
}

fn assert_sound(answers: &[Answer]) {
    for a in answers {
        assert!(
            !a.status.is_server_error(),
            "{} answered {}: {}",
            a.what,
            a.status,
            a.body
        );
        let lowered = a.body.to_lowercase();
        assert!(
            !lowered.contains("busy") && !lowered.contains("locked"),
            "{} leaked a lock error: {}",
            a.what,
            a.body
        );
    }
}

async fn finished_model(app: &TestApp, dataset: &str) -> String {
    let id = app.submit(&binary_spec(dataset, 2)).await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["model_id"].as_str().unwrap().to_owned()
}

/// `times` predicts on `model` one after the other, each answered with one of `allowed`.
async fn predicts(app: &TestApp, model: &str, times: usize, allowed: &[StatusCode]) -> Vec<Answer> {
    let mut answers = Vec::new();
    for _ in 0..times {
        let a = predict(app, model).await;
        assert!(
            allowed.contains(&a.status),
            "predict on {model}: {} {}",
            a.status,
            a.body
        );
        answers.push(a);
    }
    answers
}

async fn predict(app: &TestApp, model: &str) -> Answer {
    let path = format!("/models/{model}/predict");
    let body = Some(("application/json", predict_body()));
    send(app, Method::POST, &path, body).await
}

fn predict_body() -> String {
    let rows: Vec<Vec<f64>> = linear_rows(8, 4)
        .into_iter()
        .map(|(x, _)| x.to_vec())
        .collect();
    json!({ "instances": rows }).to_string()
}

/// Enough epochs that both trainers outlast the traffic below.
const TRAINER_EPOCHS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_traffic_while_two_jobs_train() {
    let app = Arc::new(
        spawn_with(Options {
            workers: Some(2),
            ..Options::default()
        })
        .await,
    );
    let dataset = app.linear_dataset(2000, 1).await;
    let kept = finished_model(&app, &dataset).await;
    let doomed = finished_model(&app, &dataset).await;

    // Two jobs long enough to write epochs through everything below.
    let trainers = [
        app.submit(&binary_spec(&dataset, TRAINER_EPOCHS)).await,
        app.submit(&binary_spec(&dataset, TRAINER_EPOCHS)).await,
    ];
    app.wait_job(&trainers[0], |j| j["epoch"].as_u64() >= Some(1))
        .await;

    let mut tasks: JoinSet<Vec<Answer>> = JoinSet::new();
    for _ in 0..4 {
        let (app, kept) = (app.clone(), kept.clone());
        tasks.spawn(async move { predicts(&app, &kept, 15, &[StatusCode::OK]).await });
    }
    // Predicts on a model that is deleted midway: each is 200 or 404, never anything else.
    for _ in 0..3 {
        let (app, doomed) = (app.clone(), doomed.clone());
        let allowed = [StatusCode::OK, StatusCode::NOT_FOUND];
        tasks.spawn(async move { predicts(&app, &doomed, 20, &allowed).await });
    }
    {
        let app = app.clone();
        let doomed = doomed.clone();
        tasks.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let a = send(&app, Method::DELETE, &format!("/models/{doomed}"), None).await;
            assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
            vec![a]
        });
    }
    // Uploads, half of them deleted again right away.
    for i in 0..6u64 {
        let app = app.clone();
        tasks.spawn(async move {
            let csv = to_csv(&linear_rows(200, 100 + i));
            let a = send(
                &app,
                Method::POST,
                "/datasets?name=burst",
                Some(("text/csv", csv)),
            )
            .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            let id = a.id();
            let mut answers = vec![a];
            if i % 2 == 0 {
                let d = send(&app, Method::DELETE, &format!("/datasets/{id}"), None).await;
                assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
                answers.push(d);
            }
            answers
        });
    }
    // Submissions cancelled at once, while still queued behind the two trainers.
    for _ in 0..6 {
        let app = app.clone();
        let dataset = dataset.clone();
        tasks.spawn(async move {
            let body = binary_spec(&dataset, 3).to_string();
            let a = send(
                &app,
                Method::POST,
                "/jobs",
                Some(("application/json", body)),
            )
            .await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
            let id = a.id();
            let c = send(&app, Method::POST, &format!("/jobs/{id}/cancel"), None).await;
            assert!(
                matches!(c.status, StatusCode::OK | StatusCode::ACCEPTED),
                "{} {}",
                c.status,
                c.body
            );
            vec![a, c]
        });
    }
    // Readers of everything the writers touch.
    for _ in 0..2 {
        let app = app.clone();
        let watched = trainers[1].clone();
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..10 {
                for path in ["/jobs", "/datasets", "/models", "/metrics"] {
                    answers.push(send(&app, Method::GET, path, None).await);
                }
                let metrics = format!("/jobs/{watched}/metrics");
                answers.push(send(&app, Method::GET, &metrics, None).await);
            }
            answers
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.extend(done.expect("no client task panicked"));
    }
    assert_sound(&answers);
    for id in &trainers {
        let job = app.get_json(&format!("/jobs/{id}")).await;
        assert_eq!(
            job["status"], "running",
            "the traffic ran beside training: {job}"
        );
    }

    // The deleted model is gone for good; the totals add up.
    assert_eq!(predict(&app, &doomed).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_json("/datasets").await["total"], 1 + 3);
    let models = app.get_json("/models").await;
    assert_eq!(models["total"], 1);
    assert_eq!(app.get_json("/jobs?status=cancelled").await["total"], 6);

    for id in &trainers {
        let job = app.wait_finished(id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            app.epoch_numbers(id).await,
            (1..=TRAINER_EPOCHS as u64).collect::<Vec<_>>(),
            "every epoch once"
        );
    }
    assert_eq!(app.get_json("/models").await["total"], 3);
    assert_eq!(app.get_json("/jobs").await["total"], 2 + 2 + 6);
}

/// Cancelling a one-epoch job right as it ends: the answer and the final status agree, whichever
/// side wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_the_end_of_a_job() {
    let app = spawn_with(Options {
        workers: Some(2),
        ..Options::default()
    })
    .await;
    let dataset = app.linear_dataset(300, 2).await;
    let mut outcomes = (0, 0, 0);
    for round in 0..12u64 {
        let id = app.submit(&binary_spec(&dataset, 1)).await;
        // Vary the moment of the cancel around the job's short life.
        tokio::time::sleep(std::time::Duration::from_millis(round * 3)).await;
        let c = send(&app, Method::POST, &format!("/jobs/{id}/cancel"), None).await;
        let job = app.wait_finished(&id).await;
        let status = job["status"].as_str().unwrap();
        match c.status {
            StatusCode::OK => {
                assert_eq!(status, "cancelled", "{job}");
                outcomes.0 += 1;
            }
            // Asked to stop while running: it stops, or it had already written its result.
            StatusCode::ACCEPTED => {
                assert!(matches!(status, "cancelled" | "succeeded"), "{job}");
                outcomes.1 += 1;
            }
            StatusCode::CONFLICT => {
                assert_eq!(status, "succeeded", "{job}");
                outcomes.2 += 1;
            }
            other => panic!("cancel answered {other}: {}", c.body),
        }
        // A cancelled job leaves no model; a succeeded one leaves exactly one.
        match status {
            "cancelled" => assert_eq!(job["model_id"], Value::Null, "{job}"),
            _ => assert!(job["model_id"].is_string(), "{job}"),
        }
    }
    let models = app.get_json("/models").await["total"].as_u64().unwrap();
    let succeeded = app.get_json("/jobs?status=succeeded").await["total"]
        .as_u64()
        .unwrap();
    assert_eq!(models, succeeded);
    eprintln!("cancel outcomes (queued, running, finished): {outcomes:?}");
}
