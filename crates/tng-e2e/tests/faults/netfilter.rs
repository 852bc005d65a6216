//! SIGKILL of either gateway in netfilter mode, then a new start: the rules are exactly those
//! of a clean start (no leftovers, no duplicates), and no listener outlives the killed process
//! (nothing it spawned inherited a socket). `capture.rs`
//! (`rules_are_removed_on_sigterm_and_after_sigkill_plus_restart`) covers the rule sets of a
//! SIGKILL of both at once and compares sizes; this adds one side at a time, exact rule
//! equality and the listeners.

use serde_json::json;

use crate::netns::*;

const INGRESS_CONTROL: u16 = 7000;
const EGRESS_CONTROL: u16 = 7001;

/// The capture listener's port is chosen by the kernel at each start: the port a rule sends
/// traffic to (`--on-port N` / `--to-ports N`).
fn rule_ports(rules: &str) -> Vec<String> {
    let words: Vec<&str> = rules.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--on-port" || w[0] == "--to-ports")
        .map(|w| w[1].to_string())
        .collect()
}

/// `iptables-save` with the capture listener's port masked.
fn rules(t: &Topology, side: Side) -> String {
    let mut text = t.iptables_state(side);
    for port in rule_ports(&text) {
        for flag in ["--on-port", "--to-ports"] {
            text = text.replace(&format!("{flag} {port}"), &format!("{flag} PORT"));
        }
    }
    text
}

/// Listening TCP sockets in a namespace as `local address <- process name` (pids dropped, so a
/// restarted process compares equal to its predecessor; the capture listener's kernel-chosen
/// port masked).
fn listeners(t: &Topology, side: Side) -> Vec<String> {
    let ports = rule_ports(&t.iptables_state(side));
    let out = t.exec_ok(side, &["ss", "-Hltnp"]);
    let mut v: Vec<String> = out
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let mut local = cols.get(3).copied().unwrap_or("?").to_string();
            if let Some((addr, port)) = local.rsplit_once(':') {
                if ports.iter().any(|p| p == port) {
                    local = format!("{addr}:PORT");
                }
            }
            let owner = l
                .split("((\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("<no process>");
            format!("{local} <- {owner}")
        })
        .collect();
    v.sort();
    v
}

fn pids_listening(t: &Topology, side: Side) -> Vec<u32> {
    let out = t.exec_ok(side, &["ss", "-Hltnp"]);
    out.split("pid=")
        .skip(1)
        .filter_map(|s| s.split(',').next()?.parse().ok())
        .collect()
}

#[test]
fn sigkill_of_either_gateway_leaks_no_rule_and_no_listener() {
    if !can_run("sigkill_of_either_gateway_leaks_no_rule_and_no_listener") {
        return;
    }
    let topo = Topology::new("faults-kill");
    let t = &topo;
    let before = [Side::Client, Side::Server].map(|s| (rules(t, s), listeners(t, s)));
    let routing_before = t.routing_state(Side::Client);
    let _backend = t.backend(Side::Server, "backend", "0.0.0.0:8080");
    let _nginx = gateway_nginx(t, "");
    let url = format!("http://{}:8080/foo/bar/killed", t.gw_ip);
    let launch = |side: Side, name: &str| match side {
        Side::Client => NsTng::launch(
            t,
            side,
            name,
            ingress_config(json!({"port": 8080})),
            INGRESS_CONTROL,
        ),
        _ => NsTng::launch(t, side, name, egress_config(8080, true), EGRESS_CONTROL),
    };
    let served = |what: &str| {
        let r = t.http(Side::Client, &[&url]);
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert_eq!(r.body, "hello from backend: GET /foo/bar/killed", "{what}");
    };
    let mut egress = launch(Side::Server, "egress");
    let mut ingress = launch(Side::Client, "ingress");
    served("clean start");
    let clean = [Side::Client, Side::Server].map(|s| (rules(t, s), listeners(t, s)));
    let routing_clean = t.routing_state(Side::Client);
    assert!(
        clean[0].1.iter().any(|l| l.ends_with("<- tng")),
        "{:?}",
        clean[0].1
    );
    assert!(
        clean[1].1.iter().any(|l| l.ends_with("<- tng")),
        "{:?}",
        clean[1].1
    );

    for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
        let victim = if side == Side::Client {
            &mut ingress
        } else {
            &mut egress
        };
        let dead_pid = victim.proc.pid();
        victim.kill();
        // The rules stay (nobody could remove them) but every socket died with the process.
        let others: Vec<String> = clean[i]
            .1
            .iter()
            .filter(|l| !l.ends_with("<- tng"))
            .cloned()
            .collect();
        assert_eq!(
            listeners(t, side),
            others,
            "{side:?}: listeners after SIGKILL"
        );
        assert!(!pids_listening(t, side).contains(&dead_pid));
        let restarted = launch(side, &format!("{side:?}-restarted").to_lowercase());
        served(&format!("{side:?} restarted after SIGKILL"));
        assert_eq!(
            rules(t, side),
            clean[i].0,
            "{side:?}: rules after SIGKILL + restart differ from a clean start"
        );
        assert_eq!(
            listeners(t, side),
            clean[i].1,
            "{side:?}: listeners after SIGKILL + restart"
        );
        assert!(pids_listening(t, side).contains(&restarted.proc.pid()));
        // The rules lead to the new listener, not to the dead one's port.
        let ports = rule_ports(&t.iptables_state(side));
        assert_eq!(ports.len(), 1, "{ports:?}");
        let live = t.exec_ok(side, &["ss", "-Hltnp"]);
        assert!(
            live.lines().any(|l| l.contains(&format!(":{} ", ports[0]))
                && l.contains(&format!("pid={},", restarted.proc.pid()))),
            "{side:?}: no listener of the new process on rule port {}:\n{live}",
            ports[0]
        );
        if side == Side::Client {
            assert_eq!(t.routing_state(Side::Client), routing_clean);
            ingress = restarted;
        } else {
            egress = restarted;
        }
    }

    assert_eq!(ingress.stop(), Some(0), "{}", ingress.log_tail(20));
    assert_eq!(egress.stop(), Some(0), "{}", egress.log_tail(20));
    for (i, side) in [Side::Client, Side::Server].into_iter().enumerate() {
        assert_eq!(rules(t, side), before[i].0, "{side:?}: rules at the end");
    }
    assert_eq!(t.routing_state(Side::Client), routing_before);
    assert_eq!(listeners(t, Side::Client), before[0].1);
}
