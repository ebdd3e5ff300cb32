//! The benchmark's input files, written by ../shared/bench/make_data.py when missing, and the
//! Python interpreter that runs it and the anchors.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `$NNSERVE_BENCH_PYTHON`, else a `.venv-bench` in or beside the project, else `python3`.
pub fn python(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("NNSERVE_BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    [root.join(".venv-bench"), root.join("../.venv-bench")]
        .into_iter()
        .map(|v| v.join("bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether `python -c "import <modules>"` succeeds.
pub fn importable(python: &Path, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub struct DataSet {
    pub generator: &'static str,
    pub rows: Option<usize>,
    pub path: PathBuf,
    pub target: &'static str,
}

/// Writes the CSV unless a previous run already did (the generator is deterministic).
pub fn ensure(python: &Path, scripts: &Path, set: &DataSet) -> Result<(), String> {
    if set.path.exists() {
        return Ok(());
    }
    if !importable(python, "numpy") {
        return Err(format!(
            "{} is missing and {} cannot import numpy to generate it.\n\
             Install it with:  python3 -m venv .venv-bench && .venv-bench/bin/pip install numpy\n\
             (or point NNSERVE_BENCH_PYTHON at a Python that has numpy)",
            set.path.display(),
            python.display()
        ));
    }
    if let Some(dir) = set.path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Written under a temporary name so an interrupted run never leaves a truncated CSV behind.
    let partial = set.path.with_extension("csv.partial");
    let mut cmd = Command::new(python);
    cmd.arg(scripts.join("make_data.py"))
        .arg(set.generator)
        .arg("-o")
        .arg(&partial);
    cmd.args(["--seed", "42"]);
    if let Some(rows) = set.rows {
        cmd.args(["--rows", &rows.to_string()]);
    }
    eprintln!("generating {} ...", set.path.display());
    let status = cmd
        .status()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !status.success() {
        return Err(format!(
            "make_data.py {} failed with {status}",
            set.generator
        ));
    }
    std::fs::rename(&partial, &set.path).map_err(|e| e.to_string())
}

/// The first `n` data rows' feature values as JSON arrays, keeping the CSV's own number text
/// (what a client holding the same data would send), the target column dropped.
pub fn feature_rows(csv: &Path, n: usize) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let mut lines = BufReader::new(file).lines();
    lines.next();
    let mut rows = Vec::with_capacity(n);
    for line in lines.take(n) {
        let line = line.map_err(|e| e.to_string())?;
        let fields: Vec<&str> = line.split(',').collect();
        let features = &fields[..fields.len() - 1];
        if let Some(bad) = features.iter().find(|f| f.parse::<f32>().is_err()) {
            return Err(format!("{}: {bad:?} is not a number", csv.display()));
        }
        rows.push(format!("[{}]", features.join(",")));
    }
    if rows.len() < n {
        return Err(format!(
            "{} has {} rows, {n} needed",
            csv.display(),
            rows.len()
        ));
    }
    Ok(rows)
}
