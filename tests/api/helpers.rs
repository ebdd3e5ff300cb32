//! Starting the real service on a random port with its own temporary SQLite file, or, when
//! `NNSERVE_TEST_POSTGRES` names a PostgreSQL server (`.ci/postgres` starts one), with a
//! database of its own on that server: the suite runs unchanged on either backend.

use std::path::{Path, PathBuf};
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
    pub db: TestDb,
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

/// The database of a test's server, named by the test's temporary directory, so a server
/// started again on the same directory finds the same data.
#[derive(Clone, Debug)]
pub enum TestDb {
    Sqlite(PathBuf),
    Postgres(String),
}

impl TestDb {
    /// The database for `dir`, created (empty) on PostgreSQL the first time.
    pub fn of(dir: &Path) -> TestDb {
        let Some(server) = std::env::var("NNSERVE_TEST_POSTGRES")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            return TestDb::Sqlite(dir.join("test.db"));
        };
        let name = {
            use std::hash::{Hash, Hasher};
            // DefaultHasher::new has fixed keys: the same directory gives the same name.
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            dir.hash(&mut hasher);
            format!("nnserve_test_{:016x}", hasher.finish())
        };
        let base = server.rsplit_once('/').map_or(&*server, |(base, _)| base);
        let url = format!("{base}/{name}");
        // On a thread of its own: callers are both async tests and plain functions.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let admin = sqlx::PgPool::connect(&server)
                        .await
                        .expect("the PostgreSQL server of NNSERVE_TEST_POSTGRES answers");
                    let exists: Option<i32> =
                        sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                            .bind(&name)
                            .fetch_optional(&admin)
                            .await
                            .expect("pg_database");
                    if exists.is_none() {
                        sqlx::query(&format!("CREATE DATABASE {name}"))
                            .execute(&admin)
                            .await
                            .expect("CREATE DATABASE");
                    }
                    admin.close().await;
                })
        })
        .join()
        .expect("database created");
        TestDb::Postgres(url)
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(path) => format!("sqlite://{}", path.display()),
            TestDb::Postgres(url) => url.clone(),
        }
    }

    /// Runs a statement directly, beside any server using the database.
    pub async fn execute(&self, sql: &str) {
        match self {
            TestDb::Sqlite(path) => {
                let pool = self.sqlite(path).await;
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
            TestDb::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("open db");
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
        }
    }

    /// The first column of the first row of `sql` (a BIGINT), with `$1`… bound to `binds`.
    pub async fn number(&self, sql: &str, binds: &[&str]) -> Option<i64> {
        match self {
            TestDb::Sqlite(path) => {
                let pool = self.sqlite(path).await;
                let mut query = sqlx::query_scalar(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let n = query.fetch_optional(&pool).await.expect("query");
                pool.close().await;
                n.flatten()
            }
            TestDb::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("open db");
                let mut query = sqlx::query_scalar(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                let n = query.fetch_optional(&pool).await.expect("query");
                pool.close().await;
                n.flatten()
            }
        }
    }

    /// A job's status and finished epochs.
    pub async fn job_progress(&self, id: &str) -> (String, i64) {
        let sql = "SELECT status, epochs_done FROM jobs WHERE id = $1";
        match self {
            TestDb::Sqlite(path) => {
                let pool = self.sqlite(path).await;
                let row = sqlx::query_as(sql).bind(id).fetch_one(&pool).await;
                pool.close().await;
                row.expect("job row")
            }
            TestDb::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("open db");
                let row = sqlx::query_as(sql).bind(id).fetch_one(&pool).await;
                pool.close().await;
                row.expect("job row")
            }
        }
    }

    /// SQLite's `PRAGMA integrity_check` of a file no process has open; on PostgreSQL,
    /// whether every table reads whole (the server keeps its own files consistent).
    pub async fn integrity(&self) -> String {
        match self {
            TestDb::Sqlite(path) => {
                let pool = self.sqlite(path).await;
                let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_one(&pool)
                    .await
                    .expect("integrity_check");
                pool.close().await;
                verdict
            }
            TestDb::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("open db");
                for table in ["datasets", "dataset_chunks", "jobs", "job_epochs", "models"] {
                    sqlx::query(&format!("SELECT * FROM {table}"))
                        .fetch_all(&pool)
                        .await
                        .expect("the table reads");
                }
                pool.close().await;
                "ok".into()
            }
        }
    }

    async fn sqlite(&self, path: &Path) -> sqlx::SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open db")
    }
}

async fn start(dir: Arc<TempDir>, options: Options) -> TestApp {
    let db = TestDb::of(dir.path());
    let mut config = Config::new(db.url());
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
        db,
        dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// A client of a server running elsewhere (a child process) on `db` in `dir`.
    pub fn remote(address: String, dir: Arc<TempDir>, db: TestDb) -> TestApp {
        TestApp {
            address,
            client: reqwest::Client::new(),
            db,
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
            db: self.db.clone(),
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

    /// Rows stored in the chunk table, straight from the database.
    pub async fn stored_chunk_rows(&self) -> i64 {
        let sql = "SELECT CAST(SUM(rows) AS BIGINT) FROM dataset_chunks";
        self.db.number(sql, &[]).await.unwrap_or(0)
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
    pub db: TestDb,
}

impl StoppedApp {
    pub async fn start(self, options: Options) -> TestApp {
        start(self.dir, options).await
    }

    /// A job's status and finished epochs, read from the database.
    pub async fn job_progress(&self, id: &str) -> (String, i64) {
        self.db.job_progress(id).await
    }

    /// Runs a statement on the database directly (to simulate a crash's leftovers).
    pub async fn execute_sql(&self, sql: &str) {
        self.db.execute(sql).await;
    }
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

/// The test venv's interpreter (`.ci/test-python`, or `$NNSERVE_TEST_PYTHON`) when it can
/// import `module`; None, after saying so, when it cannot, outside CI. In CI the tests must
/// run, so a missing module fails them.
pub fn test_python(module: &str) -> Option<PathBuf> {
    let path = std::env::var_os("NNSERVE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")
        });
    let imports = std::process::Command::new(&path)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if imports {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{module} missing in {}: run .ci/test-python",
        path.display()
    );
    eprintln!("skipped: {module} missing in the test venv, run .ci/test-python");
    None
}
