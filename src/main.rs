use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use nnserve::config::{cores, Command, Config};
use nnserve::http::{self, AppState};
use nnserve::jobs::Scheduler;
use nnserve::models::ModelCache;
use nnserve::store::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(Command::Openapi) = config.command {
        print!("{}", http::openapi_json());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();

    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, database = %config.database_url, "listening");
    let models = ModelCache::default();
    let workers = config.worker_count();
    let scheduler = Scheduler::start(
        store.clone(),
        models.clone(),
        workers,
        cores(),
        config.dataset_memory_bytes,
    )
    .await?;
    let state = AppState {
        store: store.clone(),
        config: config.into(),
        scheduler: scheduler.clone(),
        models,
    };
    http::serve(listener, state, shutdown_signal()).await?;
    // Running jobs stop within a batch and go back to the queue with their checkpoints.
    scheduler.shutdown().await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
