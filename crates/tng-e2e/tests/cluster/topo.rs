//! The business-cluster topology of issue 6, in network namespaces:
//!
//! ```text
//!                                  ┌─ s1 198.19.N.11: egress :8080 (peer_shared :8301), backend, AA
//! client ── gateway ── bridge ─────┼─ s2 198.19.N.12: egress :8080 (peer_shared :8301), backend, AA
//! ingress    nginx least_conn      └─ s3 198.19.N.13: egress :8080 (peer_shared :8301), backend, AA
//! (mapping)  sample AS :8000
//! 198.18.N.1 198.18.N.2 / 198.19.N.1
//! ```
//!
//! The client reaches the gateway over one veth pair; the gateway and the three server nodes
//! share one bridge (so the nodes gossip and open their attested key channels directly to each
//! other). The Attestation Service runs in the gateway namespace on `0.0.0.0:8000`: the
//! ingress asks it at 198.18.N.2, the nodes at 198.19.N.1. Each node has its own sample AA
//! (its own socket) so one node can be given a measurement the AS policy rejects.
//!
//! `N` is claimed by creating the namespace `tclNc` (`ip netns add` fails when it exists), so
//! parallel test threads or binaries never share a namespace. Nothing is added to the host's
//! own namespace. Dropping a [`Cluster`] kills its processes, then every process left in its
//! namespaces, then deletes the namespaces.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use tng_e2e::client::H1Conn;
use tng_e2e::{bin, pause, test_dir, Proc};

use super::ns;

pub const NODES: usize = 3;
/// The egress listener of every node (what nginx's upstream names).
pub const EGRESS_PORT: u16 = 8080;
/// The backend of every node, on the node's loopback.
pub const BACKEND_PORT: u16 = 9000;
/// The listener a netfilter egress's REDIRECT rule points at.
pub const NETFILTER_LISTEN: u16 = 15080;
/// Gossip (UDP) and key channel (TCP) of every node.
pub const CLUSTER_PORT: u16 = 8301;
/// Control interface of every node, on the node's loopback.
pub const NODE_CONTROL: u16 = 7001;
/// The ingress (mapping) in the client namespace, on its loopback.
pub const INGRESS_PORT: u16 = 10001;
pub const INGRESS_CONTROL: u16 = 7000;
pub const AS_PORT: u16 = 8000;
/// The gateway's nginx, facing the client.
pub const GW_PORT: u16 = 8080;
/// `rotation_interval` of the cluster, seconds.
pub const ROTATION_SECS: u64 = 5;
/// The measurement register the AS policy rejects.
pub const BAD_REGISTER: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// The AS's `default` policy: every trust claim affirmed for sample evidence, unless the
/// measurement register is [`BAD_REGISTER`] (then the openanolis contraindicating defaults).
fn policy() -> String {
    format!(
        "package policy\n\n\
         default executables := 33\n\
         default hardware := 97\n\
         default configuration := 36\n\
         default file_system := 35\n\n\
         trusted if {{\n\
         \tinput.sample\n\
         \tinput.sample.measure_register != \"{BAD_REGISTER}\"\n\
         }}\n\n\
         executables := 2 if trusted\n\
         hardware := 2 if trusted\n\
         configuration := 2 if trusted\n\
         file_system := 2 if trusted\n"
    )
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) {
    tng_e2e::netns::run(program, args);
}

use tng_e2e::netns::try_run;

/// The namespaces and links. Dropped last: kills what is left inside, deletes them.
pub struct Net {
    pub n: u8,
    pub client: String,
    pub gateway: String,
    pub servers: Vec<String>,
    /// The server end of each node's link (what a partition takes down).
    pub server_ifs: Vec<String>,
}

impl Net {
    fn new() -> Net {
        let n = claim();
        let mut net = Net {
            n,
            client: format!("tcl{n}c"),
            gateway: format!("tcl{n}g"),
            servers: Vec::new(),
            server_ifs: Vec::new(),
        };
        // From here on a failure is cleaned up by Drop.
        run("ip", &["netns", "add", &net.gateway]);
        for i in 1..=NODES {
            let name = format!("tcl{n}s{i}");
            run("ip", &["netns", "add", &name]);
            net.servers.push(name);
        }
        let (c, g) = (net.client.clone(), net.gateway.clone());
        let (c_if, g_if, br) = (format!("tcl{n}c"), format!("tcl{n}gc"), format!("tcl{n}br"));
        run(
            "ip",
            &[
                "link", "add", &c_if, "netns", &c, "type", "veth", "peer", "name", &g_if, "netns",
                &g,
            ],
        );
        net.ip(
            &c,
            &[
                "addr",
                "add",
                &format!("{}/24", net.client_ip()),
                "dev",
                &c_if,
            ],
        );
        net.ip(&c, &["link", "set", &c_if, "up"]);
        net.ip(
            &g,
            &[
                "addr",
                "add",
                &format!("{}/24", net.gw_client_ip()),
                "dev",
                &g_if,
            ],
        );
        net.ip(&g, &["link", "set", &g_if, "up"]);
        net.ip(&g, &["link", "add", &br, "type", "bridge"]);
        net.ip(
            &g,
            &[
                "addr",
                "add",
                &format!("{}/24", net.gw_lan_ip()),
                "dev",
                &br,
            ],
        );
        net.ip(&g, &["link", "set", &br, "up"]);
        for i in 0..NODES {
            let s = net.servers[i].clone();
            let (s_if, b_if) = (format!("tcl{n}s{}", i + 1), format!("tcl{n}b{}", i + 1));
            run(
                "ip",
                &[
                    "link", "add", &s_if, "netns", &s, "type", "veth", "peer", "name", &b_if,
                    "netns", &g,
                ],
            );
            net.ip(&g, &["link", "set", &b_if, "master", &br]);
            net.ip(&g, &["link", "set", &b_if, "up"]);
            net.ip(
                &s,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", net.server_ip(i)),
                    "dev",
                    &s_if,
                ],
            );
            net.ip(&s, &["link", "set", &s_if, "up"]);
            net.server_ifs.push(s_if);
        }
        for ns in net.all() {
            net.ip(&ns, &["link", "set", "lo", "up"]);
        }
        net
    }

    fn all(&self) -> Vec<String> {
        let mut all = vec![self.client.clone(), self.gateway.clone()];
        all.extend(self.servers.iter().cloned());
        all
    }

    pub fn ip(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, 1)
    }

    pub fn gw_client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.n, 2)
    }

    pub fn gw_lan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.n, 1)
    }

    /// Node `i` (0-based).
    pub fn server_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.n, 11 + i as u8)
    }

    /// A `Command` running `program args` inside namespace `ns`.
    pub fn command(&self, ns: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        cmd
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let all = self.all();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        tng_e2e::netns::remove_namespaces(&all);
    }
}

/// Claims a number by creating `tclNc` (fails when it exists, so claimants never collide).
fn claim() -> u8 {
    for n in 100..=199u8 {
        let taken = (1..=NODES)
            .map(|i| format!("tcl{n}s{i}"))
            .chain([format!("tcl{n}g")])
            .any(|ns| Path::new("/run/netns").join(ns).exists());
        if taken {
            continue;
        }
        if try_run("ip", &["netns", "add", &format!("tcl{n}c")]) {
            return n;
        }
    }
    panic!("no free cluster topology number: stale namespaces? (ip netns list | grep tcl)");
}

/// nginx in the gateway namespace: `GW:8080` → `upstream cluster { least_conn; … }`.
pub struct Nginx {
    pub proc: Proc,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
}

impl Nginx {
    /// The configuration for files under `root` (its logs are `root/access.log` and
    /// `root/error.log`) with `nodes` in the upstream block.
    fn conf_text(root: &Path, net: &Net, nodes: &[usize]) -> String {
        let r = root.display();
        let upstream: String = nodes
            .iter()
            .map(|&i| {
                format!(
                    "    server {}:{EGRESS_PORT} max_fails=1 fail_timeout=2s;\n",
                    net.server_ip(i)
                )
            })
            .collect();
        format!(
            // One process (no master): `Proc`'s SIGKILL would orphan a master's worker.
            "master_process off;\n\
             worker_processes 1;\n\
             daemon off;\n\
             user root;\n\
             pid {r}/nginx.pid;\n\
             error_log {e} info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               log_format cluster '$msec up=$upstream_addr us=$upstream_status status=$status api=$http_x_tng_ohttp_api uri=$request_uri';\n\
               access_log {a} cluster;\n\
               client_body_temp_path {r}/tmp/body;\n\
               proxy_temp_path {r}/tmp/proxy;\n\
               fastcgi_temp_path {r}/tmp/fastcgi;\n\
               uwsgi_temp_path {r}/tmp/uwsgi;\n\
               scgi_temp_path {r}/tmp/scgi;\n\
               client_max_body_size 0;\n\
               proxy_http_version 1.1;\n\
               proxy_request_buffering off;\n\
               proxy_buffering off;\n\
               proxy_set_header Connection \"\";\n\
               proxy_connect_timeout 2s;\n\
               proxy_read_timeout 20s;\n\
               proxy_send_timeout 20s;\n\
               upstream cluster {{\n    least_conn;\n{upstream}  }}\n\
               server {{ listen {gw}:{GW_PORT}; location / {{ proxy_pass http://cluster; }} }}\n\
             }}\n",
            e = root.join("error.log").display(),
            a = root.join("access.log").display(),
            gw = net.gw_client_ip(),
        )
    }

    fn start(net: &Net, dir: &Path, nodes: &[usize]) -> Nginx {
        let root = dir.join("nginx");
        fs::create_dir_all(root.join("tmp")).expect("nginx dirs");
        let conf = root.join("nginx.conf");
        let (access_log, error_log) = (root.join("access.log"), root.join("error.log"));
        fs::write(&conf, Nginx::conf_text(&root, net, nodes)).expect("write nginx.conf");
        let prefix = format!("{}/", root.display());
        let (conf_arg, err_arg) = (conf.display().to_string(), error_log.display().to_string());
        let cmd = net.command(
            &net.gateway,
            "/usr/sbin/nginx",
            &["-p", &prefix, "-e", &err_arg, "-c", &conf_arg],
        );
        let mut nginx = Nginx {
            proc: Proc::spawn("nginx", cmd, dir),
            access_log,
            error_log,
        };
        let addr = format!("{}:{GW_PORT}", net.gw_client_ip());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = addr.clone();
            if ns::block_in(&net.gateway, move || async move { ns::connect(&a).await }).is_ok() {
                break;
            }
            if let Some(status) = nginx.proc.try_wait() {
                panic!(
                    "nginx exited ({status}): {}\n{}",
                    nginx.proc.log_tail(20),
                    fs::read_to_string(&nginx.error_log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx not listening on {addr}");
            pause(Duration::from_millis(50));
        }
        nginx
    }

    /// Access-log entries so far.
    pub fn entries(&self) -> Vec<Access> {
        fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(Access::parse)
            .collect()
    }
}

/// One access-log line.
#[derive(Debug, Clone)]
pub struct Access {
    /// `$msec`: Unix time of the log write, seconds.
    pub msec: f64,
    /// Every upstream tried, in order (`$upstream_addr` split at ", ").
    pub upstreams: Vec<String>,
    pub status: u16,
    pub api: String,
}

impl Access {
    fn parse(line: &str) -> Access {
        // `$msec up=A[, B…] us=S[, T…] status=S api=… uri=…`: values may contain ", ".
        let between = |start: &str, end: &str| -> String {
            line.split_once(start)
                .map(|(_, rest)| rest.split(end).next().unwrap_or_default())
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Access {
            msec: line
                .split(' ')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0.0),
            upstreams: between(" up=", " us=")
                .split([',', ' '])
                .filter(|s| !s.is_empty() && *s != "-")
                .map(str::to_string)
                .collect(),
            status: between(" status=", " api=").parse().unwrap_or(0),
            api: between(" api=", " uri="),
        }
    }

    /// The upstream that produced the response (the last one tried).
    pub fn served_by(&self) -> Option<&str> {
        self.upstreams.last().map(String::as_str)
    }
}

/// One egress node process.
pub struct Node {
    pub proc: Proc,
    pub log_file: PathBuf,
}

impl Node {
    /// The `--log-file` content followed by stdout/stderr.
    pub fn log(&self) -> String {
        let file = fs::read_to_string(&self.log_file).unwrap_or_default();
        format!("{file}{}", self.proc.log())
    }

    pub fn log_tail(&self, n: usize) -> String {
        tng_e2e::proc::tail(&self.log(), n)
    }
}

/// What `/status/egress/0/ohttp/keys` of a node says.
#[derive(Debug, Clone)]
pub struct View {
    pub raw: Value,
    pub ready: bool,
    pub node_id: String,
    pub leader: Option<String>,
    pub digest: String,
    /// `(public_key, status)` of every local key.
    pub keys: Vec<(String, String)>,
}

impl View {
    fn parse(raw: Value) -> View {
        let cluster = &raw["cluster"];
        let keys = raw["local_keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .map(|k| {
                        (
                            k["public_key"].as_str().unwrap_or_default().to_string(),
                            k["status"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        View {
            ready: cluster["ready"].as_bool().unwrap_or(false),
            node_id: cluster["node_id"].as_str().unwrap_or_default().to_string(),
            leader: cluster["leader"].as_str().map(str::to_string),
            digest: cluster["keys_digest"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            keys,
            raw,
        }
    }

    /// Public keys with status `Active`.
    pub fn active(&self) -> Vec<String> {
        let mut active: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, s)| s == "Active")
            .map(|(k, _)| k.clone())
            .collect();
        active.sort();
        active
    }

    /// `(node_id, alive, ready)` of every member the node lists.
    pub fn members(&self) -> Vec<(String, bool, bool)> {
        self.raw["cluster"]["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        (
                            m["node_id"].as_str().unwrap_or_default().to_string(),
                            m["alive"].as_bool().unwrap_or(false),
                            m["ready"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Everything of one cluster test. Field order = drop order: processes, then namespaces.
pub struct Cluster {
    pub nodes: Vec<Option<Node>>,
    pub ingress: Option<Proc>,
    pub nginx: Nginx,
    _backends: Vec<Proc>,
    _aas: Vec<Proc>,
    as_proc: Proc,
    pub dir: PathBuf,
    starts: usize,
    /// Nodes whose egress captures with netfilter (the others use mapping).
    netfilter: Vec<usize>,
    pub net: Net,
}

impl Cluster {
    /// Namespaces, the AS, one AA and one backend per node (`bad` nodes' AAs report
    /// [`BAD_REGISTER`]), nginx with `upstream` in its upstream block. No tng yet.
    ///
    /// Nodes in `netfilter` get the founding scenario's egress shape: the backend itself
    /// listens on the node's `:8080` and the egress captures that port (nat REDIRECT to its
    /// own listener); the other nodes' egress is a mapping `IP:8080` → backend
    /// `127.0.0.1:9000`. Either way nginx talks to `IP:8080`.
    pub fn new(label: &str, bad: &[usize], netfilter: &[usize], upstream: &[usize]) -> Cluster {
        let dir = test_dir(label);
        let net = Net::new();
        println!(
            "[e2e] cluster topology {} ({label}): client {} gateway {}/{} nodes {:?}; files in {}",
            net.n,
            net.client_ip(),
            net.gw_client_ip(),
            net.gw_lan_ip(),
            (0..NODES).map(|i| net.server_ip(i)).collect::<Vec<_>>(),
            dir.display()
        );
        let devkit = bin("tng-devkit").display().to_string();

        let policy_file = dir.join("policy.rego");
        fs::write(&policy_file, policy()).expect("write policy");
        let (listen, workdir, policy_arg) = (
            format!("0.0.0.0:{AS_PORT}"),
            dir.join("as").display().to_string(),
            format!("default={}", policy_file.display()),
        );
        let cmd = net.command(
            &net.gateway,
            &devkit,
            &[
                "as",
                "--listen",
                &listen,
                "--workdir",
                &workdir,
                "--policy",
                &policy_arg,
            ],
        );
        let mut as_proc = Proc::spawn("as", cmd, &dir);

        let mut aas = Vec::new();
        let mut backends = Vec::new();
        for i in 0..NODES {
            let socket = format!("unix://{}", dir.join(format!("aa{}.sock", i + 1)).display());
            let mut args = vec!["aa", "--socket", &socket];
            if bad.contains(&i) {
                args.extend(["--measure-register", BAD_REGISTER]);
            }
            let cmd = net.command(&net.servers[i], &devkit, &args);
            aas.push(Proc::spawn(&format!("aa{}", i + 1), cmd, &dir));
            let listen = if netfilter.contains(&i) {
                format!("0.0.0.0:{EGRESS_PORT}")
            } else {
                format!("127.0.0.1:{BACKEND_PORT}")
            };
            let cmd = net.command(&net.servers[i], &devkit, &["backend", "--listen", &listen]);
            backends.push(Proc::spawn(&format!("backend{}", i + 1), cmd, &dir));
        }
        as_proc.wait_for_line("attestation service listening on", Duration::from_secs(30));
        for p in aas.iter_mut() {
            p.wait_for_line("attestation agent listening on", Duration::from_secs(10));
        }
        for p in backends.iter_mut() {
            p.wait_for_line("backend listening on ", Duration::from_secs(10));
        }
        let nginx = Nginx::start(&net, &dir, upstream);
        Cluster {
            nodes: (0..NODES).map(|_| None).collect(),
            ingress: None,
            nginx,
            _backends: backends,
            _aas: aas,
            as_proc,
            dir,
            starts: 0,
            netfilter: netfilter.to_vec(),
            net,
        }
    }

    /// `198.19.N.1i:8301`, node `i`'s id and peer address.
    pub fn node_id(&self, i: usize) -> String {
        format!("{}:{CLUSTER_PORT}", self.net.server_ip(i))
    }

    /// The egress configuration of node `i`: mapping `IP:8080` → its backend (or netfilter
    /// capture of `:8080`, see [`Cluster::new`]), `attest` for the ingress, and a `peer_shared` key whose channel attests with the node's AA and
    /// verifies peers at the AS. `peers` are node indexes; `peers_file` is added when given.
    pub fn egress_config(&self, i: usize, peers: &[usize], peers_file: Option<&Path>) -> Value {
        let ip = self.net.server_ip(i).to_string();
        let aa = format!(
            "unix://{}",
            self.dir.join(format!("aa{}.sock", i + 1)).display()
        );
        let mut key = json!({
            "source": "peer_shared",
            "rotation_interval": ROTATION_SECS,
            "host": ip,
            "port": CLUSTER_PORT,
            "peers": peers.iter().map(|&p| self.node_id(p)).collect::<Vec<_>>(),
            "attest": {"aa_addr": aa},
            "verify": {"as_addr": format!("http://{}:{AS_PORT}/", self.net.gw_lan_ip()),
                       "policy_ids": ["default"]},
        });
        if let Some(file) = peers_file {
            key["peers_file"] = json!(file.display().to_string());
        }
        let mut egress = json!({"ohttp": {"key": key}, "attest": {"aa_addr": aa}});
        if self.netfilter.contains(&i) {
            egress["netfilter"] = json!({"capture_dst": {"port": EGRESS_PORT},
                                         "listen_port": NETFILTER_LISTEN});
        } else {
            egress["mapping"] = json!({"in": {"host": ip, "port": EGRESS_PORT},
                                       "out": {"host": "127.0.0.1", "port": BACKEND_PORT}});
        }
        json!({
            "add_egress": [egress],
            "control_interface": {"restful": {"host": "127.0.0.1", "port": NODE_CONTROL}},
        })
    }

    /// `tng launch` of `config` (written to `config_path`) inside namespace `ns`, logging to
    /// `log_file` at `rust_log`.
    fn tng_command(
        &self,
        ns: &str,
        config: &Value,
        config_path: &Path,
        log_file: &Path,
        rust_log: &str,
    ) -> Command {
        fs::write(config_path, serde_json::to_vec_pretty(config).unwrap()).expect("config");
        let tng = bin("tng").display().to_string();
        let (log_arg, conf_arg) = (
            log_file.display().to_string(),
            config_path.display().to_string(),
        );
        let rust_log = format!("RUST_LOG={rust_log}");
        let mut cmd = self.net.command(
            ns,
            "/usr/bin/env",
            &[
                &rust_log,
                &tng,
                "--log-file",
                &log_arg,
                "launch",
                "--config-file",
                &conf_arg,
            ],
        );
        // The test runner's RUST_BACKTRACE would attach a backtrace to every logged error.
        cmd.env_remove("RUST_LOG").env_remove("RUST_BACKTRACE");
        cmd
    }

    /// Starts node `i`'s egress with `config` (does not wait for anything).
    pub fn start_node_with(&mut self, i: usize, config: Value) {
        assert!(self.nodes[i].is_none(), "node {} already running", i + 1);
        self.starts += 1;
        let k = self.starts;
        let config_path = self.dir.join(format!("node{}-{k}.json", i + 1));
        let log_file = self.dir.join(format!("node{}-{k}.log", i + 1));
        let cmd = self.tng_command(
            &self.net.servers[i],
            &config,
            &config_path,
            &log_file,
            "info,tng=debug,tng_cluster=debug",
        );
        println!(
            "[e2e] node{} ({}): config {} log {}",
            i + 1,
            self.node_id(i),
            config_path.display(),
            log_file.display()
        );
        let proc = Proc::spawn(&format!("node{}-{k}", i + 1), cmd, &self.dir);
        self.nodes[i] = Some(Node { proc, log_file });
    }

    pub fn start_node(&mut self, i: usize, peers: &[usize]) {
        let config = self.egress_config(i, peers, None);
        self.start_node_with(i, config);
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is not running", i + 1))
    }

    /// SIGKILL node `i` and wait for it to be gone.
    pub fn kill_node(&mut self, i: usize) -> Node {
        let mut node = self.nodes[i].take().expect("node running");
        node.proc.signal("KILL");
        assert!(
            node.proc.wait_timeout(Duration::from_secs(10)).is_some(),
            "node {} survived SIGKILL",
            i + 1
        );
        node
    }

    /// Panics with the node's log if its process exited.
    pub fn assert_alive(&mut self, i: usize) {
        let node = self.nodes[i].as_mut().expect("node running");
        if let Some(status) = node.proc.try_wait() {
            panic!(
                "node {} exited ({status}); log:\n{}",
                i + 1,
                node.log_tail(60)
            );
        }
    }

    /// `GET /readyz` of node `i` (status 0: nothing answered).
    pub fn readyz(&self, i: usize) -> u16 {
        let addr = format!("127.0.0.1:{NODE_CONTROL}");
        ns::block_in(&self.net.servers[i], move || async move {
            ns::get(&addr, "/readyz").await.status
        })
    }

    /// Node `i`'s key status, `None` when it does not answer 200 with JSON.
    pub fn view(&self, i: usize) -> Option<View> {
        let addr = format!("127.0.0.1:{NODE_CONTROL}");
        let got = ns::block_in(&self.net.servers[i], move || async move {
            ns::get(&addr, "/status/egress/0/ohttp/keys").await
        });
        if got.status != 200 {
            return None;
        }
        serde_json::from_str(&got.body).ok().map(View::parse)
    }

    /// Whether the gateway can open a TCP connection to node `i`'s egress port.
    pub fn egress_accepts(&self, i: usize) -> Result<(), String> {
        let addr = format!("{}:{EGRESS_PORT}", self.net.server_ip(i));
        ns::block_in(&self.net.gateway, move || async move {
            ns::connect(&addr).await
        })
    }

    /// The public key (hex) node `i` advertises on its key-config endpoint, asked from the
    /// gateway the way an ingress asks through nginx (no attestation requested).
    pub fn advertised_key(&self, i: usize) -> Result<String, String> {
        let addr = format!("{}:{EGRESS_PORT}", self.net.server_ip(i));
        ns::block_in(&self.net.gateway, move || async move {
            let fetch = async {
                let mut conn = H1Conn::connect(&addr).await.map_err(|e| format!("{e:#}"))?;
                let req = Request::post("/")
                    .header("x-tng-ohttp-api", "/tng/key-config")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(
                        br#"{"attestation_request":null}"#,
                    )))
                    .map_err(|e| e.to_string())?;
                conn.fetch(req).await.map_err(|e| format!("{e:#}"))
            };
            let resp = tokio::time::timeout(Duration::from_secs(5), fetch)
                .await
                .map_err(|_| "key-config: no answer within 5 s".to_string())??;
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            if resp.status != 200 {
                return Err(format!("key-config: {} {body}", resp.status));
            }
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            let list = v["hpke_key_config"]["encoded_key_config_list"]
                .as_str()
                .ok_or(format!("no encoded_key_config_list: {body}"))?;
            let bytes = STANDARD.decode(list).map_err(|e| format!("{e}: {body}"))?;
            // uint16 length, key_id, uint16 KEM (0x0020, X25519), 32-byte public key.
            if bytes.len() < 37 || bytes[3..5] != [0x00, 0x20] {
                return Err(format!(
                    "unexpected key config list {}",
                    hex::encode(&bytes)
                ));
            }
            Ok(hex::encode(&bytes[5..37]))
        })
    }

    /// Requests node `i`'s backend has received (its `/__stats`, asked on the node's
    /// loopback, which no capture rule covers; the query itself is not counted).
    pub fn backend_requests(&self, i: usize) -> u64 {
        let port = if self.netfilter.contains(&i) {
            EGRESS_PORT
        } else {
            BACKEND_PORT
        };
        let addr = format!("127.0.0.1:{port}");
        let got = ns::block_in(&self.net.servers[i], move || async move {
            ns::get(&addr, "/__stats").await
        });
        assert_eq!(got.status, 200, "node {} backend /__stats: {got:?}", i + 1);
        let v: Value = serde_json::from_str(&got.body).expect("stats JSON");
        v["requests"].as_u64().expect("requests count")
    }

    /// Waits (20 s) until netfilter node `i`'s nat table redirects to its egress listener;
    /// returns the rules.
    pub fn wait_capture_rules(&mut self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let needle = format!("--to-ports {NETFILTER_LISTEN}");
        loop {
            let out = self
                .net
                .command(&self.net.servers[i], "iptables-save", &["-t", "nat"])
                .stdin(Stdio::null())
                .output()
                .expect("iptables-save");
            let rules = String::from_utf8_lossy(&out.stdout).into_owned();
            if rules.contains(&needle) {
                return rules;
            }
            self.assert_alive(i);
            assert!(
                Instant::now() < deadline,
                "node {}: no REDIRECT to {NETFILTER_LISTEN} within 20 s:\n{rules}",
                i + 1
            );
            pause(Duration::from_millis(50));
        }
    }

    /// Waits until node `i`'s `/readyz` is 200; returns how long it took.
    pub fn wait_ready(&mut self, i: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.readyz(i) == 200 {
                return start.elapsed();
            }
            self.assert_alive(i);
            assert!(
                start.elapsed() < limit,
                "node {}: /readyz not 200 within {limit:?}; status {:?}\nlog:\n{}",
                i + 1,
                self.view(i).map(|v| v.raw),
                self.node(i).log_tail(60)
            );
            pause(Duration::from_millis(100));
        }
    }

    /// One consistent-looking snapshot of `nodes`: `Ok(views)` when every one of them is
    /// ready, has an Active key, and lists exactly the same keys with the same statuses and
    /// the same digest (so the same advertised key: the rule picking it is deterministic);
    /// `Err(why not)` otherwise.
    pub fn converged(&self, nodes: &[usize]) -> Result<Vec<View>, String> {
        let mut views = Vec::new();
        for &i in nodes {
            match self.view(i) {
                Some(v) => views.push(v),
                None => return Err(format!("node {}: no status", i + 1)),
            }
        }
        let first = &views[0];
        for (v, &i) in views.iter().zip(nodes) {
            if !v.ready {
                return Err(format!("node {} not ready: {}", i + 1, v.raw));
            }
            if v.active().is_empty() {
                return Err(format!("node {}: no Active key: {}", i + 1, v.raw));
            }
            if v.digest.is_empty() || v.digest != first.digest || v.keys != first.keys {
                return Err(format!(
                    "node {} differs from node {}: {} vs {}",
                    i + 1,
                    nodes[0] + 1,
                    v.raw,
                    first.raw
                ));
            }
        }
        Ok(views)
    }

    /// Polls until [`Cluster::converged`] holds for `nodes`; returns the views and how long.
    pub fn wait_converged(&self, nodes: &[usize], limit: Duration) -> (Vec<View>, Duration) {
        let start = Instant::now();
        loop {
            match self.converged(nodes) {
                Ok(views) => return (views, start.elapsed()),
                Err(why) => assert!(
                    start.elapsed() < limit,
                    "nodes {:?} not converged within {limit:?}: {why}\n{}",
                    nodes.iter().map(|i| i + 1).collect::<Vec<_>>(),
                    self.logs_tail(nodes, 25)
                ),
            }
            pause(Duration::from_millis(200));
        }
    }

    /// Log tails of `nodes`, for failure messages.
    pub fn logs_tail(&self, nodes: &[usize], n: usize) -> String {
        nodes
            .iter()
            .map(|&i| match &self.nodes[i] {
                Some(node) => format!("--- node{} log:\n{}", i + 1, node.log_tail(n)),
                None => format!("--- node{}: not running", i + 1),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The ingress in the client namespace: mapping `127.0.0.1:10001` → nginx, verifying the
    /// nodes (background check at the AS). Waits for its `/readyz`.
    pub fn start_ingress(&mut self) {
        let config = json!({
            "add_ingress": [{
                "mapping": {"in": {"host": "127.0.0.1", "port": INGRESS_PORT},
                            "out": {"host": self.net.gw_client_ip().to_string(), "port": GW_PORT}},
                "ohttp": {},
                "verify": {"as_addr": format!("http://{}:{AS_PORT}/", self.net.gw_client_ip()),
                           "policy_ids": ["default"]},
            }],
            "control_interface": {"restful": {"host": "127.0.0.1", "port": INGRESS_CONTROL}},
        });
        let config_path = self.dir.join("ingress.json");
        let log_file = self.dir.join("ingress-tng.log");
        let cmd = self.tng_command(
            &self.net.client,
            &config,
            &config_path,
            &log_file,
            "info,tng=debug",
        );
        let mut proc = Proc::spawn("ingress", cmd, &self.dir);
        let addr = format!("127.0.0.1:{INGRESS_CONTROL}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = addr.clone();
            let got = ns::block_in(&self.net.client, move || async move {
                ns::get(&a, "/readyz").await
            });
            if got.status == 200 {
                break;
            }
            if let Some(status) = proc.try_wait() {
                panic!("ingress exited ({status}): {}", proc.log_tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "ingress not ready: {} {}{}",
                got.status,
                got.body,
                got.error
            );
            pause(Duration::from_millis(100));
        }
        println!("[e2e] ingress log {}", log_file.display());
        self.ingress = Some(proc);
    }

    /// `127.0.0.1:10001`, where the load client (in the client namespace) sends.
    pub fn ingress_addr(&self) -> String {
        format!("127.0.0.1:{INGRESS_PORT}")
    }

    /// Takes node `i`'s link down (`up` = false) or up again.
    pub fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        self.net.ip(
            &self.net.servers[i],
            &["link", "set", &self.net.server_ifs[i], state],
        );
        println!("[e2e] node{} link {state}", i + 1);
    }

    /// Request ids (`w…r…`) whose tunnel request an egress log says it decrypted ("tunnel
    /// request opened … path=/echo?id=…").
    pub fn opened_ids(log: &str) -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("tunnel request opened"))
            .filter_map(|l| l.split("id=").nth(1))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect()
            })
            .collect()
    }

    /// The AS log, for failure messages.
    pub fn as_log_tail(&self, n: usize) -> String {
        self.as_proc.log_tail(n)
    }
}
