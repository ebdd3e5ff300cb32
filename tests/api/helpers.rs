//! Starting the real service on a random port with its own temporary SQLite file.

use std::path::PathBuf;
use std::sync::Arc;

use nnserve::config::Config;
use nnserve::http::{self, AppState};
use nnserve::store::Store;
use reqwest::{Response, StatusCode};
use serde_json::Value;
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
    store: Store,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

#[derive(Clone, Default)]
pub struct Options {
    pub workers: Option<usize>,
    pub max_body_bytes: Option<usize>,
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
    let store = Store::connect(&config.database_url)
        .await
        .expect("database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        http::serve(listener, state, async {
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
        store,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops this server and starts a new one on the same database file.
    pub async fn restart(mut self, options: Options) -> TestApp {
        self.shutdown().await;
        start(self.dir.clone(), options).await
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server stops");
        }
        self.store.close().await;
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
