//! Real gateways on loopback, each a foreground process with everything under one directory:
//! nginx as the L7 hop, HAProxy as the L4 load balancer (PROXY protocol).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc::Proc;

/// nginx with the given `server { … }` blocks inside `http { … }`, streaming both ways; returns
/// once `port` accepts connections.
pub fn nginx(dir: &Path, servers: &str, port: u16) -> Proc {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("nginx dirs");
    }
    let d = dir.display();
    // One process (no master): `Proc`'s drop kills it with SIGKILL, which would leave a
    // master's workers running, holding the port, after the test.
    let conf = format!(
        "master_process off;\nworker_processes 1;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
           proxy_http_version 1.1;\n  proxy_request_buffering off;\n  proxy_buffering off;\n\
           {servers}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let proc = Proc::spawn("nginx", cmd, dir);
    wait_listening(&proc, port);
    proc
}

/// HAProxy in TCP mode with the given `frontend` / `backend` / `listen` sections; returns
/// once `port` accepts connections.
pub fn haproxy(dir: &Path, sections: &str, port: u16) -> Proc {
    std::fs::create_dir_all(dir).expect("haproxy dir");
    let conf = format!(
        "global\n  maxconn 256\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\n{sections}\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("write haproxy.cfg");
    let mut cmd = Command::new("haproxy");
    // -db: stay in the foreground, log to stderr.
    cmd.arg("-db").arg("-f").arg(&path);
    let proc = Proc::spawn("haproxy", cmd, dir);
    wait_listening(&proc, port);
    proc
}

fn wait_listening(proc: &Proc, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not listen on {port}: {}",
            proc.name(),
            proc.log()
        );
        crate::pause(Duration::from_millis(50));
    }
}
