//! The HTTP API: translates requests into store, ingest and scheduler calls, nothing more.

mod auth;
mod datasets;
pub mod error;
mod extract;
mod health;
mod jobs;
mod limits;
mod models;
mod openapi;
mod page;
mod protocols;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap};
use axum::middleware;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::jobs::Scheduler;
use crate::serving::ModelCache;
use crate::store::Store;

pub use auth::Keys;
pub use models::{Classes, Predictions, INLINE_BYTES};
pub use openapi::openapi_json;

/// Shared by every handler; each field is cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub scheduler: Scheduler,
    pub models: ModelCache,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nnserve",
        description = "Train dense neural networks over HTTP and serve their predictions. \
                       Errors are RFC 7807 application/problem+json."
    ),
    tags(
        (name = "datasets", description = "Upload and manage training data"),
        (name = "jobs", description = "Train networks and follow their progress"),
        (name = "models", description = "Trained models: predict and evaluate"),
        (name = "service", description = "Health and the API document"),
        (name = "protocols", description = "TensorFlow Serving's REST API and the Open \
            Inference Protocol (KServe V2) over the same models; errors are {\"error\": …}"),
    )
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .routes(utoipa_axum::routes!(openapi::openapi_document))
        .merge(datasets::router())
        .merge(jobs::router())
        .merge(models::router())
        .merge(protocols::router())
}

/// The media type of a request body, without parameters, lower-case.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default();
    Some(essence.trim().to_ascii_lowercase())
}

/// The whole application; `main` and the tests both serve this.
pub fn app(state: AppState) -> Router {
    let (router, _) = api().split_for_parts();
    let config = &state.config;
    let keys = auth::Keys::new(&config.api_keys, &config.predict_api_keys);
    let limits = limits::RequestLimits::new(
        Duration::from_secs(config.request_timeout_seconds),
        config.max_concurrent_requests,
    );
    router
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        // Inside the routing, so a predict key's route is known by its pattern.
        .route_layer(middleware::from_fn_with_state(keys, auth::require_key))
        .layer(middleware::from_fn_with_state(limits, limits::limit))
        .layer(
            // One line per request (method, path, status, latency) at debug level: at
            // info, formatting and writing it is a large share of a single-row predict's
            // time (see docs/performance.md). Server errors are still logged at error level.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Request/response pairs: Nagle's algorithm would only hold back a response's last
    // segment until the client acknowledges the previous ones.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set: {e}");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
