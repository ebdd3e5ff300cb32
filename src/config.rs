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

    /// SQLite database: `sqlite:PATH` or a plain file path; created and migrated on start.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:nnserve.db")]
    pub database_url: String,

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
            workers: None,
            max_body_bytes: 1 << 30,
            dataset_memory_bytes: 1 << 30,
            command: None,
        }
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
