//! A spawned child process whose stdout and stderr go to a log file.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process. Dropping it kills the process (SIGKILL) if it is still alive.
pub struct Proc {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// Where this process's output starts: a restarted process of the same name appends to
    /// the same file, and must not be taken for ready on its predecessor's lines.
    log_start: u64,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdout+stderr appended to `<dir>/<name>.log` (the path is printed).
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Proc {
        let log_path = dir.join(format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err = log.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        println!(
            "[e2e] {name}: pid {} log {}",
            child.id(),
            log_path.display()
        );
        Proc {
            name: name.to_string(),
            child,
            log_path,
            log_start,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// This process's stdout/stderr so far (not that of an earlier process of the same name).
    pub fn log(&self) -> String {
        let start = usize::try_from(self.log_start).unwrap_or(usize::MAX);
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(b.get(start..).unwrap_or_default()).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Peak resident set size (VmHWM) in KiB; the process must still be running.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
            .unwrap_or_else(|| panic!("{}: no VmHWM (process gone?)", self.name))
    }

    /// Waits until a log line contains `needle` and returns that line; panics with the log
    /// tail after `timeout` or when the process exits first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "{} exited ({status}) before printing {needle:?}; log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no line containing {needle:?} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            crate::pause(Duration::from_millis(20));
        }
    }

    /// Non-blocking exit check.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            crate::pause(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, ...) without waiting.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// SIGTERM, then up to 15 s for a graceful exit, then SIGKILL. Returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        self.signal("TERM");
        if let Some(status) = self.wait_timeout(Duration::from_secs(15)) {
            return status;
        }
        eprintln!("[e2e] {} ignored SIGTERM for 15 s; killing", self.name);
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait after kill");
        self.exit = Some(status);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}
