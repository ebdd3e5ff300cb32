//! Several real `nnserve` processes on one PostgreSQL database: every instance takes jobs
//! from the one queue, each job runs once, a dead or frozen instance's job is taken over
//! when its lease expires and ends bit-identical to an uninterrupted run, and a cancel
//! asked of one instance stops the job another runs. SQLite has a single instance by
//! design: on it these tests return at once (`.ci/test` runs them in its PostgreSQL pass).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::crashes::{control_run, predictions, records, slow_spec};
use crate::helpers::{binary_spec, linear_rows, to_csv, TestDb};
use crate::process::{start, Process};

/// Short leases, so a takeover happens within the test's patience.
const ARGS: [&str; 6] = [
    "--workers",
    "1",
    "--lease-seconds",
    "1",
    "--heartbeat-seconds",
    "0.2",
];

/// `n` instances on one database, or none when the tests run on SQLite.
fn instances(n: usize) -> Option<(Arc<tempfile::TempDir>, Vec<Process>)> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    if let TestDb::Sqlite(_) = TestDb::of(dir.path()) {
        eprintln!("several instances need PostgreSQL: NNSERVE_TEST_POSTGRES is not set");
        return None;
    }
    let all = (0..n).map(|_| start(&dir, &ARGS, None)).collect();
    Some((dir, all))
}

/// Which of two instances runs `job` (its log says it started it), and the other.
fn runner_and_other(servers: &[Process], job: &str) -> (usize, usize) {
    let started = |p: &Process| {
        p.log()
            .lines()
            .any(|l| l.contains(job) && l.contains("job started"))
    };
    match (started(&servers[0]), started(&servers[1])) {
        (true, false) => (0, 1),
        (false, true) => (1, 0),
        both => panic!("which instance runs {job}? {both:?}"),
    }
}

async fn wait_done(process: &Process, job: &str) -> Value {
    let done = process
        .app
        .wait_job(job, |j| j["status"] != "queued" && j["status"] != "running");
    tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .expect("the job ends")
}

#[tokio::test]
async fn forty_jobs_on_four_instances_each_run_once() {
    let Some((_dir, servers)) = instances(4) else {
        return;
    };
    let dataset = servers[0]
        .app
        .upload(to_csv(&linear_rows(200, 5)), "?target=label")
        .await;
    let spec = binary_spec(dataset["id"].as_str().unwrap(), 3);
    let mut jobs = Vec::new();
    for i in 0..40 {
        jobs.push(servers[i % 4].app.submit(&spec).await);
    }
    let mut models = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let done = wait_done(&servers[(i + 1) % 4], job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            servers[i % 4].app.epoch_numbers(job).await,
            vec![1, 2, 3],
            "each epoch of {job} once"
        );
        models.push(done["model_id"].as_str().unwrap().to_owned());
    }
    // Same spec, same data, same seed: every instance trained the same weights, and every
    // instance serves every model.
    let first = predictions(&servers[0].app, &models[0]).await;
    for (i, model) in models.iter().enumerate() {
        assert_eq!(predictions(&servers[i % 4].app, model).await, first);
    }
}

#[tokio::test]
async fn a_killed_instances_job_resumes_elsewhere_bit_identically() {
    let csv = to_csv(&linear_rows(600, 11));
    let epochs = 8;
    let Some((dir, mut servers)) = instances(1) else {
        return;
    };
    let (control, control_predictions) = control_run(&csv, |d| slow_spec(d, epochs)).await;
    let first = servers.remove(0);
    let dataset = first.app.upload(csv, "?target=label").await;
    let job = first
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), epochs))
        .await;
    first
        .app
        .wait_job(&job, |j| j["epoch"].as_u64() >= Some(2))
        .await;
    let second = start(&dir, &ARGS, None);
    first.sigkill();
    let done = wait_done(&second, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(records(&second.app, &job).await, control);
    let model = done["model_id"].as_str().unwrap();
    assert_eq!(predictions(&second.app, model).await, control_predictions);
}

#[tokio::test]
async fn a_frozen_instance_writes_nothing_after_its_lease_is_taken() {
    let csv = to_csv(&linear_rows(600, 12));
    let epochs = 40;
    let Some((_dir, servers)) = instances(2) else {
        return;
    };
    let (control, _) = control_run(&csv, |d| slow_spec(d, epochs)).await;
    let dataset = servers[0].app.upload(csv, "?target=label").await;
    let job = servers[0]
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), epochs))
        .await;
    servers[0]
        .app
        .wait_job(&job, |j| j["epoch"].as_u64() >= Some(2))
        .await;
    // The instance running it is frozen past its lease; the other takes it over. Frozen
    // inside an epoch's write, it holds the job's row lock and no one may take the job
    // (as it should be): then it is thawed for a moment and frozen again.
    let (runner, other) = runner_and_other(&servers, &job);
    let runner_id = instance_id(&servers[runner]);
    let owned = "SELECT CAST(COUNT(*) AS BIGINT) FROM jobs WHERE id = $1 AND lease_owner = $2";
    let mut taken = false;
    for _ in 0..5 {
        servers[runner].signal("STOP");
        for _ in 0..40 {
            if servers[other]
                .app
                .db
                .number(owned, &[&job, &runner_id])
                .await
                == Some(0)
            {
                taken = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if taken {
            // The other instance trains on a while before the frozen one wakes up.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        servers[runner].signal("CONT");
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(taken, "the other instance took the job over");
    let done = wait_done(&servers[other], &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        servers[other].app.epoch_numbers(&job).await,
        (1..=epochs as u64).collect::<Vec<_>>(),
        "no epoch doubled or missing"
    );
    assert_eq!(records(&servers[other].app, &job).await, control);
    // The other instance finished it, and the thawed one, given time to try, wrote no
    // epoch, checkpoint or progress after it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let finisher = instance_id(&servers[other]);
    assert_eq!(
        servers[other]
            .app
            .db
            .number(owned, &[&job, &finisher])
            .await,
        Some(1),
        "the job ended under the other instance's lease"
    );
    let after = servers[other].app.get_json(&format!("/jobs/{job}")).await;
    assert_eq!(after["epoch"], epochs, "{after}");
    assert_eq!(after["status"], "succeeded");
    assert_eq!(
        servers[other].app.epoch_numbers(&job).await,
        (1..=epochs as u64).collect::<Vec<_>>()
    );
}

/// The instance id a process logged when its scheduler started.
fn instance_id(process: &Process) -> String {
    let log = process.log();
    let line = log
        .lines()
        .find(|l| l.contains("scheduler started"))
        .expect("the scheduler's start is logged");
    let id = line.split("instance=").nth(1).expect("instance id");
    id.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_cancel_asked_of_one_instance_stops_the_job_another_runs() {
    let Some((_dir, servers)) = instances(2) else {
        return;
    };
    let dataset = servers[0]
        .app
        .upload(to_csv(&linear_rows(600, 13)), "?target=label")
        .await;
    let job = servers[0]
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), 200))
        .await;
    servers[0]
        .app
        .wait_job(&job, |j| j["epoch"].as_u64() >= Some(1))
        .await;
    let (runner, other) = runner_and_other(&servers, &job);
    let asked = servers[other]
        .app
        .client
        .post(servers[other].app.url(&format!("/jobs/{job}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let done = wait_done(&servers[runner], &job).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["epoch"].as_u64().unwrap() < 200);
}

#[tokio::test]
async fn a_change_made_through_one_instance_reaches_the_others_cache_within_a_second() {
    let Some((_dir, servers)) = instances(2) else {
        return;
    };
    let (a, b) = (&servers[0].app, &servers[1].app);
    let dataset = a
        .upload(to_csv(&linear_rows(200, 6)), "?target=label")
        .await;
    let mut spec = binary_spec(dataset["id"].as_str().unwrap(), 2);
    spec["name"] = serde_json::json!("shared");
    let mut models = Vec::new();
    for _ in 0..2 {
        let job = a.submit(&spec).await;
        let done = a.wait_finished(&job).await;
        models.push(done["model_id"].as_str().unwrap().to_owned());
    }
    let point = |version: u32| {
        let url = a.url("/models/shared/aliases/live");
        let request = a
            .client
            .put(url)
            .json(&serde_json::json!({ "version": version }));
        async move { assert!(request.send().await.unwrap().status().is_success()) }
    };
    point(1).await;
    // B resolves the alias and loads the model: both are cached there now.
    assert_eq!(b.get_json("/models/shared@live").await["id"], models[0]);
    predictions(b, &models[0]).await;
    point(2).await;
    let within = |what: &'static str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        move || {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} took over a second"
            )
        }
    };
    let in_time = within("the alias's move");
    while b.get_json("/models/shared@live").await["id"] != models[1] {
        in_time();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.delete(&format!("/models/{}", models[0])).await.status(),
        StatusCode::NO_CONTENT
    );
    let in_time = within("the deletion");
    let predict = format!("/models/{}/predict", models[0]);
    let body = serde_json::json!({"instances": [[0.1, 0.2, 0.3, 0.4]]});
    while b.post_json(&predict, &body).await.status() != StatusCode::NOT_FOUND {
        in_time();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `.ci/postgres` (start, or `stop`) for a cluster of its own on `port`.
fn own_cluster(port: u16, stop: bool) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/postgres");
    let mut command = std::process::Command::new(script);
    command.env("NNSERVE_PG_PORT", port.to_string());
    if stop {
        command.arg("stop");
    }
    let out = command.output().expect(".ci/postgres runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn the_database_down_mid_training_answers_503_and_loses_no_epoch() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    if let TestDb::Sqlite(_) = TestDb::of(dir.path()) {
        eprintln!(
            "stopping the database server needs PostgreSQL: NNSERVE_TEST_POSTGRES is not set"
        );
        return;
    }
    let csv = to_csv(&linear_rows(600, 14));
    let epochs = 30;
    let (control, _) = control_run(&csv, |d| slow_spec(d, epochs)).await;
    // A server of its own: the one the other tests share keeps running.
    let port = 56000 + (std::process::id() % 1000) as u16;
    let url = own_cluster(port, false);
    let mut args = vec!["--database-url", &url];
    args.extend_from_slice(&ARGS);
    let server = start(&dir, &args, None);
    let dataset = server.app.upload(csv, "?target=label").await;
    let job = server
        .app
        .submit(&slow_spec(dataset["id"].as_str().unwrap(), epochs))
        .await;
    server
        .app
        .wait_job(&job, |j| j["epoch"].as_u64() >= Some(2))
        .await;
    own_cluster(port, true);
    let view = server.app.get(&format!("/jobs/{job}")).await;
    assert_eq!(view.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    own_cluster(port, false);
    let done = wait_done(&server, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        server.app.epoch_numbers(&job).await,
        (1..=epochs as u64).collect::<Vec<_>>()
    );
    assert_eq!(records(&server.app, &job).await, control);
    drop(server);
    own_cluster(port, true);
}
