//! The HTTP floor: an in-process axum server whose one route parses the predict request with
//! predict's own parser (`nnserve::parse::instances`) and answers predict's response type,
//! so predict's latency read as a multiple of it is what the model and its serving add.
//! Also the parser's microbenchmark against serde_json on the benchmark's own body.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::{extract::DefaultBodyLimit, routing::post, Json, Router};
use ndarray::{Array2, Axis};
use nnserve::http::{Classes, Predictions, INLINE_BYTES};
use nnserve::parse::instances;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub const PATH: &str = "/echo";

/// The model's input columns, as a served model has them.
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    /// predict's output width.
    outputs: usize,
}

impl Columns {
    fn new(inputs: usize, outputs: usize) -> Columns {
        let names: Vec<String> = (0..inputs).map(|i| format!("f{i}")).collect();
        let index = names.iter().cloned().zip(0..).collect();
        Columns {
            names,
            index,
            outputs,
        }
    }
}

/// Echoes the first `outputs` values of each row and their argmax, so that the floor
/// parses, splits and serialises as predict does, and does no model work.
async fn echo(State(columns): State<Arc<Columns>>, body: Bytes) -> Response {
    let (width, outputs, inline) = (
        columns.names.len(),
        columns.outputs,
        body.len() <= INLINE_BYTES,
    );
    let parse = move || {
        instances::parse_with(&body, &columns.names, &columns.index, |part, _| {
            Array2::from_shape_fn((part.rows, outputs), |(r, c)| part.values[r * width + c])
        })
    };
    // As predict: small bodies on the runtime's thread, large ones on a blocking thread.
    let parts = if inline {
        parse()
    } else {
        tokio::task::spawn_blocking(parse)
            .await
            .expect("the parser does not panic")
    };
    let Ok(parts) = parts else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let predictions = ndarray::concatenate(Axis(0), &views).expect("parts of the same width");
    let classes = predictions
        .rows()
        .into_iter()
        .map(|r| (0..r.len()).fold(0, |best, i| if r[i] > r[best] { i } else { best }))
        .collect();
    Json(Predictions {
        predictions,
        classes: Some(Classes::Indices(classes)),
    })
    .into_response()
}

/// Serves on its own multi-threaded runtime (as the real server does) until the process ends.
pub fn start(inputs: usize, outputs: usize) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("floor")
        .build()
        .map_err(|e| e.to_string())?;
    let columns = Arc::new(Columns::new(inputs, outputs));
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .expect("floor listener")
                .tap_io(|tcp| tcp.set_nodelay(true).expect("TCP_NODELAY")); // as the server
                                                                            // The real server's --max-body-bytes default; axum's own 2 MB would reject 1000 rows.
            let app = Router::new()
                .route(PATH, post(echo))
                .with_state(columns)
                .layer(DefaultBodyLimit::max(1 << 30));
            axum::serve(listener, app).await.expect("floor server");
        })
    });
    Ok(addr)
}

/// Medians of the parser and of serde_json into `Vec<Vec<f32>>` (what the floor and the
/// handler used before), interleaved A, B, A, B … so machine load hits both alike.
pub fn parse_microbench(body: &[u8], inputs: usize, rounds: usize) -> String {
    #[derive(serde::Deserialize)]
    struct Nested {
        instances: Vec<Vec<f32>>,
    }
    let columns = Columns::new(inputs, 1);
    let (mut ours, mut serde) = (Vec::new(), Vec::new());
    let mut numbers = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let parts = instances::parse_with(body, &columns.names, &columns.index, |part, _| {
            part.values.len()
        })
        .unwrap_or_else(|_| panic!("the benchmark body parses"));
        ours.push(start.elapsed().as_secs_f64());
        numbers = parts.iter().sum();
        let start = Instant::now();
        let nested: Nested = serde_json::from_slice(body).expect("the benchmark body parses");
        serde.push(start.elapsed().as_secs_f64());
        assert_eq!(nested.instances.len() * inputs, numbers);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, serde) = (median(&mut ours), median(&mut serde));
    let describe = |name: &str, s: f64| {
        format!(
            "{name}: {:.2} ms, {:.0} MB/s, {:.1} ns/number",
            s * 1e3,
            body.len() as f64 / s / 1e6,
            s * 1e9 / numbers as f64
        )
    };
    format!(
        "parse {} bytes, {numbers} numbers (median of {rounds}, interleaved): {}; {}; {:.1}× faster",
        body.len(),
        describe("instances::parse_with", ours),
        describe("serde_json Vec<Vec<f32>>", serde),
        serde / ours
    )
}
