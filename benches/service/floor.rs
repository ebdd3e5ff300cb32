//! The HTTP floor: an in-process axum server whose one route parses the predict request
//! exactly as a handler would (`{"instances": [[...]]}` into `Vec<Vec<f32>>`) and answers with
//! a response of predict's shape, so predict's latency can be read as a multiple of it.

use axum::{extract::DefaultBodyLimit, routing::post, Json, Router};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

pub const PATH: &str = "/echo";

#[derive(Deserialize)]
struct Instances {
    instances: Vec<Vec<f32>>,
}

#[derive(Serialize)]
struct Predictions {
    predictions: Vec<Vec<f32>>,
    classes: Vec<usize>,
}

/// Echoes the first `width` values of each row (predict's output width) and their argmax,
/// so that the floor serialises as much as predict does and no more.
async fn echo(width: usize, Json(body): Json<Instances>) -> Json<Predictions> {
    let predictions: Vec<Vec<f32>> = body
        .instances
        .into_iter()
        .map(|mut row| {
            row.truncate(width);
            row
        })
        .collect();
    let classes = predictions
        .iter()
        .map(|r| (0..r.len()).fold(0, |best, i| if r[i] > r[best] { i } else { best }))
        .collect();
    Json(Predictions {
        predictions,
        classes,
    })
}

/// Serves on its own multi-threaded runtime (as the real server does) until the process ends.
pub fn start(width: usize) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("floor")
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("floor listener");
            // The real server's --max-body-bytes default; axum's own 2 MB would reject 1000 rows.
            let app = Router::new()
                .route(PATH, post(move |body| echo(width, body)))
                .layer(DefaultBodyLimit::max(1 << 30));
            axum::serve(listener, app).await.expect("floor server");
        })
    });
    Ok(addr)
}
