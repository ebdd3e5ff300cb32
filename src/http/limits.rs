//! Request timeouts and the bound on requests served at once: a slow or flooding client
//! gets a problem document, and cannot hold the server.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::Error;

#[derive(Clone)]
pub struct RequestLimits {
    pub timeout: Duration,
    pub slots: Arc<Semaphore>,
    pub max_concurrent: usize,
}

impl RequestLimits {
    pub fn new(timeout: Duration, max_concurrent: usize) -> Self {
        Self {
            timeout,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }
}

/// Probes bypass the bound: an orchestrator must see a busy server as alive.
fn is_probe(request: &Request) -> bool {
    matches!(request.uri().path(), "/healthz" | "/readyz")
}

pub async fn limit(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    if is_probe(&request) {
        return next.run(request).await;
    }
    let Ok(_slot) = limits.slots.clone().try_acquire_owned() else {
        return Error::Overloaded {
            limit: limits.max_concurrent,
        }
        .into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Timeout(limits.timeout.as_secs()).into_response(),
    }
}
