//! `cargo bench --bench scaling`: several nnserve instances on one PostgreSQL beside one
//! instance on SQLite, through the real release binary over HTTP (issue 16). Prints, for
//! SQLite ×1 and PostgreSQL ×1, ×2, ×4: jobs per minute (small jobs submitted round robin)
//! and single-row predicts per second (8 clients over every instance); then the claim
//! latency (submit to running) and the failover time (SIGKILL of the instance running a job
//! to its next epoch stored by another).
//!
//! On a machine of two cores the instances share the same two cores: the figures show the
//! cost of coordinating through PostgreSQL, and that it works, not a speed-up.
//!
//! Needs a PostgreSQL server: `$NNSERVE_BENCH_POSTGRES` (a URL), else the one `.ci/postgres`
//! starts. `-- --quick` shrinks the workloads for a smoke run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(database: &str) -> Instance {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnserve"))
            .args(["--addr", "127.0.0.1:0", "--database-url", database])
            .args([
                "--workers",
                "1",
                "--lease-seconds",
                "2",
                "--heartbeat-seconds",
                "0.5",
            ])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("NNSERVE_API_KEYS")
            .stdout(Stdio::piped())
            .spawn()
            .expect("nnserve starts");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("addr=")
                    .nth(1)
                    .filter(|_| line.contains("listening"))
                {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("listening");
        Instance {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database on the server `server` names (its last path segment replaced).
async fn fresh_database(server: &str, name: &str) -> String {
    let admin = sqlx::PgPool::connect(server)
        .await
        .expect("the PostgreSQL server answers");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

fn postgres_server() -> String {
    if let Some(url) = std::env::var("NNSERVE_BENCH_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return url;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/postgres");
    let out = Command::new(script).output().expect(".ci/postgres runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn json(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Rows of four features, label `x0 + 2·x1 − x2 > 0`.
fn linear_csv(rows: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut csv = String::from("x0,x1,x2,x3,label\n");
    for _ in 0..rows {
        let x: Vec<f64> = (0..4).map(|_| next()).collect();
        let label = u8::from(x[0] + 2.0 * x[1] - x[2] > 0.0);
        csv.push_str(&format!(
            "{:.4},{:.4},{:.4},{:.4},{label}\n",
            x[0], x[1], x[2], x[3]
        ));
    }
    csv
}

fn spec(dataset: &str, epochs: usize) -> Value {
    json!({
        "dataset_id": dataset, "epochs": epochs, "batch_size": 32, "validation_split": 0.2,
        "seed": 7,
        "model": {"layers": [
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}
        ]},
        "loss": "binary_crossentropy", "optimizer": "adam"
    })
}

async fn job_view(client: &reqwest::Client, base: &str, job: &str) -> Value {
    json(client.get(format!("{base}/jobs/{job}"))).await
}

struct Figures {
    jobs_per_minute: f64,
    predicts_per_second: f64,
}

/// `jobs` small jobs submitted round robin to `instances`, then predicts from 8 clients.
async fn throughput(instances: &[Instance], jobs: usize, predict_for: Duration) -> Figures {
    let client = reqwest::Client::new();
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let dataset = json(
        client
            .post(format!("{}/datasets?target=label", bases[0]))
            .header("content-type", "text/csv")
            .body(linear_csv(2000)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..jobs {
        let base = &bases[i % bases.len()];
        let job = json(client.post(format!("{base}/jobs")).json(&spec(&dataset, 3))).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let mut model = String::new();
    for id in &ids {
        loop {
            let job = job_view(&client, &bases[0], id).await;
            if !matches!(job["status"].as_str(), Some("queued" | "running")) {
                assert_eq!(job["status"], "succeeded", "{job}");
                model = job["model_id"].as_str().unwrap().to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let jobs_per_minute = jobs as f64 / started.elapsed().as_secs_f64() * 60.0;
    let served = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + predict_for;
    let mut clients = Vec::new();
    for c in 0..8 {
        let (served, base) = (served.clone(), bases[c % bases.len()].clone());
        let url = format!("{base}/models/{model}/predict");
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let body = json!({"instances": [[0.1, 0.2, 0.3, 0.4]]});
            while Instant::now() < deadline {
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert!(r.status().is_success());
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    Figures {
        jobs_per_minute,
        predicts_per_second: served.load(Ordering::Relaxed) as f64 / predict_for.as_secs_f64(),
    }
}

/// Median time from a job's submission to its being running, on idle instances.
async fn claim_latency(instances: &[Instance], rounds: usize) -> Duration {
    let client = reqwest::Client::new();
    let base = &instances[0].base;
    let dataset = json(
        client
            .post(format!("{base}/datasets?target=label"))
            .header("content-type", "text/csv")
            .body(linear_csv(500)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut took = Vec::new();
    for round in 0..rounds {
        let base = &instances[round % instances.len()].base;
        let submitted = Instant::now();
        let job = json(client.post(format!("{base}/jobs")).json(&spec(&dataset, 1))).await;
        let id = job["id"].as_str().unwrap().to_owned();
        loop {
            if job_view(&client, base, &id).await["status"] != "queued" {
                took.push(submitted.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        while matches!(
            job_view(&client, base, &id).await["status"].as_str(),
            Some("queued" | "running")
        ) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    took.sort();
    took[took.len() / 2]
}

/// From SIGKILL of the instance running a job to the job's next epoch, stored by the other.
async fn failover(server: &str) -> Duration {
    let database = fresh_database(server, "nnserve_bench_failover").await;
    let client = reqwest::Client::new();
    let first = Instance::start(&database);
    let dataset = json(
        client
            .post(format!("{}/datasets?target=label", first.base))
            .header("content-type", "text/csv")
            .body(linear_csv(20_000)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = json(
        client
            .post(format!("{}/jobs", first.base))
            .json(&spec(&dataset, 200)),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    while job_view(&client, &first.base, &id).await["epoch"].as_u64() < Some(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = Instance::start(&database);
    let before = job_view(&client, &second.base, &id).await["epoch"]
        .as_u64()
        .unwrap();
    let killed = Instant::now();
    drop(first);
    loop {
        let epoch = job_view(&client, &second.base, &id).await["epoch"].as_u64();
        if epoch > Some(before + 1) {
            return killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (jobs, predict_for) = if quick {
        (8, Duration::from_secs(1))
    } else {
        (40, Duration::from_secs(5))
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = postgres_server();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let reference = {
            let instances = vec![Instance::start(&sqlite)];
            throughput(&instances, jobs, predict_for).await
        };
        println!(
            "{:<16} {:>12} {:>14} {:>10} {:>10}",
            "configuration", "jobs/min", "predicts/s", "× jobs", "× predicts"
        );
        let row = |name: &str, f: &Figures| {
            println!(
                "{name:<16} {:>12.1} {:>14.0} {:>10.2} {:>10.2}",
                f.jobs_per_minute,
                f.predicts_per_second,
                f.jobs_per_minute / reference.jobs_per_minute,
                f.predicts_per_second / reference.predicts_per_second
            )
        };
        row("SQLite ×1", &reference);
        for n in [1, 2, 4] {
            let database = fresh_database(&server, &format!("nnserve_bench_{n}")).await;
            let instances: Vec<Instance> = (0..n).map(|_| Instance::start(&database)).collect();
            let figures = throughput(&instances, jobs, predict_for).await;
            row(&format!("PostgreSQL ×{n}"), &figures);
            if n == 2 {
                let latency = claim_latency(&instances, if quick { 4 } else { 20 }).await;
                println!("claim latency, submit to running (median, 2 instances): {latency:?}");
            }
        }
        println!(
            "failover, SIGKILL to the next epoch elsewhere (lease 2 s, heartbeat 0.5 s): {:?}",
            failover(&server).await
        );
    });
}
