//! nginx between the ingress and the egress reloaded (`nginx -s reload`) and restarted under a
//! steady load. A reload hands the listener to new workers while the old ones finish their
//! requests; a restart leaves a window with nothing listening, during which the load is held
//! and one probe pins the status a client gets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::*;

use crate::common::*;

const LOOPS: usize = 4;
const RELOADS: usize = 3;

/// A loopback nginx with its own prefix, configuration and pid file under `dir`.
struct Nginx {
    proc: Option<Proc>,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, port: u16, egress_port: u16) -> Nginx {
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).expect("nginx dirs");
        }
        let d = dir.display();
        // Upstream keep-alive as a production gateway would have it: the reload must also
        // retire those connections cleanly.
        let conf = format!(
            "worker_processes 1;\nerror_log {d}/logs/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
               upstream egress {{ server 127.0.0.1:{egress_port}; keepalive 16; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location / {{ proxy_pass http://egress; proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\"; client_max_body_size 0;\n\
                   proxy_request_buffering off; proxy_buffering off; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut nginx = Nginx {
            proc: None,
            dir: dir.to_path_buf(),
            port,
        };
        nginx.run();
        nginx
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(format!("{}/", self.dir.display()))
            .arg("-e")
            .arg(self.dir.join("logs/error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"));
        cmd
    }

    fn run(&mut self) {
        let mut cmd = self.command();
        cmd.args(["-g", "daemon off;"]);
        let proc = Proc::spawn("nginx", cmd, &self.dir);
        let deadline = Instant::now() + GENEROUS;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx not listening: {}",
                proc.log()
            );
            pause(Duration::from_millis(20));
        }
        self.proc = Some(proc);
    }

    /// `nginx -s <signal>` against this instance's pid file.
    fn signal(&self, signal: &str) {
        let out = self
            .command()
            .args(["-s", signal])
            .output()
            .expect("run nginx -s");
        assert!(
            out.status.success(),
            "nginx -s {signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The number of worker processes of the running master.
    fn workers(&self) -> usize {
        let pid = self.proc.as_ref().expect("running").pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .count()
    }

    /// `nginx -s stop` and wait for the master to exit. Not `quit`: a graceful quit waits
    /// for every idle keep-alive connection the ingress holds to time out on its own.
    fn stop(&mut self) {
        self.signal("stop");
        let mut proc = self.proc.take().expect("running");
        let status = proc.wait_timeout(GENEROUS).expect("nginx exits on stop");
        assert!(status.success(), "nginx stop: {status}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers too; a SIGKILL (Proc's drop) would orphan
        // them.
        if let Some(proc) = self.proc.as_mut() {
            proc.terminate();
        }
    }
}

#[test]
fn nginx_reload_and_restart_between_ingress_and_egress() {
    if Command::new("nginx").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is required under CI"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n### SKIP nginx_reload_and_restart_between_ingress_and_egress: nginx not installed\n",
        );
        return;
    }
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    let dir = test_dir("nginx-faults");
    let nginx_port = free_port();
    let mut nginx = Nginx::start(&dir, nginx_port, egress_port);
    let (ingress, ingress_port) = launch_ingress(&format!("127.0.0.1:{nginx_port}"), json!({}));
    let load = Load::start(&format!("127.0.0.1:{ingress_port}"), LOOPS);
    load.wait_successes(0, 30, GENEROUS);

    // Reloads under load.
    let before_reloads = load.outcomes().len();
    for _ in 0..RELOADS {
        let ok = load.outcomes().iter().filter(|o| o.ok).count();
        nginx.signal("reload");
        // Requests keep flowing across the worker hand-over.
        load.wait_successes(ok, 10, GENEROUS);
        pause(Duration::from_millis(300));
    }
    let reload_failures = failures(&load.outcomes()[before_reloads..]);
    let settled = load.outcomes().len();
    let ok = load.outcomes().iter().filter(|o| o.ok).count();
    load.wait_successes(ok, 30, GENEROUS);
    let after_reloads = failures(&load.outcomes()[settled..]);
    assert!(nginx.workers() >= 1);

    // Restart: stop, start again on the same port.
    let in_flight = load.pause();
    let before_restart = load.outcomes().len();
    let stopped = Instant::now();
    nginx.stop();
    load.wait_idle(GENEROUS);
    let restart_failures = failures(&load.outcomes()[before_restart..]);
    let probe = curl_status(&[
        "-d",
        "nginx down",
        &format!("http://127.0.0.1:{ingress_port}/echo"),
    ]);
    let (status, code, message) = error_of(&probe);
    assert_eq!(
        (status, code.as_str()),
        (502, "HttpCipherTextForwardError"),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    nginx.run();
    let downtime = stopped.elapsed();
    let ok = load.outcomes().iter().filter(|o| o.ok).count();
    let resumed = Instant::now();
    load.resume();
    load.wait_successes(ok, 40, GENEROUS);
    let outcomes = load.stop();
    let after_restart: Vec<Outcome> = failures(&outcomes)
        .into_iter()
        .filter(|o| o.start >= resumed)
        .collect();
    let first_ok = outcomes
        .iter()
        .filter(|o| o.ok && o.start >= resumed)
        .map(|o| o.end - resumed)
        .min()
        .unwrap_or_default();

    println!(
        "[faults] nginx: {} requests; {RELOADS} reloads under load: {} failed; restart: {} failed \
         ({in_flight} in flight at the stop), downtime {} ms, first success {} ms after nginx was \
         back",
        outcomes.len(),
        reload_failures.len(),
        restart_failures.len(),
        downtime.as_millis(),
        first_ok.as_millis()
    );
    let details = |v: &[Outcome]| v.iter().map(|o| o.detail.clone()).collect::<Vec<_>>();
    for o in &reload_failures {
        println!("[faults]   failed during a reload: {}", o.detail);
    }
    assert!(
        reload_failures.len() <= RELOADS * LOOPS,
        "{:?}",
        details(&reload_failures)
    );
    assert!(after_reloads.is_empty(), "{:?}", details(&after_reloads));
    // Only what nginx was carrying at the stop may fail.
    assert!(
        restart_failures.len() <= in_flight,
        "{:?}",
        details(&restart_failures)
    );
    assert!(after_restart.is_empty(), "{:?}", details(&after_restart));
    assert_eq!(
        failures(&outcomes).len(),
        reload_failures.len() + restart_failures.len()
    );
    drop((ingress, egress));
}
