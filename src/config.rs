//! Command-line and environment configuration.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

/// nnserve: train dense neural networks over HTTP and serve their predictions.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "NNSERVE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// The database: `sqlite:PATH` or a plain file path (embedded SQLite, created if
    /// missing), or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (an existing
    /// PostgreSQL database, which several instances may share). Migrated on start.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:nnserve.db")]
    pub database_url: String,

    /// Connections this instance keeps open to PostgreSQL (SQLite uses its own fixed pool).
    #[arg(long, env = "NNSERVE_DB_CONNECTIONS", default_value_t = crate::store::DEFAULT_PG_CONNECTIONS)]
    pub db_connections: u32,

    /// Training jobs that run at once (default: the number of CPU cores). With 0 the
    /// service accepts and queues jobs but runs none, e.g. while draining a host.
    #[arg(long, env = "NNSERVE_WORKERS")]
    pub workers: Option<usize>,

    /// Largest request body accepted, in bytes (dataset uploads included).
    #[arg(long, env = "NNSERVE_MAX_BODY_BYTES", default_value_t = 1 << 30)]
    pub max_body_bytes: usize,

    /// Largest dataset a job loads into memory, in bytes of f32 rows (4 per value). A job
    /// on a larger dataset streams mini-batches from the database, holding about this much
    /// of it at a time (shuffle buffer and read-ahead).
    #[arg(long, env = "NNSERVE_DATASET_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub dataset_memory_bytes: usize,

    /// Largest estimated peak memory of one training job or one predict request, in
    /// bytes; larger ones are refused with 422 before anything is allocated. Default:
    /// three quarters of the machine's memory shared among the workers.
    #[arg(long, env = "NNSERVE_MAX_JOB_MEMORY_BYTES")]
    pub max_job_memory_bytes: Option<u64>,

    /// Jobs that may wait in the queue; beyond it `POST /jobs` answers 429.
    #[arg(long, env = "NNSERVE_MAX_QUEUED_JOBS", default_value_t = 1000)]
    pub max_queued_jobs: u64,

    /// Bytes of trained models kept in memory for serving (least recently used evicted).
    #[arg(long, env = "NNSERVE_MODEL_CACHE_BYTES", default_value_t = 1 << 30)]
    pub model_cache_bytes: u64,

    /// Longest a request may take, body upload included, in seconds (then 408).
    #[arg(long, env = "NNSERVE_REQUEST_TIMEOUT_SECONDS", default_value_t = 300)]
    pub request_timeout_seconds: u64,

    /// Requests served at once; more are refused with 503 and `Retry-After`.
    #[arg(long, env = "NNSERVE_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// A key with full access (repeatable). With any key set, every endpoint but
    /// `/healthz` and `/readyz` requires `Authorization: Bearer <key>`.
    #[arg(
        long = "api-key",
        env = "NNSERVE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A key that may only read models and call predict and evaluate (repeatable).
    #[arg(
        long = "predict-api-key",
        env = "NNSERVE_PREDICT_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub predict_api_keys: Vec<String>,

    /// Serve a non-loopback address without any key (behind a gateway that
    /// authenticates, for instance).
    #[arg(long, env = "NNSERVE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// Uploaded rows are stored in chunks of about this many bytes (as f32); a streamed
    /// job reads one chunk at a time.
    #[arg(long, env = "NNSERVE_DATASET_CHUNK_BYTES", default_value_t = 8 << 20)]
    pub dataset_chunk_bytes: usize,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print the OpenAPI document and exit (`nnserve openapi > openapi/openapi.json`).
    Openapi,
}

impl Config {
    /// Configuration with every default, for embedding the service (tests, tools).
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_connections: crate::store::DEFAULT_PG_CONNECTIONS,
            workers: None,
            max_body_bytes: 1 << 30,
            dataset_memory_bytes: 1 << 30,
            max_job_memory_bytes: None,
            max_queued_jobs: 1000,
            model_cache_bytes: 1 << 30,
            request_timeout_seconds: 300,
            max_concurrent_requests: 512,
            api_keys: Vec::new(),
            predict_api_keys: Vec::new(),
            allow_unauthenticated: false,
            dataset_chunk_bytes: 8 << 20,
            command: None,
        }
    }

    /// The per-job memory limit after applying the default.
    pub fn job_memory_limit(&self) -> u64 {
        self.max_job_memory_bytes.unwrap_or_else(|| {
            let workers = self.worker_count().max(1) as u64;
            machine_memory_bytes() / 4 * 3 / workers
        })
    }

    /// Concurrent training jobs after applying the default.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(cores)
    }
}

/// The CPU cores the running jobs and large predicts share. Read once: on Linux the
/// standard library reads cgroup files to answer, tens of microseconds a call.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Physical memory (`MemTotal` of `/proc/meminfo`); 4 GiB where it cannot be read.
pub fn machine_memory_bytes() -> u64 {
    const FALLBACK: u64 = 4 << 30;
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return FALLBACK;
    };
    text.lines()
        .find_map(|line| {
            let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()
        })
        .map_or(FALLBACK, |kib| kib * 1024)
}
