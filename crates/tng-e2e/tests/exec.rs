//! `tng exec` and the hook modes end to end, on loopback with real processes: curl, python3
//! and psql under `tng exec` reach a service through our egress over rats-TLS and OHTTP; an
//! egress hook serves a python3 application reached from our ingress; the environment the
//! library gets; log lines carried over the collector socket; exit statuses and signals;
//! a failed attestation delivering nothing; static programs refused; validation messages.

#[path = "attestation/stack.rs"]
#[allow(dead_code)]
mod stack;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tng_e2e::*;

/// `tng [--log-file ..] exec --config-content CONFIG -- COMMAND...`, run to completion.
/// Without `log`, the engine's lines go to a file of their own, not into the command's stdout.
fn exec(config: &Value, log: Option<&Path>, command: &[&str]) -> Output {
    let own = test_dir("exec").join("tng.log");
    exec_cmd(config, Some(log.unwrap_or(&own)), command)
        .output()
        .expect("run tng exec")
}

fn exec_cmd(config: &Value, log: Option<&Path>, command: &[&str]) -> Command {
    let mut cmd = Command::new(bin("tng"));
    if let Some(log) = log {
        cmd.arg("--log-file").arg(log);
    }
    cmd.arg("exec")
        .arg("--config-content")
        .arg(config.to_string())
        .arg("--")
        .args(command)
        .env("RUST_LOG", "info")
        .env_remove("TNG_HOOK_LIB");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read(path).map(|b| text(&b)).unwrap_or_default()
}

fn hook_ingress(port: u16, extra: Value) -> Value {
    let mut entry = json!({
        "hook": {"capture_dst": {"host": "127.0.0.1", "port": port}, "capture_local_traffic": true},
        "no_ra": true
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            entry.insert(k.clone(), v.clone());
        }
    }
    json!({"add_ingress": [entry]})
}

/// An egress (`tng launch`, mapping) on 127.0.0.1:<port> forwarding to `backend`.
fn mapping_egress(port: u16, backend: &str, extra: Value) -> Tng {
    let (host, backend_port) = backend.rsplit_once(':').unwrap();
    let mut entry = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": port},
                    "out": {"host": host, "port": backend_port.parse::<u16>().unwrap()}},
        "no_ra": true
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if k == "no_ra" && v.is_null() {
                entry.remove("no_ra");
            } else {
                entry.insert(k.clone(), v.clone());
            }
        }
    }
    Tng::launch_named("egress", json!({"add_egress": [entry]}))
}

/// A TCP service recording what it receives; it answers each connection with `reply` and
/// closes.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start(reply: &'static [u8]) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let r = r.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = stream.write_all(reply);
                });
            }
        });
        Recorder { port, received }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

const PY_GET: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /echo-headers HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n")[0].decode())
"#;

#[test]
fn curl_python_and_psql_reach_the_service_over_rats_tls() {
    let backend = Backend::start();
    let port = free_port();
    let egress = mapping_egress(port, backend.addr(), json!({}));
    let dir = test_dir("exec-rats-tls");
    let log = dir.join("tng.log");
    let config = hook_ingress(port, json!({}));

    let out = exec(
        &config,
        Some(&log),
        &[
            "curl",
            "-sS",
            "-d",
            "through the hook",
            &format!("http://127.0.0.1:{port}/echo"),
        ],
    );
    assert!(
        out.status.success(),
        "curl: {}\n{}",
        text(&out.stderr),
        read(&log)
    );
    assert_eq!(text(&out.stdout), "through the hook");

    let out = exec(
        &config,
        Some(&log),
        &["python3", "-c", PY_GET, &port.to_string()],
    );
    assert!(
        out.status.success(),
        "python3: {}\n{}",
        text(&out.stderr),
        read(&log)
    );
    assert_eq!(text(&out.stdout).trim(), "HTTP/1.1 200 OK");

    // The library logged through the collector into the main log file.
    let lines = read(&log);
    assert!(
        lines.contains(&format!(
            "tng_hook: connect hijacked: 127.0.0.1:{port} → proxy 127.0.0.1:"
        )),
        "{lines}"
    );
    assert!(lines.contains("(tunnel established)"), "{lines}");
    // The egress only accepts rats-TLS: a plaintext request would never have been answered.
    drop(egress);

    // psql: its startup message reaches a recording service through the tunnel.
    let db = Recorder::start(b"");
    let db_port = free_port();
    let _db_egress = mapping_egress(db_port, &format!("127.0.0.1:{}", db.port), json!({}));
    let out = exec(
        &hook_ingress(db_port, json!({})),
        None,
        &[
            "psql",
            &format!("host=127.0.0.1 port={db_port} user=tnguser dbname=tngdb sslmode=disable connect_timeout=5"),
            "-c",
            "select 1",
        ],
    );
    assert!(!out.status.success());
    let received = db.received();
    assert!(
        find(&received, b"user\0tnguser\0").is_some()
            && find(&received, b"database\0tngdb\0").is_some(),
        "the service got {:?}; psql: {}",
        text(&received),
        text(&out.stderr)
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn curl_reaches_the_service_over_ohttp() {
    let backend = Backend::start();
    let port = free_port();
    let _egress = mapping_egress(port, backend.addr(), json!({"ohttp": {}}));
    let out = exec(
        &hook_ingress(port, json!({"ohttp": {}})),
        None,
        &[
            "curl",
            "-sS",
            "-d",
            "sealed",
            &format!("http://127.0.0.1:{port}/echo"),
        ],
    );
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "sealed");
    assert_eq!(backend.requests(), 1);
}

const PY_SERVER: &str = r#"
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the hooked app"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H)
print("listening", srv.socket.getsockname()[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn egress_hook_serves_a_python_application_reached_from_our_ingress() {
    let origin = free_port();
    let dir = test_dir("exec-egress-hook");
    let config = json!({"add_egress": [{
        "hook": {"capture_listen": {"port": origin}, "capture_local_traffic": true},
        "no_ra": true
    }]});
    let cmd = exec_cmd(
        &config,
        Some(&dir.join("tng.log")),
        &["python3", "-c", PY_SERVER, &origin.to_string()],
    );
    let mut app = Proc::spawn("exec-app", cmd, &dir);
    // getsockname reports the port the application asked for, not the real one.
    app.wait_for_line(&format!("listening {origin}"), Duration::from_secs(15));
    let ingress_port = free_port();
    let _ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": ingress_port},
                        "out": {"host": "127.0.0.1", "port": origin}},
            "no_ra": true
        }]}),
    );
    let out = curl(&["-sS", &format!("http://127.0.0.1:{ingress_port}/")]);
    assert_eq!(
        text(&out.stdout),
        "hello from the hooked app",
        "{}",
        text(&out.stderr)
    );
    // Plaintext straight to the origin port is not a tunnel: the egress closes it.
    let direct = Command::new("curl")
        .args(["-sS", "-m", "5", &format!("http://127.0.0.1:{origin}/")])
        .output()
        .unwrap();
    assert!(
        !direct.status.success(),
        "plaintext got through: {}",
        text(&direct.stdout)
    );
    assert!(
        read(&dir.join("tng.log")).contains(&format!("bind hijacked: 0.0.0.0:{origin} → 0.0.0.0:"))
    );
    app.signal("TERM");
    let status = app
        .wait_timeout(Duration::from_secs(10))
        .expect("tng exec exits");
    // python3 dies of SIGTERM: 128 + 15.
    assert_eq!(status.code(), Some(143), "{}", app.log());
}

fn idle_config() -> Value {
    json!({"add_ingress": [{"hook": {"capture_dst": {"host": "198.18.255.1", "port": 9}}, "no_ra": true}]})
}

#[test]
fn exit_status_and_signals_pass_through() {
    let out = exec(&idle_config(), None, &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let out = exec(&idle_config(), None, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));

    let dir = test_dir("exec-signal");
    let log = dir.join("tng.log");
    let cmd = exec_cmd(
        &idle_config(),
        Some(&log),
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    let mut proc = Proc::spawn("exec-sh", cmd, &dir);
    proc.wait_for_line("ready", Duration::from_secs(10));
    let started = Instant::now();
    proc.signal("TERM");
    let status = proc
        .wait_timeout(Duration::from_secs(10))
        .expect("tng exec exits");
    assert_eq!(status.code(), Some(42), "{}", proc.log());
    assert!(proc.log().contains("got-term"), "{}", proc.log());
    assert!(started.elapsed() < Duration::from_secs(5));
    let lines = read(&log);
    assert!(
        lines.contains("SIGTERM received: forwarded to the application"),
        "{lines}"
    );
}

#[test]
fn the_library_gets_the_exact_tables() {
    let config = json!({
        "add_ingress": [{"hook": {"proxy_port": free_port(), "capture_dst": [{"host": "127.0.0.1", "port": 30001}, {"port": 30010, "port_end": 30012}],
                                  "capture_local_traffic": true}, "no_ra": true},
                        {"hook": {"capture_dst": {"host": "10.0.0.0/24", "port": 80}}, "no_ra": true}],
        "add_egress": [{"hook": {"capture_listen": [{"port": 30005}, {"port": 30006, "port_end": 30007, "redirect_to_port": 41006, "redirect_to_port_end": 41007}]}, "no_ra": true}]
    });
    let proxy_port = config["add_ingress"][0]["hook"]["proxy_port"]
        .as_u64()
        .unwrap();
    let out = exec(&config, None, &["sh", "-c", "env"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let env = text(&out.stdout);
    let var = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let ingress: Value = serde_json::from_str(&var("TNG_HOOK_INGRESS_MAPPINGS").unwrap()).unwrap();
    let auto_proxy = ingress["ingresses"][1]["proxy_port"].as_u64().unwrap();
    assert!((15000..25000).contains(&auto_proxy), "{auto_proxy}");
    assert_eq!(
        var("TNG_HOOK_INGRESS_MAPPINGS").unwrap(),
        format!(
            r#"{{"ingresses":[{{"proxy_port":{proxy_port},"capture_rules":[{{"host_cidr":"127.0.0.1","port":30001}},{{"host_cidr":"*","port":30010,"port_end":30012}}],"capture_local_traffic":true}},{{"proxy_port":{auto_proxy},"capture_rules":[{{"host_cidr":"10.0.0.0/24","port":80}}],"capture_local_traffic":false}}]}}"#
        )
    );
    let egress = var("TNG_HOOK_EGRESS_MAPPINGS").unwrap();
    let parsed: Value = serde_json::from_str(&egress).unwrap();
    let auto_real = parsed["entries"][0]["real_port"].as_u64().unwrap();
    assert!((15000..25000).contains(&auto_real), "{auto_real}");
    assert_eq!(
        egress,
        format!(
            r#"{{"entries":[{{"origin_port":30005,"real_port":{auto_real}}},{{"origin_port":30006,"real_port":41006}},{{"origin_port":30007,"real_port":41007}}]}}"#
        )
    );
    assert_eq!(var("TNG_HOOK_LOG_FORMAT").as_deref(), Some("text"));
    assert!(var("LD_PRELOAD").unwrap().ends_with("/libtng_hook.so"));
    // A log file: the collector socket is named after the tng exec process.
    assert!(var("TNG_HOOK_LOG_SOCKET")
        .unwrap()
        .starts_with("tng-hook-log-"));
    assert_eq!(var("TNG_HOOK_LOG_ERROR_SOCKET"), None);

    // Only an egress hook: the ingress table is still there, empty.
    let out = exec(
        &json!({"add_egress": [{"hook": {"capture_listen": {"port": 30005, "redirect_to_port": 41005}}, "no_ra": true}]}),
        None,
        &["sh", "-c", "env"],
    );
    let env = text(&out.stdout);
    assert!(
        env.lines()
            .any(|l| l == r#"TNG_HOOK_INGRESS_MAPPINGS={"ingresses":[]}"#),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l
            == r#"TNG_HOOK_EGRESS_MAPPINGS={"entries":[{"origin_port":30005,"real_port":41005}]}"#),
        "{env}"
    );
}

const PY_LOG: &str = r#"
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
name = b"\0" + os.environ["TNG_HOOK_LOG_SOCKET"].encode()
assert os.environ["TNG_HOOK_LOG_ERROR_SOCKET"] == os.environ["TNG_HOOK_LOG_SOCKET"]
s.sendto(b"\x01an info line from the app", name)
s.sendto(b"\x02an error line from the app", name)
s.sendto(b"\x00a line with a bad route", name)
"#;

#[test]
fn log_socket_lines_land_in_the_info_and_error_files() {
    let dir = test_dir("exec-log-socket");
    let (info, error) = (dir.join("info.log"), dir.join("error.log"));
    let out = Command::new(bin("tng"))
        .arg("--log-file")
        .arg(&info)
        .arg("--log-error-file")
        .arg(&error)
        .args([
            "exec",
            "--config-content",
            &idle_config().to_string(),
            "--",
            "python3",
            "-c",
            PY_LOG,
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (info, error) = (read(&info), read(&error));
    assert!(
        info.lines().any(|l| l == "an info line from the app"),
        "{info}"
    );
    assert!(!info.contains("an error line"), "{info}");
    assert!(
        error.lines().any(|l| l == "an error line from the app"),
        "{error}"
    );
    assert!(
        info.contains("hook log datagram decode error; dropped error=BadRoute(0)"),
        "{info}"
    );
    assert!(!info.contains("a line with a bad route"), "{info}");
}

const PY_CONNECT: &str = r#"
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"secret")
    print("connected")
except ConnectionRefusedError as e:
    print("refused", e.errno)
"#;

#[test]
fn failed_attestation_delivers_nothing_and_connect_fails() {
    let aa = stack::Aa::start(&[]);
    let service = stack::As::start(&[("strict", stack::CONTRAINDICATING_POLICY)], &[]);
    let recorder = Recorder::start(b"");
    let port = free_port();
    let _egress = mapping_egress(
        port,
        &format!("127.0.0.1:{}", recorder.port),
        json!({"no_ra": null, "attest": {"aa_addr": aa.addr()}}),
    );
    let dir = test_dir("exec-attest-fail");
    let log = dir.join("tng.log");
    let config = json!({"add_ingress": [{
        "hook": {"capture_dst": {"host": "127.0.0.1", "port": port}, "capture_local_traffic": true},
        "verify": {"as_addr": service.url(), "policy_ids": ["strict"]}
    }]});
    let out = exec(
        &config,
        Some(&log),
        &["python3", "-c", PY_CONNECT, &port.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "refused 111", "{}", read(&log));
    // Zero bytes of the application reached the service.
    assert!(recorder.received().is_empty(), "{:?}", recorder.received());
    let lines = read(&log);
    assert!(
        lines.contains(&format!(
            "connect to 127.0.0.1:{port} through proxy 127.0.0.1:"
        )) && lines.contains("the engine answered \"HTTP/1.1 502 Bad Gateway\""),
        "{lines}"
    );
}

fn static_binary(dir: &Path) -> PathBuf {
    let src = dir.join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void){puts(\"static hello\");return 0;}\n",
    )
    .unwrap();
    let exe = dir.join("hello-static");
    let out = Command::new("gcc")
        .arg("-static")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("gcc (installed by scripts/deps.sh)");
    assert!(out.status.success(), "gcc -static: {}", text(&out.stderr));
    exe
}

#[test]
fn static_binaries_are_refused() {
    let dir = test_dir("exec-static");
    let exe = static_binary(&dir);
    let exe_str = exe.to_str().unwrap();
    let out = exec(&idle_config(), None, &[exe_str]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "it ran: {}", text(&out.stdout));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "error: refusing to run {exe_str}: it is statically linked (no program interpreter), so it makes its system calls without the dynamic C library; the hook library could not see its connections and they would bypass the tunnel (pass --allow-unhooked to run it anyway, unprotected)"
        )
    );
    // A script whose interpreter is static is refused the same way.
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{exe_str}\n")).unwrap();
    let out = exec(&idle_config(), None, &[script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("it is statically linked"),
        "{}",
        text(&out.stderr)
    );
    // The escape hatch runs it, saying so.
    let mut cmd = Command::new(bin("tng"));
    cmd.arg("--log-file").arg(dir.join("tng.log"));
    cmd.args([
        "exec",
        "--allow-unhooked",
        "--config-content",
        &idle_config().to_string(),
        "--",
        exe_str,
    ]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "static hello\n");
    assert!(text(&out.stderr).contains("running it anyway (--allow-unhooked)"));
}

fn error_of(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    text(&out.stderr).trim().to_string()
}

#[test]
fn validation_messages() {
    let hook =
        json!({"add_egress": [{"hook": {"capture_listen": {"port": 30005}}, "no_ra": true}]});
    let mut launch = Command::new(bin("tng"));
    launch.args(["launch", "--config-content", &hook.to_string()]);
    assert_eq!(
        error_of(launch),
        "error: invalid configuration: Egress entry 0 uses 'hook' mode, which is only allowed via `tng exec`, not `tng launch`"
    );
    let cases = [
        (json!({}), "error: invalid configuration: tng exec requires at least one add_ingress or add_egress entry"),
        (
            json!({"add_ingress": [{"mapping": {"in": {"port": 1}, "out": {"host": "127.0.0.1", "port": 2}}, "no_ra": true}]}),
            "error: invalid configuration: tng exec only supports 'hook' mode ingress, but ingress entry 0 uses a 'mapping' mode. Use `tng launch` for non-hook modes.",
        ),
        (
            json!({"add_egress": [{"hook": {"capture_listen": []}, "no_ra": true}]}),
            "error: invalid configuration: Egress entry 0 has 'hook' mode but no capture_listen entries",
        ),
        (
            json!({"add_ingress": [{"hook": {"capture_dst": []}, "no_ra": true}]}),
            "error: invalid configuration: Ingress entry 0 has 'hook' mode but no capture_dst entries",
        ),
        (
            json!({"add_ingress": [{"hook": {"proxy_port": 41006, "capture_dst": {"port": 80}}, "no_ra": true}],
                   "add_egress": [{"hook": {"capture_listen": {"port": 30006, "redirect_to_port": 41006}}, "no_ra": true}]}),
            "error: invalid configuration: Failed to use ingress proxy port 41006: Conflict: port 41006 is already claimed by another entry",
        ),
    ];
    for (config, message) in cases {
        let cmd = exec_cmd(&config, None, &["true"]);
        assert_eq!(error_of(cmd), message, "{config}");
    }
    let mut cmd = exec_cmd(&idle_config(), None, &["true"]);
    cmd.env("TNG_HOOK_LIB", "/nonexistent/libtng_hook.so");
    assert_eq!(
        error_of(cmd),
        "error: Failed to resolve libtng_hook.so path: TNG_HOOK_LIB=/nonexistent/libtng_hook.so does not exist"
    );
    let cmd = exec_cmd(&idle_config(), None, &["no-such-command-tng"]);
    assert_eq!(
        error_of(cmd),
        "error: no-such-command-tng: command not found in PATH"
    );
    // The command after `--` is mandatory.
    let out = Command::new(bin("tng"))
        .args(["exec", "--config-content", &idle_config().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
