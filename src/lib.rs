//! nnserve: an HTTP service that trains dense neural networks and serves their predictions.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// Command-line and environment configuration.
pub mod config;
/// The HTTP API (axum): one module per resource.
pub mod http;
/// Parsing uploaded CSV/JSON into stored f32 row chunks.
pub mod ingest;
/// The training scheduler: persisted FIFO queue, bounded pool of blocking threads.
pub mod jobs;
pub mod nn;
/// Trained models exported as ONNX, for runtimes other than nnserve.
pub mod onnx;
/// The hand-written parsers of request text: numbers, JSON predict bodies, CSV fields.
pub mod parse;
/// Trained models cached in memory for serving.
pub mod serving;
/// The service assembled from its configuration (what `main` and the tests start).
pub mod startup;
/// The SQLite repository: all SQL lives here.
pub mod store;
/// Logging set-up, and blocking work that keeps its caller's span.
pub mod telemetry;
