//! `netfilter_udp` on both sides, in network namespaces with real TPROXY rules:
//!
//! ```text
//! client ns: dig / python ── ingress (TPROXY) ══ QUIC ══ gateway ns ══ egress (TPROXY) ── dnsmasq / echo
//! ```
//!
//! A DNS query to a real resolver-like server (dnsmasq answering from its own hosts file)
//! crosses the wire only inside QUIC; byte-exact echo with the loss counted; the rules and
//! policy routes are gone after SIGTERM and after SIGKILL + restart; an unreachable egress
//! fails that flow only, delivers nothing unprotected, and the flow after it works; stray
//! plain UDP at a captured port is swallowed without harm; and both directions against
//! upstream 2.12.0.

#[path = "netns/mod.rs"]
mod netns;

use std::time::{Duration, Instant};

use netns::*;
use serde_json::{json, Value};
use tng_e2e::{pause, Proc};

const INGRESS_CONTROL: u16 = 7100;
const EGRESS_CONTROL: u16 = 7101;
const DNS_PORT: u16 = 5353;
const ECHO_PORT: u16 = 7007;
/// A label that must never cross the gateway in clear text.
const SECRET_NAME: &str = "tngsecretlabel.example.test";
const SECRET_ADDR: &str = "198.18.250.9";

fn ingress_config(topo: &Topology, extra: Value) -> Value {
    let host = format!("{}/32", topo.server_ip);
    let mut entry = json!({
        "netfilter_udp": {"capture_dst": [
            {"host": host, "port": DNS_PORT},
            {"host": host, "port": ECHO_PORT}
        ]},
        "no_ra": true
    });
    merge(&mut entry, extra);
    json!({"add_ingress": [entry]})
}

fn egress_config(extra: Value) -> Value {
    let mut entry = json!({
        "netfilter_udp": {"capture_dst": [{"port": DNS_PORT}, {"port": ECHO_PORT}]},
        "no_ra": true
    });
    merge(&mut entry, extra);
    json!({"add_egress": [entry]})
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        for (k, v) in extra {
            match (into.get_mut(&k), v) {
                (Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
}

/// dnsmasq on the server's address, answering only from its own hosts file, logging queries.
fn dnsmasq(topo: &Topology) -> Proc {
    let hosts = topo.unique("dnsmasq-hosts");
    std::fs::write(&hosts, format!("{SECRET_ADDR} {SECRET_NAME}\n")).expect("write hosts");
    let mut proc = topo.spawn(
        Side::Server,
        "dnsmasq",
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--log-facility=-",
            "--log-queries",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            &format!("--addn-hosts={}", hosts.display()),
            &format!("--listen-address={}", topo.server_ip),
            "--bind-interfaces",
            &format!("--port={DNS_PORT}"),
            "--user=root",
            "--pid-file=",
        ],
    );
    proc.wait_for_line("started, version", Duration::from_secs(10));
    proc
}

/// `dig +short` from the client: the answer lines, or the error text.
fn dig(topo: &Topology, name: &str, timeout_s: u32) -> String {
    let out = topo.exec(
        Side::Client,
        &[
            "dig",
            &format!("@{}", topo.server_ip),
            "-p",
            &DNS_PORT.to_string(),
            "+short",
            "+tries=1",
            &format!("+time={timeout_s}"),
            name,
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A UDP echo on the server's ECHO_PORT that counts what it received.
fn echo_server(topo: &Topology) -> Proc {
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('{}',{ECHO_PORT}))\n\
         print('echo ready',flush=True)\n\
         while True:\n\
         \x20   d,a=s.recvfrom(65535)\n\
         \x20   print('from',a[0],len(d),flush=True)\n\
         \x20   s.sendto(d,a)\n",
        topo.server_ip
    );
    let mut proc = topo.spawn(Side::Server, "udp-echo", "python3", &["-u", "-c", &script]);
    proc.wait_for_line("echo ready", Duration::from_secs(10));
    proc
}

/// Sends `count` datagrams (sizes up to 1162 bytes, windows of 16) from one client socket and
/// checks each echo byte for byte: `(echoed, lost, corrupt)`.
fn echo_run(topo: &Topology, count: usize) -> (usize, usize, usize) {
    let script = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.settimeout(0.5)\n\
         dst=('{}',{ECHO_PORT})\n\
         def pat(i,n):\n\
         \x20   b=bytes(((k*31+i)&255) for k in range(n))\n\
         \x20   h=i.to_bytes(4,'big')\n\
         \x20   return h[:min(n,4)]+b[min(n,4):]\n\
         for _ in range(20):\n\
         \x20   s.sendto(b'warm-up',dst)\n\
         \x20   try:\n\
         \x20       s.recvfrom(65535); break\n\
         \x20   except socket.timeout: pass\n\
         sizes=[4+(i*7919)%1159 for i in range({count})]\n\
         seen=set(); corrupt=0\n\
         for w in range(0,len(sizes),16):\n\
         \x20   idx=range(w,min(w+16,len(sizes)))\n\
         \x20   for i in idx: s.sendto(pat(i,sizes[i]),dst)\n\
         \x20   for _ in idx:\n\
         \x20       try: d,_=s.recvfrom(65535)\n\
         \x20       except socket.timeout: break\n\
         \x20       i=int.from_bytes(d[:4],'big')\n\
         \x20       if i<len(sizes) and len(d)==sizes[i] and d==pat(i,sizes[i]) and i not in seen: seen.add(i)\n\
         \x20       else: corrupt+=1\n\
         print(len(seen),len(sizes)-len(seen),corrupt)\n",
        topo.server_ip
    );
    let out = topo.exec_ok(Side::Client, &["python3", "-c", &script]);
    let v: Vec<usize> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(v.len(), 3, "echo client printed {out:?}");
    (v[0], v[1], v[2])
}

fn start_pair(topo: &Topology, suffix: &str, ingress_extra: Value) -> (NsTng, NsTng) {
    let egress = NsTng::launch(
        topo,
        Side::Server,
        &format!("udp-egress-{suffix}"),
        egress_config(json!({})),
        EGRESS_CONTROL,
    );
    let ingress = NsTng::launch(
        topo,
        Side::Client,
        &format!("udp-ingress-{suffix}"),
        ingress_config(topo, ingress_extra),
        INGRESS_CONTROL,
    );
    (ingress, egress)
}

/// What our rules change in a namespace: mangle rules, policy rules and the two UDP tables.
fn state(topo: &Topology, side: Side) -> String {
    let routes: String = ["1263", "2287"]
        .iter()
        .map(|t| {
            let out = topo.exec(side, &["ip", "route", "show", "table", t]);
            format!("table {t}:\n{}", String::from_utf8_lossy(&out.stdout))
        })
        .collect();
    format!(
        "{}\nip rule:\n{}\n{routes}",
        topo.iptables_state(side),
        topo.exec_ok(side, &["ip", "rule"])
    )
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn dns_query_crosses_the_gateway_only_inside_quic() {
    if !can_run("dns_query_crosses_the_gateway_only_inside_quic") {
        return;
    }
    let topo = Topology::new("udp-nf-dns");
    let mut dns = dnsmasq(&topo);
    let (ingress, egress) = start_pair(&topo, "dns", json!({}));
    let pcap = Tcpdump::start_filtered(&topo, Side::Gateway, "tcp or udp");
    assert_eq!(
        dig(&topo, SECRET_NAME, 5),
        SECRET_ADDR,
        "{}",
        ingress.log_tail(30)
    );
    assert_eq!(dig(&topo, SECRET_NAME, 5), SECRET_ADDR);
    let wire = pcap.stop(&topo);
    assert!(
        !contains(&wire, "tngsecretlabel"),
        "the query name crossed the gateway in clear text"
    );
    // The egress, not the client, asked dnsmasq: the query left from the server's own address.
    let query = dns.wait_for_line("query[A] tngsecretlabel", Duration::from_secs(5));
    assert!(
        query.contains(&format!("from {}", topo.server_ip)),
        "{query}"
    );
    assert!(!dns.log().contains(&format!("from {}", topo.client_ip)));
    // Two digs, two client ports: two flows, each its own QUIC connection.
    let ing = ingress.log();
    assert_eq!(
        count(&ing, "Creating QUIC connection for new client"),
        2,
        "{ing}"
    );
    let eg = egress.log();
    assert_eq!(
        count(&eg, "Accepted QUIC connection from ingress"),
        2,
        "{eg}"
    );
    // One endpoint for the one captured destination.
    assert_eq!(
        count(&eg, "QUIC endpoint for a captured destination"),
        1,
        "{eg}"
    );
}

#[test]
fn echo_is_byte_exact_with_loss_counted() {
    if !can_run("echo_is_byte_exact_with_loss_counted") {
        return;
    }
    let topo = Topology::new("udp-nf-echo");
    let echo = echo_server(&topo);
    let (ingress, _egress) = start_pair(&topo, "echo", json!({}));
    let (echoed, lost, corrupt) = echo_run(&topo, 2000);
    println!(
        "[udp-nf] 2000 datagrams (4..=1162 bytes): echoed {echoed}, lost {lost}, corrupt {corrupt}"
    );
    assert_eq!(corrupt, 0, "no datagram may be altered");
    assert!(
        lost * 100 <= 2000,
        "lost {lost} of 2000\n{}",
        ingress.log_tail(30)
    );
    // The echo saw the egress's address only: nothing reached it around the tunnel.
    let seen = echo.log();
    assert!(seen.contains(&format!("from {}", topo.server_ip)), "{seen}");
    assert!(
        !seen.contains(&format!("from {}", topo.client_ip)),
        "{seen}"
    );
}

#[test]
fn rules_are_removed_on_sigterm_and_after_sigkill_plus_restart() {
    if !can_run("netfilter_udp rules_are_removed_on_sigterm_and_after_sigkill_plus_restart") {
        return;
    }
    let topo = Topology::new("udp-nf-life");
    let _dns = dnsmasq(&topo);
    let sides = [Side::Client, Side::Server];
    let snapshot = || sides.map(|s| state(&topo, s));
    let baseline = snapshot();

    let (mut ingress, mut egress) = start_pair(&topo, "1", json!({}));
    assert_eq!(dig(&topo, SECRET_NAME, 5), SECRET_ADDR);
    let running = snapshot();
    assert!(
        running[0].contains("TNG_INGRESS_UDP_0_PRE"),
        "{}",
        running[0]
    );
    assert!(running[0].contains("lookup 1263"), "{}", running[0]);
    assert!(running[1].contains("TNG_EGRESS_UDP_0"), "{}", running[1]);
    assert!(running[1].contains("lookup 2287"), "{}", running[1]);
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(snapshot(), baseline, "state after SIGTERM differs");

    let (mut ingress, mut egress) = start_pair(&topo, "2", json!({}));
    ingress.kill();
    egress.kill();
    let stale = snapshot();
    assert!(stale[0].contains("TNG_INGRESS_UDP_0_PRE") && stale[1].contains("TNG_EGRESS_UDP_0"));
    let (mut ingress, mut egress) = start_pair(&topo, "3", json!({}));
    assert_eq!(dig(&topo, SECRET_NAME, 5), SECRET_ADDR);
    let restarted = snapshot();
    for (i, (a, b)) in running.iter().zip(&restarted).enumerate() {
        assert_eq!(
            a.lines().count(),
            b.lines().count(),
            "state {i} after restart differs from a clean start:\n{a}\n---\n{b}"
        );
    }
    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    assert_eq!(
        snapshot(),
        baseline,
        "state after SIGKILL+restart+SIGTERM differs"
    );
}

#[test]
fn unreachable_egress_fails_that_flow_only_and_leaks_nothing() {
    if !can_run("unreachable_egress_fails_that_flow_only_and_leaks_nothing") {
        return;
    }
    let topo = Topology::new("udp-nf-fail");
    let echo = echo_server(&topo);
    // No egress yet: the server's echo port is open, so a leak would be answered.
    let mut ingress = NsTng::launch(
        &topo,
        Side::Client,
        "udp-ingress-fail",
        ingress_config(
            &topo,
            json!({"netfilter_udp": {"idle_timeout_secs": 2}, "quic": {"max_idle_timeout_ms": 1000}}),
        ),
        INGRESS_CONTROL,
    );
    let probe = |payload: &str| {
        let script = format!(
            "import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.settimeout(1.5)\n\
             for _ in range(3):\n\
             \x20   s.sendto(b'{payload}',('{}',{ECHO_PORT}))\n\
             \x20   try:\n\
             \x20       print(s.recvfrom(65535)[0].decode()); break\n\
             \x20   except socket.timeout: print('timeout')\n",
            topo.server_ip
        );
        topo.exec_ok(Side::Client, &["python3", "-c", &script])
    };
    let first = probe("leak-check");
    assert!(!first.contains("leak-check"), "{first}");
    ingress.wait_for_log("UDP flow not tunnelled", Duration::from_secs(10));
    // The service received QUIC handshake packets at most, never the application's bytes.
    pause(Duration::from_millis(300));
    let leak = format!("from {} 10\n", topo.client_ip);
    assert!(!echo.log().contains(&leak), "{}", echo.log());
    // Stray plain UDP at a port the egress will capture: swallowed once it runs.
    let mut egress = NsTng::launch(
        &topo,
        Side::Server,
        "udp-egress-fail",
        egress_config(json!({})),
        EGRESS_CONTROL,
    );
    let stray = topo.exec_ok(
        Side::Gateway,
        &[
            "python3",
            "-c",
            &format!(
                "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'not quic',('{}',{ECHO_PORT}))\nprint('sent')",
                topo.server_ip
            ),
        ],
    );
    assert_eq!(stray.trim(), "sent");
    // A new flow (new client port) after the egress came up is tunnelled; the instance never
    // stopped.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let second = probe("after-egress");
        if second.contains("after-egress") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", ingress.log_tail(30));
    }
    assert!(ingress.proc.try_wait().is_none());
    assert!(egress.proc.try_wait().is_none(), "{}", egress.log_tail(20));
    let seen = echo.log();
    assert!(
        !seen.contains(&format!("from {}", topo.gw_server_ip)),
        "stray datagram delivered: {seen}"
    );
    assert_eq!(ingress.stop(), Some(0));
    assert_eq!(egress.stop(), Some(0));
}

fn upstream(topo: &Topology, side: Side, name: &str, config: Value) -> Option<Proc> {
    let bin = tng_e2e::upstream::upstream_bin("2.12.0")?;
    let path = topo.unique(name).with_extension("json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    let bin = bin.display().to_string();
    let path = path.display().to_string();
    let mut proc = topo.spawn(
        side,
        name,
        "/usr/bin/env",
        &["RUST_LOG=info", &bin, "launch", "--config-file", &path],
    );
    proc.wait_for_line("All services are ready", Duration::from_secs(20));
    Some(proc)
}

#[test]
fn interop_our_ingress_upstream_2_12_0_egress() {
    if !can_run("interop_our_ingress_upstream_2_12_0_egress") {
        return;
    }
    let topo = Topology::new("udp-nf-up-e");
    let _dns = dnsmasq(&topo);
    let Some(mut theirs) = upstream(
        &topo,
        Side::Server,
        "upstream-udp-egress",
        egress_config(json!({})),
    ) else {
        return;
    };
    let ingress = NsTng::launch(
        &topo,
        Side::Client,
        "udp-ingress-up",
        ingress_config(&topo, json!({})),
        INGRESS_CONTROL,
    );
    assert_eq!(
        dig(&topo, SECRET_NAME, 5),
        SECRET_ADDR,
        "{}\n{}",
        ingress.log_tail(20),
        theirs.log_tail(20)
    );
    theirs.wait_for_line(
        "Accepted QUIC connection from ingress",
        Duration::from_secs(5),
    );
}

#[test]
fn interop_upstream_2_12_0_ingress_our_egress() {
    if !can_run("interop_upstream_2_12_0_ingress_our_egress") {
        return;
    }
    let topo = Topology::new("udp-nf-up-i");
    let _dns = dnsmasq(&topo);
    let egress = NsTng::launch(
        &topo,
        Side::Server,
        "udp-egress-up",
        egress_config(json!({})),
        EGRESS_CONTROL,
    );
    let Some(theirs) = upstream(
        &topo,
        Side::Client,
        "upstream-udp-ingress",
        ingress_config(&topo, json!({})),
    ) else {
        return;
    };
    assert_eq!(
        dig(&topo, SECRET_NAME, 5),
        SECRET_ADDR,
        "{}\n{}",
        egress.log_tail(20),
        theirs.log_tail(20)
    );
    assert!(egress
        .log()
        .contains("Accepted QUIC connection from ingress"));
}

#[test]
fn a_later_entry_that_cannot_bind_stops_start_up_and_leaves_no_rules() {
    if !can_run("a_later_entry_that_cannot_bind_stops_start_up_and_leaves_no_rules") {
        return;
    }
    let topo = Topology::new("udp-nf-bindfail");
    let baseline = state(&topo, Side::Client);
    // Something else already holds the second entry's port.
    let mut holder = topo.spawn(
        Side::Client,
        "port-holder",
        "python3",
        &[
            "-u",
            "-c",
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',5999))\nprint('held',flush=True)\ntime.sleep(600)",
        ],
    );
    holder.wait_for_line("held", Duration::from_secs(10));
    let mut config = ingress_config(&topo, json!({}));
    config["add_ingress"].as_array_mut().expect("entries").push(
        json!({"mapping_udp": {"in": {"host": "127.0.0.1", "port": 5999},
                                     "out": {"host": "127.0.0.1", "port": 6000}},
                     "no_ra": true}),
    );
    let (code, log) = NsTng::expect_failure(&topo, Side::Client, "udp-bindfail", config);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("add_ingress[1].mapping_udp.in: cannot listen on 127.0.0.1:5999"),
        "{log}"
    );
    // The first entry had installed its rules and started serving; they went with it.
    assert!(log.contains("netfilter_udp capture installed"), "{log}");
    assert_eq!(state(&topo, Side::Client), baseline);
}
