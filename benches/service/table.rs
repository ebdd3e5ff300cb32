//! The one table the benchmark prints: figure | nnserve | Keras | PyTorch | ratio | target | verdict.

use crate::anchors::Anchor;
use crate::latency::Figures;
use crate::stream::StreamRun;
use crate::workloads::{JobRun, Upload};

/// Everything one invocation measured; a missing part is `None`.
#[derive(Default)]
pub struct Results {
    pub upload: Option<Upload>,
    pub w1: Option<JobRun>,
    /// W1 again, right after its anchors (the anchors run between the two).
    pub w1_again: Option<JobRun>,
    pub w2: Option<JobRun>,
    pub predict: Option<Figures>,
    pub floor: Option<Figures>,
    pub keras: [Option<Anchor>; 2],
    pub torch: [Option<Anchor>; 2],
    pub stream: Option<StreamRun>,
    pub tables: Option<crate::tables::Tables>,
    /// The machine's fp32 peak (GFLOP/s, all cores) right before and right after W1.
    pub peak: [Option<f64>; 2],
    /// W1's dataset rows (60 000 in the full recipe).
    pub w1_rows: usize,
}

pub struct Row {
    cells: [String; 7],
}

const W1: usize = 0;
const W2: usize = 1;
const WORKLOAD: [&str; 2] = ["mlp784", "tiny4"];

fn num(v: f64) -> String {
    match v.abs() {
        // One decimal, so that 99 960 against a 100k target does not print as "100k".
        a if a >= 10_000.0 => format!("{:.1}k", v / 1e3),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        a if a >= 0.01 => format!("{v:.3}"),
        _ => format!("{v:.4}"),
    }
}

pub fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "—".into())
}

/// An anchor's figure, "(ref)" when it is the README's and not measured now.
fn anchor_cell(a: &Option<Anchor>, w: usize, key: &str, scale: f64) -> (String, Option<f64>) {
    let Some(a) = a else {
        return ("—".into(), None);
    };
    match a.get(WORKLOAD[w], key) {
        Some(v) if a.is_reference() => (format!("{} (ref)", num(v * scale)), Some(v * scale)),
        Some(v) => (num(v * scale), Some(v * scale)),
        None => ("—".into(), None),
    }
}

pub fn verdict(checks: &[Option<bool>]) -> String {
    let known: Vec<bool> = checks.iter().flatten().copied().collect();
    match known.is_empty() {
        true => "—".into(),
        false if known.iter().all(|&ok| ok) => "PASS".into(),
        false => "FAIL".into(),
    }
}

pub fn row(
    figure: &str,
    nnserve: String,
    keras: String,
    torch: String,
    ratio: String,
    target: &str,
    v: String,
) -> Row {
    Row {
        cells: [
            figure.into(),
            nnserve,
            keras,
            torch,
            ratio,
            target.into(),
            v,
        ],
    }
}

/// Seconds-per-epoch rows: the ratio is how many times faster nnserve is than each anchor.
fn speed_row(
    r: &Results,
    w: usize,
    figure: &str,
    ours: Option<f64>,
    key: &str,
    needs: Option<(f64, f64)>,
) -> Row {
    let (kc, k) = anchor_cell(&r.keras[w], w, key, 1.0);
    let (tc, t) = anchor_cell(&r.torch[w], w, key, 1.0);
    let times = |a: Option<f64>| ours.zip(a).map(|(o, a)| a / o);
    let (rk, rt) = (times(k), times(t));
    let ratio = format!("K {}× · T {}×", opt(rk), opt(rt));
    let (target, v) = match needs {
        Some((nk, nt)) => (
            format!("≥{nk}× K, ≥{nt}× T"),
            verdict(&[rk.map(|x| x >= nk), rt.map(|x| x >= nt)]),
        ),
        None => ("—".into(), "—".into()),
    };
    row(figure, opt(ours), kc, tc, ratio, &target, v)
}

/// Multiply-adds per row of W1's forward pass (784→256→128→10) and of the input
/// gradients of its second and third layers (the first layer's is never needed).
const W1_FORWARD_MACS: f64 = (784 * 256 + 256 * 128 + 128 * 10) as f64;
const W1_INPUT_GRAD_MACS: f64 = (256 * 128 + 128 * 10) as f64;

/// GFLOP of matrix products in one W1 epoch: forward, kernel gradients (as many
/// multiply-adds as the forward) and input gradients for the training rows (Keras'
/// split: the last 10% validate), a forward pass for the validation rows.
fn w1_gflop_per_epoch(rows: usize) -> f64 {
    let train = rows - rows / 10;
    let validation = rows / 10;
    let macs = train as f64 * (2.0 * W1_FORWARD_MACS + W1_INPUT_GRAD_MACS)
        + validation as f64 * W1_FORWARD_MACS;
    2.0 * macs / 1e9
}

/// W1's matrix-product rate against the fp32 peak measured beside it (issue 4: ≥ 40%).
fn w1_rate_row(r: &Results, median_epoch: Option<f64>) -> Row {
    let gflop = w1_gflop_per_epoch(r.w1_rows);
    let rate = |epoch: Option<f64>| epoch.map(|s| gflop / s);
    // A README figure was measured on another machine: no share of this one's peak.
    let measured = |a: &Option<Anchor>| {
        a.as_ref()
            .filter(|a| !a.is_reference())
            .and_then(|a| a.get(WORKLOAD[W1], "median_epoch_s"))
    };
    let (k, t) = (measured(&r.keras[W1]), measured(&r.torch[W1]));
    let peaks: Vec<f64> = r.peak.iter().flatten().copied().collect();
    let peak = (!peaks.is_empty()).then(|| peaks.iter().sum::<f64>() / peaks.len() as f64);
    let share = |g: Option<f64>| g.zip(peak).map(|(g, p)| 100.0 * g / p);
    let ours = rate(median_epoch);
    let pct = |g: Option<f64>| share(g).map_or("—".into(), |s| format!("{s:.0}%"));
    row(
        &format!("W1 matrix products ({gflop:.1} GFLOP an epoch), GFLOP/s"),
        opt(ours),
        opt(rate(k)),
        opt(rate(t)),
        format!(
            "{} · K {} · T {} of peak {} GFLOP/s",
            pct(ours),
            pct(rate(k)),
            pct(rate(t)),
            opt(peak)
        ),
        "≥ 40% of peak",
        verdict(&[share(ours).map(|s| s >= 40.0)]),
    )
}

/// The last epoch's validation loss beside the anchors' (no target: a sanity check).
fn val_loss_row(r: &Results, w: usize, label: &str, job: Option<&JobRun>) -> Row {
    let loss = job.and_then(|j| j.last()).and_then(|e| e.val_loss);
    let (kc, _) = anchor_cell(&r.keras[w], w, "final_val_loss", 1.0);
    let (tc, _) = anchor_cell(&r.torch[w], w, "final_val_loss", 1.0);
    row(label, opt(loss), kc, tc, String::new(), "—", "—".into())
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / (1u64 << 20) as f64)
}

pub fn rows(r: &Results) -> Vec<Row> {
    let mut out = Vec::new();
    let w1 = r.w1.as_ref();
    let w2 = r.w2.as_ref();
    // With a run after the anchors, nnserve's figure is the mean of the two medians.
    let w1_median = match (w1.and_then(JobRun::median_epoch), r.w1_again.as_ref()) {
        (Some(a), Some(again)) => again.median_epoch().map(|b| (a + b) / 2.0),
        (a, _) => a,
    };
    out.push(speed_row(
        r,
        W1,
        "W1 first epoch, s",
        w1.and_then(JobRun::first_epoch),
        "first_epoch_s",
        None,
    ));
    out.push(speed_row(
        r,
        W1,
        "W1 median epoch 2..N (incl. validation), s",
        w1_median,
        "median_epoch_s",
        Some((4.0, 2.0)),
    ));

    out.push(w1_rate_row(r, w1_median));

    let acc = w1
        .and_then(|j| j.last())
        .and_then(|e| e.val_accuracy)
        .map(|a| a * 100.0);
    let (kc, k) = anchor_cell(&r.keras[W1], W1, "final_val_accuracy", 100.0);
    let (tc, _) = anchor_cell(&r.torch[W1], W1, "final_val_accuracy", 100.0);
    let delta = acc.zip(k).map(|(a, k)| a - k);
    out.push(row(
        "W1 final val accuracy, %",
        opt(acc),
        kc,
        tc,
        format!("{} pt vs K", opt(delta)),
        "≥ Keras − 0.5 pt",
        verdict(&[delta.map(|d| d >= -0.5)]),
    ));

    out.push(val_loss_row(r, W1, "W1 final val loss", w1));

    let ours = mb(w1.and_then(|j| j.server_peak_rss));
    let (k, t) = (
        mb(r.keras[W1].as_ref().and_then(Anchor::peak_rss)),
        mb(r.torch[W1].as_ref().and_then(Anchor::peak_rss)),
    );
    let ratio = format!(
        "K {}× · T {}×",
        opt(ours.zip(k).map(|(o, k)| k / o)),
        opt(ours.zip(t).map(|(o, t)| t / o))
    );
    out.push(row(
        "W1 peak RSS (server VmHWM / anchor), MiB",
        opt(ours),
        opt(k),
        opt(t),
        ratio,
        "≤ 400",
        verdict(&[ours.map(|o| o <= 400.0)]),
    ));

    out.push(speed_row(
        r,
        W2,
        "W2 first epoch, s",
        w2.and_then(JobRun::first_epoch),
        "first_epoch_s",
        None,
    ));
    out.push(speed_row(
        r,
        W2,
        "W2 median epoch 2..N, s",
        w2.and_then(JobRun::median_epoch),
        "median_epoch_s",
        Some((30.0, 5.0)),
    ));
    out.push(val_loss_row(r, W2, "W2 final val loss", w2));

    let up = r.upload.as_ref().map(Upload::mb_per_s);
    out.push(row(
        "CSV upload W1, MB/s (end to end)",
        opt(up),
        "—".into(),
        "—".into(),
        String::new(),
        "≥ 100",
        verdict(&[up.map(|u| u >= 100.0)]),
    ));

    let p = r.predict;
    let f = r.floor;
    let (kcall, _) = anchor_cell(&r.keras[W1], W1, "infer_single_call_ms_median", 1.0);
    let (kpred, _) = anchor_cell(&r.keras[W1], W1, "infer_single_predict_ms_median", 1.0);
    let (tcall, _) = anchor_cell(&r.torch[W1], W1, "infer_single_call_ms_median", 1.0);
    let p50 = p.map(|p| p.p50_ms);
    out.push(row(
        "predict 1 row over HTTP p50, ms",
        opt(p50),
        format!("{kcall} call, {kpred} predict*"),
        format!("{tcall} call*"),
        String::new(),
        "≤ 0.25",
        verdict(&[p50.map(|x| x <= 0.25)]),
    ));
    let p99 = p.map(|p| p.p99_ms);
    out.push(row(
        "predict 1 row over HTTP p99, ms",
        opt(p99),
        "—".into(),
        "—".into(),
        String::new(),
        "≤ 1",
        verdict(&[p99.map(|x| x <= 1.0)]),
    ));
    let rps = p.map(|p| p.requests_per_s);
    out.push(row(
        "predict 1 row, 32 connections, req/s",
        opt(rps),
        "—".into(),
        "—".into(),
        String::new(),
        "≥ 15k",
        verdict(&[rps.map(|x| x >= 15_000.0)]),
    ));
    out.push(row(
        "HTTP floor (parse + echo) 1 row p50, ms",
        opt(f.map(|f| f.p50_ms)),
        "—".into(),
        "—".into(),
        String::new(),
        "—",
        "—".into(),
    ));
    out.push(row(
        "HTTP floor 1 row, 32 connections, req/s",
        opt(f.map(|f| f.requests_per_s)),
        "—".into(),
        "—".into(),
        String::new(),
        "—",
        "—".into(),
    ));
    let over = p.zip(f).map(|(p, f)| p.p50_ms / f.p50_ms);
    out.push(row(
        "predict p50 / floor p50",
        opt(over),
        "—".into(),
        "—".into(),
        String::new(),
        "≤ 1.5",
        verdict(&[over.map(|x| x <= 1.5)]),
    ));

    let rows_s = p.map(|p| p.batch_rows_per_s);
    let (kpc, kp) = anchor_cell(&r.keras[W1], W1, "infer_batch1000_predict_rows_per_s", 1.0);
    let (kcc, _) = anchor_cell(&r.keras[W1], W1, "infer_batch1000_call_rows_per_s", 1.0);
    let (tcc, _) = anchor_cell(&r.torch[W1], W1, "infer_batch1000_call_rows_per_s", 1.0);
    let ratio = format!("{}× K predict", opt(rows_s.zip(kp).map(|(o, k)| o / k)));
    out.push(row(
        "predict 1000 rows over HTTP, rows/s",
        opt(rows_s),
        format!("{kpc} predict, {kcc} call*"),
        format!("{tcc} call*"),
        ratio,
        "≥ 100k",
        verdict(&[rows_s.map(|x| x >= 100_000.0)]),
    ));
    out.push(row(
        "HTTP floor 1000 rows, rows/s",
        opt(f.map(|f| f.batch_rows_per_s)),
        "—".into(),
        "—".into(),
        String::new(),
        "—",
        "—".into(),
    ));
    out
}

/// A Markdown table, padded so it also reads well in a terminal.
pub fn render(rows: &[Row]) -> String {
    let header = [
        "figure",
        "nnserve",
        "Keras",
        "PyTorch",
        "ratio",
        "target",
        "pass/fail",
    ];
    let mut width = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in width.iter_mut().zip(&r.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut s = line(&header.map(String::from));
    s.push_str(&line(&width.map(|w| "-".repeat(w))));
    for r in rows {
        s.push_str(&line(&r.cells));
    }
    s
}
