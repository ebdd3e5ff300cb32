//! Starting the real service on a random port with its own temporary SQLite file.

use std::path::PathBuf;
use std::sync::Arc;

use nnserve::config::Config;
use nnserve::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// A configuration change on top of the defaults.
pub type Tweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Options {
    pub workers: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub dataset_memory_bytes: Option<usize>,
    pub tweak: Option<Tweak>,
}

impl Options {
    pub fn with(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        Options {
            tweak: Some(Arc::new(tweak)),
            ..Options::default()
        }
    }
}

pub async fn spawn_with(options: Options) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    start(dir, options).await
}

async fn start(dir: Arc<TempDir>, options: Options) -> TestApp {
    let db_path = dir.path().join("test.db");
    let mut config = Config::new(format!("sqlite://{}", db_path.display()));
    config.workers = options.workers;
    if let Some(max) = options.max_body_bytes {
        config.max_body_bytes = max;
    }
    if let Some(budget) = options.dataset_memory_bytes {
        config.dataset_memory_bytes = budget;
    }
    if let Some(tweak) = &options.tweak {
        tweak(&mut config);
    }
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            stopped.await.ok();
        })
        .await
        .expect("server runs");
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        db_path,
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// A client of a server running elsewhere (a child process) on `db_path` in `dir`.
    pub fn remote(address: String, dir: Arc<TempDir>, db_path: PathBuf) -> TestApp {
        TestApp {
            address,
            client: reqwest::Client::new(),
            db_path,
            dir,
            stop: None,
            server: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops this server and starts a new one on the same database file.
    pub async fn restart(self, options: Options) -> TestApp {
        self.stop().await.start(options).await
    }

    /// Stops the server gracefully: running jobs go back to the queue.
    pub async fn stop(mut self) -> StoppedApp {
        self.shutdown().await;
        StoppedApp {
            dir: self.dir.clone(),
            db_path: self.db_path.clone(),
        }
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server stops");
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("JSON body")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_csv(&self, path: &str, csv: impl Into<String>) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "text/csv")
            .body(csv.into())
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Uploads a CSV that must be accepted; returns the dataset document.
    pub async fn upload(&self, csv: impl Into<String>, query: &str) -> Value {
        let response = self.post_csv(&format!("/datasets{query}"), csv).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Rows stored in the chunk table, straight from the database file.
    pub async fn stored_chunk_rows(&self) -> i64 {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.db_path);
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open db");
        let rows: Option<i64> = sqlx::query_scalar("SELECT SUM(rows) FROM dataset_chunks")
            .fetch_one(&pool)
            .await
            .expect("query");
        pool.close().await;
        rows.unwrap_or(0)
    }
}

/// Asserts an RFC 7807 answer with `status` whose detail contains every one of `needles`.
pub async fn assert_problem(response: Response, status: StatusCode, needles: &[&str]) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status.as_u16());
    let detail = body["detail"].as_str().expect("detail");
    for needle in needles {
        assert!(
            detail.contains(needle),
            "{detail:?} should mention {needle:?}"
        );
    }
    body
}

/// Deterministic pseudo-random numbers in [-1, 1) (xorshift64*), so test data needs no crate.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Rows of four features with label `x0 + 2·x1 − x2 > 0` (x3 is noise the net must ignore).
pub fn linear_rows(rows: usize, seed: u64) -> Vec<([f64; 4], u8)> {
    let mut rng = Lcg::new(seed);
    (0..rows)
        .map(|_| {
            // Rounded as the CSV writes them, so JSON and CSV carry the same numbers.
            let mut value = || (rng.next() * 1e5).round() / 1e5;
            let x = [value(), value(), value(), value()];
            (x, u8::from(x[0] + 2.0 * x[1] - x[2] > 0.0))
        })
        .collect()
}

pub fn to_csv(rows: &[([f64; 4], u8)]) -> String {
    let mut csv = String::from("x0,x1,x2,x3,label\n");
    for (x, label) in rows {
        csv.push_str(&format!(
            "{:.5},{:.5},{:.5},{:.5},{label}\n",
            x[0], x[1], x[2], x[3]
        ));
    }
    csv
}

/// The lesson's network for the linear rule: two hidden layers and dropout.
pub fn binary_spec(dataset_id: &str, epochs: usize) -> Value {
    serde_json::json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "normalization"},
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "dropout", "rate": 0.1},
            {"type": "dense", "units": 8, "activation": "tanh"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "metrics": ["accuracy"],
        "epochs": epochs,
        "batch_size": 32,
        "validation_split": 0.2,
        "seed": 3
    })
}

impl TestApp {
    /// Submits a job that must be accepted; returns its id.
    pub async fn submit(&self, spec: &Value) -> String {
        let response = self.post_json("/jobs", spec).await;
        let status = response.status();
        let location = response.headers().get("location").cloned();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        assert_eq!(location.unwrap().to_str().unwrap(), format!("/jobs/{id}"));
        assert_eq!(body["status"], "queued");
        id
    }

    /// Polls the job until `done` accepts it (at most a minute).
    pub async fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let job = self.get_json(&format!("/jobs/{id}")).await;
            if done(&job) {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job never got there: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_job(id, |job| {
            !matches!(job["status"].as_str(), Some("queued" | "running"))
        })
        .await
    }

    /// The epoch numbers of a job's metrics, in the order served.
    pub async fn epoch_numbers(&self, id: &str) -> Vec<u64> {
        let metrics = self.get_json(&format!("/jobs/{id}/metrics")).await;
        metrics["epochs"]
            .as_array()
            .expect("epochs")
            .iter()
            .map(|r| r["epoch"].as_u64().expect("an epoch number"))
            .collect()
    }

    /// Uploads the linear-rule dataset and returns its id.
    pub async fn linear_dataset(&self, rows: usize, seed: u64) -> String {
        let created = self
            .upload(to_csv(&linear_rows(rows, seed)), "?name=linear")
            .await;
        created["id"].as_str().unwrap().to_owned()
    }
}

/// The database of a stopped server, to be started again.
pub struct StoppedApp {
    dir: Arc<TempDir>,
    db_path: PathBuf,
}

impl StoppedApp {
    pub async fn start(self, options: Options) -> TestApp {
        start(self.dir, options).await
    }

    /// A job's status and finished epochs, read from the database file.
    pub async fn job_progress(&self, id: &str) -> (String, i64) {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&self.db_path);
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open db");
        let row = sqlx::query_as("SELECT status, epochs_done FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("job row");
        pool.close().await;
        row
    }

    /// Runs a statement on the database file directly (to simulate a crash's leftovers).
    pub async fn execute_sql(&self, sql: &str) {
        execute_sql(&self.db_path, sql).await;
    }
}

/// Runs a statement on a database file directly, beside any server using it.
pub async fn execute_sql(db_path: &std::path::Path, sql: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db_path);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("open db");
    sqlx::query(sql).execute(&pool).await.expect("statement");
    pool.close().await;
}

pub const PLANS: [&str; 3] = ["basic", "pro", "gold"];

/// A churn table with a text category, missing numbers, a missing marker, an identifier and
/// a text label: `churn` is "yes" exactly when the plan is "pro" or the tenure is missing
/// (10% of rows); the tenure's value, the region and the id carry no signal. A trusted
/// network reaches (nearly) every row.
pub fn churn_table(rows: usize, seed: u64) -> String {
    let mut lcg = Lcg::new(seed);
    let mut uniform = move || (lcg.next() + 1.0) / 2.0;
    let mut csv = String::from("customer,plan,tenure,region,churn\n");
    for i in 0..rows {
        let plan = PLANS[(uniform() * 3.0) as usize % 3];
        let missing = uniform() < 0.1;
        let tenure = if missing {
            String::new()
        } else {
            format!("{:.1}", uniform() * 70.0)
        };
        let region = if uniform() < 0.5 { "north" } else { "N/A" };
        let churn = if plan == "pro" || missing {
            "yes"
        } else {
            "no"
        };
        csv.push_str(&format!("c{i:05},{plan},{tenure},{region},{churn}\n"));
    }
    csv
}

pub fn churn_spec(dataset_id: &str) -> Value {
    json!({
        "dataset_id": dataset_id,
        "model": {"layers": [
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}
        ]},
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.02},
        "metrics": ["accuracy"],
        "epochs": 40,
        "batch_size": 64,
        "validation_split": 0.2,
        "seed": 3
    })
}
