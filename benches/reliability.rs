//! `cargo bench --bench reliability`: the figures of docs/reliability.md, through the
//! real release binary over HTTP.
//!
//! 1. Memory: the admission estimate of a job beside the server's measured peak RSS
//!    (VmHWM less the RSS before the job), for W1's network in memory and streamed.
//! 2. Load: predicts from 64 connections, first alone (the reference run), then while
//!    two jobs train; requests, p50/p99 and errors of both, and their ratios.
//!
//! `-- --quick` shrinks both for a smoke run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(db: &std::path::Path, args: &[&str]) -> Server {
        let database = format!("sqlite://{}", db.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnserve"))
            .args(["--addr", "127.0.0.1:0", "--database-url", &database])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,sqlx=warn")
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
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// (VmRSS, VmHWM) in bytes.
    fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
                * 1024
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let r = client.post(url).json(&body).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn upload(client: &reqwest::Client, base: &str, csv: String) -> String {
    let r = client
        .post(format!("{base}/datasets?target=label"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["id"].as_str().expect("a dataset").to_owned()
}

async fn wait(client: &reqwest::Client, base: &str, job: &str, mut each: impl FnMut()) -> Value {
    loop {
        let job: Value = client
            .get(format!("{base}/jobs/{job}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        each();
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            assert_eq!(job["status"], "succeeded", "{job}");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deterministic rows: `features` values in [-1, 1), label the argmax of the first ten.
fn blobs(rows: usize, features: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut csv = (0..features).map(|i| format!("x{i},")).collect::<String>() + "label\n";
    for _ in 0..rows {
        let x: Vec<f64> = (0..features).map(|_| next()).collect();
        let label = (0..10).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap();
        for v in &x {
            csv.push_str(&format!("{v:.4},"));
        }
        csv.push_str(&format!("{label}\n"));
    }
    csv
}

fn w1_spec(dataset: &str, epochs: usize) -> Value {
    json!({
        "dataset_id": dataset,
        "model": {"layers": [
            {"type": "dense", "units": 256, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 128, "activation": "relu"},
            {"type": "dense", "units": 10, "activation": "softmax"}]},
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "metrics": ["accuracy"],
        "epochs": epochs, "batch_size": 128, "validation_split": 0.1, "seed": 1
    })
}

const MIB: f64 = (1 << 20) as f64;

async fn memory(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let client = reqwest::Client::new();
    let rows = if quick { 2000 } else { 20_000 };
    let dataset = {
        let server = Server::start(&db, &[]);
        upload(&client, &server.base, blobs(rows, 784)).await
    };
    println!(
        "memory: W1's network (784 → 256 → dropout → 128 → 10, Adam, batch 128) on {rows} rows; \
         streamed with --dataset-memory-bytes {}",
        if quick { "1 MiB" } else { "16 MiB" }
    );
    println!(
        "| run | estimate MiB | measured peak MiB (VmHWM − RSS before) | measured / estimate |"
    );
    println!("|---|---|---|---|");
    let budget = if quick { "1048576" } else { "16777216" };
    let warm_up = {
        let server = Server::start(&db, &[]);
        upload(&client, &server.base, blobs(50, 784)).await
    };
    for (name, args) in [
        ("in memory", vec![]),
        ("streamed", vec!["--dataset-memory-bytes", budget]),
    ] {
        // A fresh process, so its VmHWM is the job's peak and not the upload's; a first
        // small job opens the database connections and starts the threads a job uses,
        // so that what is measured next is the job's own memory.
        let server = Server::start(&db, &args);
        let first = post(
            &client,
            format!("{}/jobs", server.base),
            w1_spec(&warm_up, 1),
        )
        .await;
        wait(&client, &server.base, first["id"].as_str().unwrap(), || {}).await;
        let (before, _) = server.rss();
        let job = post(
            &client,
            format!("{}/jobs", server.base),
            w1_spec(&dataset, 2),
        )
        .await;
        let id = job["id"].as_str().unwrap().to_owned();
        let mut peak = 0;
        let done = wait(&client, &server.base, &id, || {
            peak = peak.max(server.rss().1)
        })
        .await;
        let estimate = done["estimated_peak_bytes"].as_u64().unwrap() as f64;
        let measured = peak.saturating_sub(before) as f64;
        assert_eq!(
            done["data_path"],
            if args.is_empty() {
                "memory"
            } else {
                "streamed"
            }
        );
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} |",
            estimate / MIB,
            measured / MIB,
            measured / estimate
        );
    }
}

struct Load {
    requests: usize,
    errors: usize,
    p50: Duration,
    p99: Duration,
}

async fn predict_load(base: &str, model: &str, connections: usize, seconds: u64) -> Load {
    let url = format!("{base}/models/{model}/predict");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let body = json!({"instances": [[0.1, -0.2, 0.3, 0.05]]});
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let started = Instant::now();
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(started.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Load {
        requests: all.len() + errors,
        errors,
        p50: at(0.5),
        p99: at(0.99),
    }
}

async fn load(quick: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("load.db"), &["--workers", "2"]);
    let client = reqwest::Client::new();
    let base = &server.base;
    let small = {
        let mut csv = String::from("a,b,c,d,label\n");
        for i in 0..2000 {
            let x = (i as f64 * 0.37).sin();
            let y = (i as f64 * 0.11).cos();
            csv.push_str(&format!(
                "{x:.4},{y:.4},{:.4},{:.4},{}\n",
                x * y,
                x - y,
                u8::from(x + y > 0.0)
            ));
        }
        upload(&client, base, csv).await
    };
    let spec = json!({"dataset_id": small, "loss": "binary_crossentropy",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "epochs": 2, "batch_size": 32});
    let job = post(&client, format!("{base}/jobs"), spec).await;
    let done = wait(&client, base, job["id"].as_str().unwrap(), || {}).await;
    let model = done["model_id"].as_str().unwrap().to_owned();
    let seconds = if quick { 3 } else { 15 };
    let reference = predict_load(base, &model, 64, seconds).await;
    let wide = upload(&client, base, blobs(if quick { 2000 } else { 20_000 }, 784)).await;
    let mut training = Vec::new();
    for _ in 0..2 {
        let job = post(&client, format!("{base}/jobs"), w1_spec(&wide, 1000)).await;
        training.push(job["id"].as_str().unwrap().to_owned());
    }
    // Both running before the clock starts.
    loop {
        let page: Value = client
            .get(format!("{base}/jobs?status=running"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loaded = predict_load(base, &model, 64, seconds).await;
    for id in &training {
        client
            .post(format!("{base}/jobs/{id}/cancel"))
            .send()
            .await
            .unwrap();
    }
    println!("\nload: 1-row predicts from 64 connections for {seconds} s each");
    println!("| run | requests | errors | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, l) in [
        ("alone (reference)", &reference),
        ("while two W1 jobs train", &loaded),
    ] {
        println!(
            "| {name} | {} | {} | {:.2} | {:.2} |",
            l.requests,
            l.errors,
            l.p50.as_secs_f64() * 1e3,
            l.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "ratios, training / reference: requests {:.2}, p50 {:.2}, p99 {:.2}",
        loaded.requests as f64 / reference.requests.max(1) as f64,
        loaded.p50.as_secs_f64() / reference.p50.as_secs_f64().max(1e-9),
        loaded.p99.as_secs_f64() / reference.p99.as_secs_f64().max(1e-9)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        memory(quick).await;
        load(quick).await;
    });
}
