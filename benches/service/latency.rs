//! Request latency and throughput of predict and of the floor, measured the same way: keep-alive
//! connections, one request in flight per connection. The two are measured in alternating
//! rounds, so that the machine's drift over a run (its speed moved up to 2× within an hour)
//! weighs on both alike and their ratio means something.

use crate::client::Conn;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub warmup: usize,
    pub sequential: usize,
    pub concurrent_requests: usize,
    pub concurrent_seconds: f64,
    pub connections: usize,
    pub batch_requests: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests_per_s: f64,
    pub batch_rows_per_s: f64,
}

pub struct Target<'a> {
    pub addr: SocketAddr,
    pub path: &'a str,
    pub single: Bytes,
    pub batch: Bytes,
    pub batch_rows: usize,
}

async fn post(conn: &mut Conn, path: &str, body: &Bytes) -> Result<(), String> {
    let r = conn
        .request(Method::POST, path, Some("application/json"), body.clone())
        .await?;
    if r.status != StatusCode::OK {
        return Err(format!("POST {path}: {} {}", r.status, r.text()));
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Timed sequential requests on one connection each round, after `warmup` untimed ones.
async fn sequential(
    t: &Target<'_>,
    body: &Bytes,
    warmup: usize,
    n: usize,
) -> Result<Vec<f64>, String> {
    let mut conn = Conn::open(t.addr).await?;
    for _ in 0..warmup {
        post(&mut conn, t.path, body).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        post(&mut conn, t.path, body).await?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// `connections` clients sending single-row requests back to back until `requests` are
/// done or `seconds` have passed, whichever is first.
async fn concurrent(t: &Target<'_>, b: &Budget) -> Result<f64, String> {
    let mut conns = Vec::with_capacity(b.connections);
    for _ in 0..b.connections {
        conns.push(Conn::open(t.addr).await?);
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(b.concurrent_seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (issued, body, path, limit) = (
            issued.clone(),
            t.single.clone(),
            t.path.to_owned(),
            b.concurrent_requests,
        );
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while issued.fetch_add(1, Ordering::Relaxed) < limit && Instant::now() < deadline {
                post(&mut conn, &path, &body).await?;
                done += 1;
            }
            Ok::<usize, String>(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.map_err(|e| e.to_string())??;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Rounds each phase is cut into, alternating between the targets.
const ROUNDS: usize = 5;

/// Figures for each target, measured in alternating rounds of every phase.
pub async fn measure(targets: &[&Target<'_>], b: &Budget) -> Result<Vec<Figures>, String> {
    let mut singles = vec![Vec::new(); targets.len()];
    let mut batches = vec![Vec::new(); targets.len()];
    let mut rates = vec![Vec::new(); targets.len()];
    let round = Budget {
        sequential: b.sequential.div_ceil(ROUNDS),
        concurrent_requests: b.concurrent_requests.div_ceil(ROUNDS),
        concurrent_seconds: b.concurrent_seconds / ROUNDS as f64,
        batch_requests: b.batch_requests.div_ceil(ROUNDS),
        ..*b
    };
    for r in 0..ROUNDS {
        let warmup = if r == 0 { b.warmup } else { b.warmup / ROUNDS };
        for (i, t) in targets.iter().enumerate() {
            singles[i].extend(sequential(t, &t.single, warmup, round.sequential).await?);
        }
        for (i, t) in targets.iter().enumerate() {
            rates[i].push(concurrent(t, &round).await?);
        }
        for (i, t) in targets.iter().enumerate() {
            batches[i].extend(sequential(t, &t.batch, 1, round.batch_requests).await?);
        }
    }
    Ok(targets
        .iter()
        .zip(singles.iter_mut().zip(batches.iter_mut().zip(&rates)))
        .map(|(t, (times, (batch, rates)))| {
            times.sort_by(f64::total_cmp);
            batch.sort_by(f64::total_cmp);
            Figures {
                p50_ms: percentile(times, 0.5) * 1e3,
                p99_ms: percentile(times, 0.99) * 1e3,
                requests_per_s: rates.iter().sum::<f64>() / rates.len() as f64,
                batch_rows_per_s: t.batch_rows as f64 / percentile(batch, 0.5),
            }
        })
        .collect())
}
