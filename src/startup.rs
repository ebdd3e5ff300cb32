//! The service assembled from its configuration: database, scheduler, model cache and
//! HTTP server. `main` and the tests build it the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{cores, Config};
use crate::http::{self, AppState, Keys};
use crate::jobs::{Limits, Scheduler};
use crate::serving::ModelCache;
use crate::store::{Store, StoreError};

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening database {url}: {source}")]
    Database { url: String, source: StoreError },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to serve {addr} without an API key: set --api-key (or NNSERVE_API_KEYS), \
         bind a loopback address, or pass --allow-unauthenticated if a gateway in front \
         authenticates"
    )]
    Unauthenticated { addr: SocketAddr },
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens (and migrates) the database, re-queues interrupted jobs, binds the address.
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        // Read the machine's memory once, not per request.
        config.max_job_memory_bytes = Some(config.job_memory_limit());
        let keys = Keys::new(&config.api_keys, &config.predict_api_keys);
        if keys.is_empty() && !config.addr.ip().is_loopback() && !config.allow_unauthenticated {
            return Err(StartError::Unauthenticated { addr: config.addr });
        }
        let store = Store::connect(&config.database_url, config.db_connections)
            .await
            .map_err(|source| StartError::Database {
                url: config.database_url.clone(),
                source,
            })?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let models = ModelCache::new(config.model_cache_bytes);
        let limits = Limits {
            workers: config.worker_count(),
            cores: cores(),
            dataset_memory_bytes: config.dataset_memory_bytes,
            dataset_chunk_bytes: config.dataset_chunk_bytes,
            max_queued_jobs: config.max_queued_jobs,
            max_job_memory_bytes: config.job_memory_limit(),
        };
        tracing::info!(
            max_job_memory_bytes = limits.max_job_memory_bytes,
            max_queued_jobs = limits.max_queued_jobs,
            model_cache_bytes = config.model_cache_bytes,
            "limits"
        );
        let scheduler = Scheduler::start(store.clone(), models.clone(), limits)
            .await
            .map_err(|source| StartError::Database {
                url: config.database_url.clone(),
                source,
            })?;
        if keys.is_empty() {
            tracing::warn!(
                "no API key is set: every client that reaches the address has full access"
            );
        }
        Ok(Self {
            listener,
            state: AppState {
                store,
                config: Arc::new(config),
                scheduler,
                models,
            },
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops the running jobs at a batch
    /// boundary (they go back to the queue with their checkpoints) and closes the
    /// database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self { listener, state } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            database = %state.config.database_url,
            "listening"
        );
        let (store, scheduler) = (state.store.clone(), state.scheduler.clone());
        let served = http::serve(listener, state, shutdown).await;
        scheduler.shutdown().await;
        store.close().await;
        served
    }
}
