//! Network-namespace topologies for the capture and proxy tests.
//!
//! Each [`Topology`] owns three fresh namespaces `tngc-N` (client), `tngg-N` (gateway) and
//! `tngs-N` (server), joined by two veth pairs:
//!
//! ```text
//! client 198.18.N.1 ──── 198.18.N.2 gateway 198.19.N.1 ──── 198.19.N.2 server
//! ```
//!
//! `N` is claimed with `ip netns add` (which fails when the name exists), so tests in parallel
//! threads and parallel test binaries never share a namespace. The veth ends are created
//! directly inside the namespaces: nothing is added to the host's own namespace. The gateway
//! forwards between the two links, and the client and server have a route to each other's
//! /24 through it (only 198.18.0.0/15 and loopback are ever addressed).
//!
//! Dropping the topology kills every process still running in its namespaces (by pid), then
//! deletes the namespaces (which destroys the veths, ipsets and netfilter state in them).

#![allow(dead_code)]

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tng_e2e::{bin, pause, test_dir, Proc};

/// Whether namespace tests can run here. Not root and `CI` unset: prints a loud SKIP and
/// returns false. Under `CI=true` always true, so missing privileges fail the test loudly.
pub fn can_run(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let ci = std::env::var("CI").unwrap_or_default();
    if !ci.is_empty() && ci != "false" && ci != "0" {
        println!("[e2e] {test}: not root but CI is set: running anyway (expect failures)");
        return true;
    }
    // Written to the real stderr: the test harness captures `eprintln!` of passing tests,
    // and a skip must never be silent.
    let banner = "#".repeat(78);
    let message = format!(
        "\n{banner}\n### SKIP {test}: needs root (network namespaces, iptables, nginx, \
         tcpdump).\n### Run as root, or set CI=true to force it (it then fails instead of \
         skipping).\n{banner}\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
    false
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

pub use tng_e2e::netns::run;
use tng_e2e::netns::try_run;

/// Which namespace of a topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Gateway,
    Server,
}

pub struct Topology {
    pub n: u32,
    pub client: String,
    pub gateway: String,
    pub server: String,
    /// Client end of the client link.
    pub client_ip: Ipv4Addr,
    /// Gateway end of the client link: what the client talks to.
    pub gw_ip: Ipv4Addr,
    /// Gateway end of the server link.
    pub gw_server_ip: Ipv4Addr,
    pub server_ip: Ipv4Addr,
    pub client_veth: String,
    pub gw_client_veth: String,
    pub gw_server_veth: String,
    pub server_veth: String,
    pub dir: PathBuf,
    etc_dirs: Vec<PathBuf>,
    counter: std::cell::Cell<u32>,
}

impl Topology {
    /// Creates the three namespaces and the links; panics (after cleaning up) on failure.
    pub fn new(label: &str) -> Topology {
        let dir = test_dir(label);
        let n = claim_number();
        let mut topo = Topology {
            n,
            client: format!("tngc-{n}"),
            gateway: format!("tngg-{n}"),
            server: format!("tngs-{n}"),
            client_ip: Ipv4Addr::new(198, 18, n as u8, 1),
            gw_ip: Ipv4Addr::new(198, 18, n as u8, 2),
            gw_server_ip: Ipv4Addr::new(198, 19, n as u8, 1),
            server_ip: Ipv4Addr::new(198, 19, n as u8, 2),
            client_veth: format!("tngc{n}g"),
            gw_client_veth: format!("tngg{n}c"),
            gw_server_veth: format!("tngg{n}s"),
            server_veth: format!("tngs{n}g"),
            dir,
            etc_dirs: Vec::new(),
            counter: std::cell::Cell::new(0),
        };
        // The client namespace was created by claim_number(); a failure from here on is
        // cleaned up by Drop.
        run("ip", &["netns", "add", &topo.gateway]);
        run("ip", &["netns", "add", &topo.server]);
        topo.link(
            Side::Client,
            &topo.client_veth.clone(),
            topo.client_ip,
            Side::Gateway,
            &topo.gw_client_veth.clone(),
            topo.gw_ip,
        );
        topo.link(
            Side::Gateway,
            &topo.gw_server_veth.clone(),
            topo.gw_server_ip,
            Side::Server,
            &topo.server_veth.clone(),
            topo.server_ip,
        );
        for side in [Side::Client, Side::Gateway, Side::Server] {
            topo.ip(side, &["link", "set", "lo", "up"]);
        }
        topo.exec_ok(Side::Gateway, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let server_net = format!("198.19.{n}.0/24");
        let client_net = format!("198.18.{n}.0/24");
        let via_c = topo.gw_ip.to_string();
        let via_s = topo.gw_server_ip.to_string();
        topo.ip(Side::Client, &["route", "add", &server_net, "via", &via_c]);
        topo.ip(Side::Server, &["route", "add", &client_net, "via", &via_s]);
        // With the nf_tables backend a table appears in `iptables-save` only once something
        // created it, and stays afterwards. Create mangle and nat up front (a chain added and
        // deleted again; listing is not enough) so "before" and "after" are comparable.
        for side in [Side::Client, Side::Gateway, Side::Server] {
            for table in ["mangle", "nat"] {
                topo.exec_ok(side, &["iptables", "-t", table, "-N", "TNG_E2E_TOUCH"]);
                topo.exec_ok(side, &["iptables", "-t", table, "-X", "TNG_E2E_TOUCH"]);
            }
        }
        println!(
            "[e2e] topology {n}: {} {} — {} {}/{} — {} {}; files in {}",
            topo.client,
            topo.client_ip,
            topo.gateway,
            topo.gw_ip,
            topo.gw_server_ip,
            topo.server,
            topo.server_ip,
            topo.dir.display()
        );
        topo
    }

    fn link(&mut self, a: Side, a_if: &str, a_ip: Ipv4Addr, b: Side, b_if: &str, b_ip: Ipv4Addr) {
        let (a_ns, b_ns) = (self.ns(a).to_string(), self.ns(b).to_string());
        run(
            "ip",
            &[
                "link", "add", a_if, "netns", &a_ns, "type", "veth", "peer", "name", b_if, "netns",
                &b_ns,
            ],
        );
        for (side, iface, ip) in [(a, a_if, a_ip), (b, b_if, b_ip)] {
            self.ip(side, &["addr", "add", &format!("{ip}/24"), "dev", iface]);
            self.ip(side, &["link", "set", iface, "up"]);
        }
    }

    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Client => &self.client,
            Side::Gateway => &self.gateway,
            Side::Server => &self.server,
        }
    }

    /// `ip -n <ns> ARGS`, which must succeed.
    pub fn ip(&self, side: Side, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.ns(side)];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A `Command` that runs `program args` inside the namespace.
    pub fn command(&self, side: Side, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(side), program])
            .args(args);
        cmd
    }

    /// Runs a command inside the namespace and returns its output (success not required).
    pub fn exec(&self, side: Side, args: &[&str]) -> Output {
        self.command(side, args[0], &args[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {args:?}: {e}", self.ns(side)))
    }

    /// Like [`Topology::exec`] but panics unless the command succeeds; returns stdout.
    pub fn exec_ok(&self, side: Side, args: &[&str]) -> String {
        let out = self.exec(side, args);
        assert!(
            out.status.success(),
            "in {}: {args:?} failed ({}): {}{}",
            self.ns(side),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Spawns a long-running process in the namespace; its output goes to `<dir>/<name>.log`.
    pub fn spawn(&self, side: Side, name: &str, program: &str, args: &[&str]) -> Proc {
        Proc::spawn(name, self.command(side, program, args), &self.dir)
    }

    pub fn unique(&self, stem: &str) -> PathBuf {
        let i = self.counter.get();
        self.counter.set(i + 1);
        self.dir.join(format!("{stem}-{i}"))
    }

    /// Runs curl in the namespace (`-sS --max-time 20` first, then `args`).
    pub fn curl(&self, side: Side, args: &[&str]) -> Output {
        let mut all = vec!["curl", "-sS", "--max-time", "20"];
        all.extend_from_slice(args);
        self.exec(side, &all)
    }

    /// Runs curl in the namespace; returns curl's exit code, the HTTP status (0 when none)
    /// and the body.
    pub fn http(&self, side: Side, args: &[&str]) -> HttpResult {
        let body_file = self.unique("body");
        let body_path = body_file.display().to_string();
        let mut all = vec!["-o", &body_path, "-w", "%{http_code}"];
        all.extend_from_slice(args);
        let out = self.curl(side, &all);
        let body = fs::read(&body_file).unwrap_or_default();
        let _ = fs::remove_file(&body_file);
        HttpResult {
            curl_exit: out.status.code().unwrap_or(-1),
            status: String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            body: String::from_utf8_lossy(&body).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `tng-devkit backend --listen ADDR` in the namespace and waits for its ready line.
    pub fn backend(&self, side: Side, name: &str, listen: &str) -> Proc {
        let devkit = bin("tng-devkit").display().to_string();
        let mut proc = self.spawn(side, name, &devkit, &["backend", "--listen", listen]);
        proc.wait_for_line("backend listening on ", Duration::from_secs(10));
        proc
    }

    /// The backend's request counter, read from inside `side` through `url_base`
    /// (`http://ADDR:PORT`); the read itself is not counted.
    pub fn backend_requests(&self, side: Side, url_base: &str) -> u64 {
        let r = self.http(side, &[&format!("{url_base}/__stats")]);
        assert_eq!(r.status, 200, "backend /__stats: {r:?}");
        let v: Value = serde_json::from_str(&r.body).expect("stats JSON");
        v["requests"].as_u64().expect("requests count")
    }

    /// Makes `/etc/hosts` inside `ip netns exec <ns>` hold `entries` (`ip netns exec`
    /// bind-mounts `/etc/netns/<ns>/hosts` over `/etc/hosts`). Removed on drop.
    pub fn hosts_file(&mut self, side: Side, entries: &str) {
        let dir = PathBuf::from("/etc/netns").join(self.ns(side));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::write(
            dir.join("hosts"),
            format!("127.0.0.1 localhost\n{entries}\n"),
        )
        .expect("write hosts");
        self.etc_dirs.push(dir);
    }

    /// `iptables-save` of the namespace without comments and packet counters.
    pub fn iptables_state(&self, side: Side) -> String {
        let saved = self.exec_ok(side, &["iptables-save"]);
        saved
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                // `:CHAIN POLICY [packets:bytes]` -> `:CHAIN POLICY`
                match (l.starts_with(':'), l.rfind(" [")) {
                    (true, Some(i)) => l[..i].to_string(),
                    _ => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `ip rule` plus the routes of table 239 (the ingress' policy routing). A table that
    /// never existed ("FIB table does not exist") and an emptied one both read as empty: the
    /// kernel keeps a FIB table once created, which routes nothing.
    pub fn routing_state(&self, side: Side) -> String {
        let rules = self.exec_ok(side, &["ip", "rule"]);
        let routes = self.exec(side, &["ip", "route", "show", "table", "239"]);
        format!(
            "ip rule:\n{rules}\ntable 239:\n{}",
            String::from_utf8_lossy(&routes.stdout)
        )
    }

    /// Pids of the processes running in the namespace.
    pub fn pids(&self, side: Side) -> Vec<u32> {
        tng_e2e::netns::namespace_pids(self.ns(side))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        tng_e2e::netns::remove_namespaces(&[&self.client, &self.gateway, &self.server]);
        for dir in &self.etc_dirs {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Claims a topology number by creating its client namespace (`ip netns add` fails when the
/// name exists, so two claimants never get the same number).
fn claim_number() -> u32 {
    for n in 1..=250u32 {
        let names = [
            format!("tngc-{n}"),
            format!("tngg-{n}"),
            format!("tngs-{n}"),
        ];
        if names
            .iter()
            .skip(1)
            .any(|ns| Path::new("/run/netns").join(ns).exists())
        {
            continue;
        }
        if try_run("ip", &["netns", "add", &names[0]]) {
            return n;
        }
    }
    panic!("no free topology number: stale namespaces? (ip netns list; ip netns del tngc-N …)");
}

/// What [`Topology::http`] got.
#[derive(Debug)]
pub struct HttpResult {
    pub curl_exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// nginx as a foreground process with everything under one directory.
pub struct Nginx {
    pub proc: Proc,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
    /// The namespace nginx runs in, for reading its status page.
    ns: String,
    /// Requests made to the (unlogged) status page so far.
    status_reads: AtomicU64,
}

/// Where Debian's `libnginx-mod-stream` installs the stream module.
const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx's `stub_status` page, on loopback in nginx's namespace and left out of the access log.
const NGINX_STATUS: &str = "127.0.0.1:47998";

impl Nginx {
    /// Starts nginx in `side` with the given `server { … }` blocks inside `http { … }`, and
    /// waits until every `listen ADDR:PORT` of them accepts connections.
    pub fn start(topo: &Topology, side: Side, name: &str, servers: &str) -> Nginx {
        Self::start_with_stream(topo, side, name, servers, "")
    }

    /// Like [`Nginx::start`], plus `stream` (L4) `server { … }` blocks when `stream` is not
    /// empty: Debian ships the stream module as a dynamic module (`libnginx-mod-stream`),
    /// loaded here by path because this configuration includes none of `/etc/nginx`.
    pub fn start_with_stream(
        topo: &Topology,
        side: Side,
        name: &str,
        servers: &str,
        stream: &str,
    ) -> Nginx {
        let root = topo.dir.join(name);
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).expect("nginx dirs");
        let access_log = root.join("access.log");
        let error_log = root.join("error.log");
        let r = root.display();
        let t = tmp.display();
        let (load_stream, stream_block) = if stream.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!("load_module {NGINX_STREAM_MODULE};\n"),
                format!("stream {{\n{stream}\n}}\n"),
            )
        };
        let conf = format!(
            // One process (no master): `Proc`'s SIGKILL would orphan a master's worker.
            "{load_stream}master_process off;\n\
             worker_processes 1;\n\
             daemon off;\n\
             user root;\n\
             pid {r}/nginx.pid;\n\
             error_log {e} info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
               log_format tng '$request_method $request_uri ct=$content_type api=$http_x_tng_ohttp_api addr=$server_addr port=$server_port status=$status';\n\
               access_log {a} tng;\n\
               client_body_temp_path {t}/body;\n\
               proxy_temp_path {t}/proxy;\n\
               fastcgi_temp_path {t}/fastcgi;\n\
               uwsgi_temp_path {t}/uwsgi;\n\
               scgi_temp_path {t}/scgi;\n\
               client_max_body_size 0;\n\
               proxy_http_version 1.1;\n\
               proxy_request_buffering off;\n\
               proxy_buffering off;\n\
               proxy_set_header Connection \"\";\n\
               server {{ listen {NGINX_STATUS}; access_log off; location / {{ stub_status; }} }}\n\
               {servers}\n\
             }}\n{stream_block}",
            e = error_log.display(),
            a = access_log.display(),
        );
        let conf_path = root.join("nginx.conf");
        fs::write(&conf_path, conf).expect("write nginx.conf");
        let prefix = format!("{r}/");
        let conf_arg = conf_path.display().to_string();
        let err_arg = error_log.display().to_string();
        let mut proc = topo.spawn(
            side,
            name,
            "/usr/sbin/nginx",
            &["-p", &prefix, "-e", &err_arg, "-c", &conf_arg],
        );
        // Every `listen ADDR:PORT;` of the server blocks (a bare TCP connect is not logged).
        let all_servers = format!("{servers}\n{stream}");
        let mut listens: Vec<String> = all_servers
            .split("listen ")
            .skip(1)
            .filter_map(|s| s.split(';').next())
            .map(|s| s.trim().to_string())
            .collect();
        listens.push(NGINX_STATUS.to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in &listens {
            loop {
                let ok = topo
                    .exec(
                        side,
                        &[
                            "bash",
                            "-c",
                            &format!("exec 3<>/dev/tcp/{}", addr.replace(':', "/")),
                        ],
                    )
                    .status
                    .success();
                if ok {
                    break;
                }
                if let Some(status) = proc.try_wait() {
                    panic!(
                        "nginx exited ({status}); log:\n{}\nerror log:\n{}",
                        proc.log_tail(20),
                        fs::read_to_string(&error_log).unwrap_or_default()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx not listening on {addr}; error log:\n{}",
                    fs::read_to_string(&error_log).unwrap_or_default()
                );
                pause(Duration::from_millis(50));
            }
        }
        Nginx {
            proc,
            access_log,
            error_log,
            ns: topo.ns(side).to_string(),
            status_reads: AtomicU64::new(0),
        }
    }

    /// Requests nginx has taken in so far (its `stub_status` counter, which counts a request
    /// when it starts), not counting the status reads. `None` when nginx is not running.
    fn requests_started(&self) -> Option<u64> {
        let reads = self.status_reads.fetch_add(1, Ordering::SeqCst) + 1;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sS", "--max-time", "5"])
            .arg(format!("http://{NGINX_STATUS}/"))
            .output()
            .expect("run curl");
        if !out.status.success() {
            return None;
        }
        let page = String::from_utf8_lossy(&out.stdout);
        // "Active connections: N \n server accepts handled requests\n A H R \n Reading: …"
        let total: u64 = page
            .lines()
            .nth(2)
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected nginx status page: {page:?}"));
        Some(total.saturating_sub(reads))
    }

    /// The access log lines so far (format: `METHOD URI ct=… api=… addr=… port=… status=…`).
    ///
    /// nginx writes a request's line only after the client has its response, so this waits
    /// (up to 5 s, for requests still running under a load) until every request a running
    /// nginx started has its line.
    pub fn access_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let started = self.requests_started().unwrap_or(0);
            let lines: Vec<String> = fs::read_to_string(&self.access_log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            if lines.len() as u64 >= started || Instant::now() > deadline {
                return lines;
            }
            pause(Duration::from_millis(20));
        }
    }

    /// Access log lines appended after `skip` earlier ones.
    pub fn access_since(&self, skip: usize) -> Vec<String> {
        self.access_lines().into_iter().skip(skip).collect()
    }
}

/// `tng launch` inside a namespace, with its control interface on `127.0.0.1:<port>` there.
pub struct NsTng {
    pub proc: Proc,
    pub name: String,
    pub side: Side,
    pub control_port: u16,
    pub log_file: PathBuf,
    pub config_path: PathBuf,
}

impl NsTng {
    /// Writes `config` (plus the control interface) and starts `tng` without waiting.
    pub fn spawn(
        topo: &Topology,
        side: Side,
        name: &str,
        mut config: Value,
        control_port: u16,
        env: &[(&str, &str)],
    ) -> NsTng {
        config["control_interface"] =
            serde_json::json!({"restful": {"host": "127.0.0.1", "port": control_port}});
        let config_path = topo
            .unique(&format!("{name}-config"))
            .with_extension("json");
        fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).expect("write config");
        let log_file = topo.unique(&format!("{name}-tng")).with_extension("log");
        let tng = bin("tng").display().to_string();
        let log_arg = log_file.display().to_string();
        let conf_arg = config_path.display().to_string();
        // `env` (found before the environment changes) sets the variables for tng only, so
        // e.g. a PATH without iptables does not keep `ip netns exec` itself from working.
        let mut args: Vec<String> = vec!["RUST_LOG=info,tng=debug".to_string()];
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        args.extend([
            tng,
            "--log-file".into(),
            log_arg,
            "launch".into(),
            "--config-file".into(),
            conf_arg,
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = topo.command(side, "/usr/bin/env", &args);
        cmd.env_remove("RUST_LOG");
        println!(
            "[e2e] {name} in {}: config {} log {}",
            topo.ns(side),
            config_path.display(),
            log_file.display()
        );
        NsTng {
            proc: Proc::spawn(name, cmd, &topo.dir),
            name: name.to_string(),
            side,
            control_port,
            log_file,
            config_path,
        }
    }

    /// Starts `tng` and waits (20 s) for `/readyz` = 200, asked from inside the namespace.
    pub fn launch(
        topo: &Topology,
        side: Side,
        name: &str,
        config: Value,
        control_port: u16,
    ) -> NsTng {
        let mut tng = NsTng::spawn(topo, side, name, config, control_port, &[]);
        tng.wait_ready(topo);
        tng
    }

    pub fn wait_ready(&mut self, topo: &Topology) {
        let url = format!("http://127.0.0.1:{}/readyz", self.control_port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = topo.http(self.side, &["--max-time", "2", &url]);
            if r.status == 200 {
                return;
            }
            if let Some(status) = self.proc.try_wait() {
                panic!(
                    "{} exited ({status}) before /readyz; log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: /readyz not 200 within 20 s; log:\n{}",
                self.name,
                self.log_tail(40)
            );
            pause(Duration::from_millis(50));
        }
    }

    /// The `--log-file` content followed by stdout/stderr.
    pub fn log(&self) -> String {
        let file = fs::read_to_string(&self.log_file).unwrap_or_default();
        format!("{file}{}", self.proc.log())
    }

    pub fn log_tail(&self, n: usize) -> String {
        tng_e2e::proc::tail(&self.log(), n)
    }

    /// Waits (up to `timeout`) for a log line containing `needle` (the log writer is
    /// asynchronous); returns it or panics with the log's tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no log line containing {needle:?} within {timeout:?}; log:\n{}",
                self.name,
                self.log_tail(40)
            );
            pause(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait (15 s): the exit code (`None` when killed by a signal).
    pub fn stop(&mut self) -> Option<i32> {
        let status = self.proc.terminate();
        status.code()
    }

    /// Sends `sig` (`TERM`, `INT`, …) and waits (15 s): the exit code.
    pub fn stop_with(&mut self, sig: &str) -> Option<i32> {
        self.proc.signal(sig);
        match self.proc.wait_timeout(Duration::from_secs(15)) {
            Some(status) => status.code(),
            None => panic!(
                "{} ignored SIG{sig} for 15 s; log:\n{}",
                self.name,
                self.log_tail(20)
            ),
        }
    }

    /// SIGKILL and wait for the exit.
    pub fn kill(&mut self) {
        self.proc.signal("KILL");
        assert!(
            self.proc.wait_timeout(Duration::from_secs(10)).is_some(),
            "{} survived SIGKILL",
            self.name
        );
    }

    /// Runs a `tng launch` that must exit by itself within 15 s: `(exit code, stdout+stderr
    /// and log file)`.
    pub fn expect_failure(
        topo: &Topology,
        side: Side,
        name: &str,
        config: Value,
    ) -> (Option<i32>, String) {
        Self::expect_failure_env(topo, side, name, config, &[])
    }

    /// [`NsTng::expect_failure`] with extra environment variables for tng.
    pub fn expect_failure_env(
        topo: &Topology,
        side: Side,
        name: &str,
        config: Value,
        env: &[(&str, &str)],
    ) -> (Option<i32>, String) {
        let mut tng = NsTng::spawn(topo, side, name, config, 9, env);
        match tng.proc.wait_timeout(Duration::from_secs(15)) {
            Some(status) => (status.code(), tng.log()),
            None => panic!(
                "{name} kept running although it should have refused to start; log:\n{}",
                tng.log_tail(30)
            ),
        }
    }
}

/// `tcpdump -i any -w FILE -U` in a namespace.
pub struct Tcpdump {
    proc: Proc,
    side: Side,
    pub file: PathBuf,
}

impl Tcpdump {
    /// Starts capturing on every interface of `side` and waits until tcpdump reports that it
    /// is listening. Always `any`: [`Tcpdump::stop`]'s barrier travels over `lo`.
    pub fn start(topo: &Topology, side: Side) -> Tcpdump {
        Self::start_filtered(topo, side, "tcp")
    }

    /// [`Tcpdump::start`] with a capture filter of its own (which must let TCP through, for
    /// the barrier).
    pub fn start_filtered(topo: &Topology, side: Side, filter: &str) -> Tcpdump {
        let file = topo.unique("capture-any").with_extension("pcap");
        let file_arg = file.display().to_string();
        let mut proc = topo.spawn(
            side,
            "tcpdump-any",
            "tcpdump",
            &[
                "-i", "any", "-n", "-s", "0",
                // Packets queue in the kernel while tcpdump waits for CPU; the default 2 MiB
                // overflowed on a loaded machine (see `stop`). Not `--immediate-mode`: its
                // ring has one full-snaplen slot per packet, eight of them at 2 MiB.
                "-B", "65536", "-U", "-Z", "root", "-w", &file_arg, filter,
            ],
        );
        proc.wait_for_line("listening on", Duration::from_secs(10));
        Tcpdump { proc, side, file }
    }

    /// Stops the capture and returns the file's bytes, with every packet sent before the call.
    ///
    /// tcpdump drops what it has not yet read from the kernel when it is interrupted, and on a
    /// loaded machine a fixed pause is not enough. So a barrier goes last: an HTTP exchange
    /// with a throw-away backend on the namespace's loopback, whose response is awaited in
    /// the file (it carries none of the words tests look for). The capture socket delivers
    /// packets in order, so everything earlier is in — unless the kernel dropped packets
    /// because its capture buffer was full, which tcpdump reports on exit and which fails
    /// here: an incomplete capture cannot prove that something never crossed the wire.
    pub fn stop(mut self, topo: &Topology) -> Vec<u8> {
        let barrier = format!("pcap-barrier-{}", topo.n);
        let mut backend = topo.backend(self.side, "pcap-barrier", "127.0.0.1:47999");
        // `/headers` answers with JSON, so the quoted value appears in the response only.
        let r = topo.http(
            self.side,
            &[
                "-H",
                &format!("x-barrier: {barrier}"),
                "http://127.0.0.1:47999/headers",
            ],
        );
        assert_eq!(r.status, 200, "barrier request: {r:?}");
        let seen = format!("\"{barrier}\"");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs::read(&self.file).is_ok_and(|pcap| contains(&pcap, &seen)) {
            assert!(
                Instant::now() < deadline,
                "tcpdump did not write the barrier response within 20 s"
            );
            pause(Duration::from_millis(50));
        }
        backend.terminate();
        self.proc.signal("INT");
        assert!(
            self.proc.wait_timeout(Duration::from_secs(10)).is_some(),
            "tcpdump did not stop"
        );
        tng_e2e::assert_capture_complete(&self.proc.log());
        fs::read(&self.file).unwrap_or_else(|e| panic!("read {}: {e}", self.file.display()))
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The standard egress of the founding scenario (seed shape), with `capture_local_traffic`.
pub fn egress_config(port: u16, capture_local_traffic: bool) -> Value {
    serde_json::json!({"add_egress": [{
        "netfilter": {"capture_dst": {"port": port}, "capture_local_traffic": capture_local_traffic},
        "ohttp": {"key": {"source": "self_generated"}},
        "no_ra": true
    }]})
}

/// The standard ingress of the founding scenario (seed shape) with the given `capture_dst`.
pub fn ingress_config(capture_dst: Value) -> Value {
    serde_json::json!({"add_ingress": [{
        "netfilter": {"capture_dst": capture_dst},
        "ohttp": {"path_rewrites": [{"match_regex": "^/foo/([^/]+)([/]?.*)$", "substitution": "/foo/$1"}]},
        "no_ra": true
    }]})
}

/// The gateway's nginx of the founding scenario: `GW:8080` routes `/foo/`, `/bar/` and `/` to
/// the server's 8080; `GW:9090` passes everything to the server's 9090. `extra` is appended.
pub fn gateway_nginx(topo: &Topology, extra: &str) -> Nginx {
    let (gw, s) = (topo.gw_ip, topo.server_ip);
    let servers = format!(
        "server {{ listen {gw}:8080; \
           location /foo/ {{ proxy_pass http://{s}:8080; }} \
           location /bar/ {{ proxy_pass http://{s}:8080; }} \
           location = / {{ proxy_pass http://{s}:8080; }} }}\n\
         server {{ listen {gw}:9090; location / {{ proxy_pass http://{s}:9090; }} }}\n{extra}"
    );
    Nginx::start(topo, Side::Gateway, "nginx", &servers)
}

/// Splits an access-log line into its method, URI and `key=value` fields.
#[derive(Debug, Clone)]
pub struct Access {
    pub method: String,
    pub uri: String,
    pub content_type: String,
    pub api: String,
    pub addr: String,
    pub port: u16,
    pub status: u16,
}

pub fn parse_access(line: &str) -> Access {
    let mut words = line.split(' ');
    let method = words.next().unwrap_or_default().to_string();
    let uri = words.next().unwrap_or_default().to_string();
    let field = |key: &str| -> String {
        line.split(' ')
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    Access {
        method,
        uri,
        content_type: field("ct="),
        api: field("api="),
        addr: field("addr="),
        port: field("port=").parse().unwrap_or(0),
        status: field("status=").parse().unwrap_or(0),
    }
}
