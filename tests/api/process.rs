//! The real `nnserve` binary as a child process: started, killed with SIGKILL or
//! stopped with SIGTERM, started again on the same database file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::helpers::{TestApp, TestDb};

pub struct Process {
    child: Child,
    pub app: TestApp,
    log: Arc<Mutex<String>>,
}

/// Starts the binary on `dir`'s database (see [`TestDb::of`]) with `args` (run through `sh -c` when `shell`
/// wraps the command, e.g. `ulimit -v N; exec "$0" "$@"`), and waits for it to listen.
pub fn start(dir: &Arc<TempDir>, args: &[&str], shell: Option<&str>) -> Process {
    let db = TestDb::of(dir.path());
    let binary = env!("CARGO_BIN_EXE_nnserve");
    let database = db.url();
    let mut all = vec!["--addr", "127.0.0.1:0"];
    if !args.contains(&"--database-url") {
        all.extend(["--database-url", &database]);
    }
    all.extend_from_slice(args);
    let mut command = match shell {
        Some(script) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script).arg(binary).args(&all);
            c
        }
        None => {
            let mut c = Command::new(binary);
            c.args(&all);
            c
        }
    };
    let mut child = command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,sqlx=warn")
        .env_remove("NNSERVE_API_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening") {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(addr.to_owned());
                }
            }
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(address) => address,
        Err(_) => {
            let _ = child.kill();
            panic!("nnserve did not start:\n{}", log.lock().unwrap());
        }
    };
    Process {
        child,
        app: TestApp::remote(format!("http://{address}"), dir.clone(), db),
        log,
    }
}

impl Process {
    /// `kill -9`: no handler runs, nothing is flushed or checkpointed.
    pub fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGSTOP (`pause`) or SIGCONT: the process is frozen, or runs again, as a VM that
    /// stalls would.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{name}");
    }

    /// SIGTERM; returns the exit status and how long the process took to exit.
    pub fn sigterm(mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("no exit a minute after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
