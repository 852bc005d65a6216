//! Running `tng tools …` (ours or upstream's) to completion and checking the outcome.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tng_e2e::{bin, pause};

#[derive(Debug)]
pub struct ToolOutput {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn success(self) -> ToolOutput {
        assert_eq!(
            self.code,
            Some(0),
            "{}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit status 1 and one `error: …` line naming every needle.
    pub fn failure_with(self, needles: &[&str]) -> ToolOutput {
        assert_eq!(self.code, Some(1), "{}: {:?}", self.args, self);
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{}: no error line: {:?}", self.args, self));
        for needle in needles {
            assert!(
                line.contains(needle),
                "{}: {needle:?} not in {line:?}",
                self.args
            );
        }
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout not JSON ({e}):\n{}", self.args, self.stdout))
    }
}

/// Runs our `tng` with `args` (60 s limit).
pub fn tool(args: &[&str]) -> ToolOutput {
    run(Command::new(bin("tng")), args)
}

/// Runs upstream's binary with `args`.
pub fn upstream_tool(binary: &Path, args: &[&str]) -> ToolOutput {
    let mut cmd = Command::new(binary);
    cmd.env("RUST_BACKTRACE", "0");
    run(cmd, args)
}

fn run(mut cmd: Command, args: &[&str]) -> ToolOutput {
    let dir = tng_e2e::test_dir("tool");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let mut child = cmd.spawn().expect("spawn tool");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not finish within 60 s");
        }
        pause(Duration::from_millis(20));
    };
    ToolOutput {
        args: args.join(" "),
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
