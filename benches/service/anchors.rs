//! The Keras and PyTorch anchors of ../shared/bench, run in this invocation when their Python
//! packages import, else the README's reference figures, marked as such.

use crate::server::rss;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framework {
    Keras,
    Torch,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Keras => "Keras",
            Framework::Torch => "PyTorch",
        }
    }
    fn script(self) -> &'static str {
        match self {
            Framework::Keras => "keras_anchor.py",
            Framework::Torch => "torch_anchor.py",
        }
    }
    pub fn modules(self) -> &'static str {
        match self {
            Framework::Keras => "tensorflow, keras",
            Framework::Torch => "torch",
        }
    }
    pub fn install_hint(self) -> &'static str {
        match self {
            Framework::Keras => ".venv-bench/bin/pip install numpy tensorflow-cpu",
            Framework::Torch => {
                ".venv-bench/bin/pip install numpy torch   # the PyPI wheel is ~3 GB"
            }
        }
    }
}

/// Where an anchor figure came from.
#[derive(Clone, Debug)]
pub enum Source {
    Measured { json: Value, peak_rss: Option<u64> },
    Reference,
    Failed(String),
}

/// One anchor workload's outcome. `Reference` figures come from `reference()`.
#[derive(Clone, Debug)]
pub struct Anchor {
    pub framework: Framework,
    pub source: Source,
}

impl Anchor {
    /// A field of the anchor's JSON line, or of the reference table.
    pub fn get(&self, workload: &str, key: &str) -> Option<f64> {
        match &self.source {
            Source::Measured { json, .. } => json.get(key).and_then(Value::as_f64),
            Source::Reference => reference(self.framework, workload, key),
            Source::Failed(_) => None,
        }
    }

    pub fn peak_rss(&self) -> Option<u64> {
        match &self.source {
            Source::Measured { peak_rss, .. } => *peak_rss,
            _ => None,
        }
    }

    pub fn is_reference(&self) -> bool {
        matches!(self.source, Source::Reference)
    }
}

/// Runs one anchor script; its stdout is exactly one JSON line, its log goes to `log`.
/// Peak RSS is the child's VmHWM, polled until it exits (a zombie no longer reports it).
pub fn run(
    python: &Path,
    scripts: &Path,
    framework: Framework,
    workload: &str,
    csv: &Path,
    epochs: Option<usize>,
    log: &Path,
) -> Source {
    let stderr = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return Source::Failed(format!("{}: {e}", log.display())),
    };
    let out_path = log.with_extension("json");
    let stdout = match std::fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => return Source::Failed(format!("{}: {e}", out_path.display())),
    };
    let mut cmd = Command::new(python);
    cmd.arg(scripts.join(framework.script()))
        .args(["--workload", workload, "--csv"])
        .arg(csv)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    if let Some(n) = epochs {
        cmd.args(["--epochs", &n.to_string()]);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Source::Failed(format!("starting {}: {e}", python.display())),
    };
    let mut peak = None;
    let status = loop {
        if let Some((_, hwm)) = rss(child.id()) {
            peak = Some(hwm);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Source::Failed(e.to_string()),
        }
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        return Source::Failed(format!(
            "{} exited with {status}; log: {}",
            framework.script(),
            log.display()
        ));
    }
    match text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(serde_json::from_str::<Value>)
    {
        Some(Ok(json)) => Source::Measured {
            json,
            peak_rss: peak,
        },
        _ => Source::Failed(format!(
            "no JSON line from {}; log: {}",
            framework.script(),
            log.display()
        )),
    }
}

/// The figures of ../shared/bench/README.md ("Reference figures"), midpoints of its ranges.
/// Used only when the framework is not installed, and always printed with "(ref)".
fn reference(framework: Framework, workload: &str, key: &str) -> Option<f64> {
    let v = match (framework, workload, key) {
        (Framework::Keras, "mlp784", "first_epoch_s") => 1.975,
        (Framework::Keras, "mlp784", "median_epoch_s") => 1.37,
        (Framework::Keras, "mlp784", "final_val_loss") => 0.200,
        (Framework::Keras, "mlp784", "final_val_accuracy") => 0.933,
        (Framework::Keras, "mlp784", "infer_single_predict_ms_median") => 37.0,
        (Framework::Keras, "mlp784", "infer_single_call_ms_median") => 1.8,
        (Framework::Keras, "mlp784", "infer_batch1000_predict_rows_per_s") => 25_000.0,
        (Framework::Keras, "mlp784", "infer_batch1000_call_rows_per_s") => 160_000.0,
        (Framework::Keras, "tiny4", "median_epoch_s") => 0.28,
        (Framework::Keras, "tiny4", "final_val_loss") => 0.0103,
        (Framework::Torch, "mlp784", "first_epoch_s") => 0.79,
        (Framework::Torch, "mlp784", "median_epoch_s") => 0.77,
        (Framework::Torch, "mlp784", "final_val_loss") => 0.200,
        (Framework::Torch, "mlp784", "final_val_accuracy") => 0.930,
        (Framework::Torch, "mlp784", "infer_single_call_ms_median") => 0.035,
        (Framework::Torch, "mlp784", "infer_batch1000_call_rows_per_s") => 700_000.0,
        (Framework::Torch, "tiny4", "median_epoch_s") => 0.058,
        (Framework::Torch, "tiny4", "final_val_loss") => 0.0080,
        _ => return None,
    };
    Some(v)
}
