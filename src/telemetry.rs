//! Logging: the subscriber `main` installs, and blocking work that logs in the span of the
//! request or job that started it.

use tokio::task::JoinHandle;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: `RUST_LOG`'s filter, or info with sqlx at warn when it
/// is unset or invalid.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
}

/// [`tokio::task::spawn_blocking`], with `work` run inside the caller's current span: a
/// blocking thread has no span of its own, so without it what `work` logs would lose the
/// request's or job's fields.
pub fn spawn_blocking_in_span<F, R>(work: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}
