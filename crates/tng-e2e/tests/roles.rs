//! The four role combinations of remote attestation between our own ingress and egress, in both
//! models: server attestation (ingress `verify`, egress `attest`), client attestation (ingress
//! `attest`, egress `verify`, HPKE Auth mode), both, and neither (`no_ra`).

use std::time::Duration;

use serde_json::{json, Value};
use tng_e2e::stack::Stack;
use tng_e2e::*;

#[derive(Clone, Copy, Debug)]
enum Roles {
    ServerAttested,
    ClientAttested,
    Mutual,
    NoRa,
}

fn ra(entry: &mut Value, attest: Option<Value>, verify: Option<Value>) {
    if attest.is_none() && verify.is_none() {
        entry["no_ra"] = true.into();
    }
    if let Some(a) = attest {
        entry["attest"] = a;
    }
    if let Some(v) = verify {
        entry["verify"] = v;
    }
}

fn run(roles: Roles, passport: bool) {
    let stack = Stack::start();
    let backend = Backend::start();
    let egress_port = free_port();
    let ingress_port = free_port();
    let (server_attested, client_attested) = match roles {
        Roles::ServerAttested => (true, false),
        Roles::ClientAttested => (false, true),
        Roles::Mutual => (true, true),
        Roles::NoRa => (false, false),
    };
    let mut egress = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": egress_port}, "out": {"host": "127.0.0.1", "port": backend.port()}},
        "ohttp": {"key": {"source": "self_generated", "rotation_interval": 300}}
    });
    ra(
        &mut egress,
        server_attested.then(|| stack.attest(passport)),
        client_attested.then(|| stack.verify(passport)),
    );
    let mut ingress = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": ingress_port}, "out": {"host": "127.0.0.1", "port": egress_port}},
        "ohttp": {}
    });
    ra(
        &mut ingress,
        client_attested.then(|| stack.attest(passport)),
        server_attested.then(|| stack.verify(passport)),
    );
    let egress = Tng::launch_named("egress", json!({"add_egress": [egress]}));
    let ingress = Tng::launch_named("ingress", json!({"add_ingress": [ingress]}));

    let url = format!("http://127.0.0.1:{ingress_port}/echo");
    let response = curl_status(&["-X", "POST", "--data-binary", "attested payload", &url]);
    assert_eq!(
        response.status,
        200,
        "{roles:?} passport={passport}: {}",
        response.text()
    );
    assert_eq!(response.text(), "attested payload");

    // The log is written by its own thread: once the request's access-log line is there, so
    // is everything logged before it (the attestation lines come before the request is sent).
    ingress.wait_for_log("tng::access_log", Duration::from_secs(10));
    let ingress_log = ingress.log();
    assert_eq!(
        ingress_log.contains("server attestation verified"),
        server_attested,
        "{roles:?}: ingress log:\n{ingress_log}"
    );
    assert_eq!(
        ingress_log.contains("client attestation token obtained"),
        client_attested,
        "{roles:?}: ingress log:\n{ingress_log}"
    );
    let status = http_get(&format!(
        "{}/status/ingress/0/ohttp/keys",
        ingress.control_url()
    ));
    assert_eq!(status.0, 200);
    assert_eq!(
        status.1.contains("server_attestation"),
        server_attested,
        "{}",
        status.1
    );
    drop(egress);
}

#[test]
fn server_attested_background_check() {
    run(Roles::ServerAttested, false);
}

#[test]
fn server_attested_passport() {
    run(Roles::ServerAttested, true);
}

#[test]
fn client_attested_background_check() {
    run(Roles::ClientAttested, false);
}

#[test]
fn client_attested_passport() {
    run(Roles::ClientAttested, true);
}

#[test]
fn mutual_background_check() {
    run(Roles::Mutual, false);
}

#[test]
fn mutual_passport() {
    run(Roles::Mutual, true);
}

#[test]
fn no_ra_on_both_sides() {
    run(Roles::NoRa, false);
}

/// An egress that requires attested clients refuses an ingress without attestation: the
/// request never reaches the backend.
#[test]
fn unattested_client_is_refused_by_a_verifying_egress() {
    let stack = Stack::start();
    let backend = Backend::start();
    let egress_port = free_port();
    let ingress_port = free_port();
    let _egress = Tng::launch_named(
        "egress",
        json!({"add_egress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": egress_port}, "out": {"host": "127.0.0.1", "port": backend.port()}},
            "ohttp": {}, "verify": stack.verify(false)}]}),
    );
    let ingress = Tng::launch_named(
        "ingress",
        json!({"add_ingress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": ingress_port}, "out": {"host": "127.0.0.1", "port": egress_port}},
            "ohttp": {}, "no_ra": true}]}),
    );
    let response = curl_status(&[
        &format!("http://127.0.0.1:{ingress_port}/echo"),
        "--data-binary",
        "secret",
    ]);
    assert_eq!(response.status, 502);
    let body = response.json();
    // The ingress relays the egress's code; the egress's reason is in the ingress's log
    // (an egress's reasons are for operators, not for whoever sent the request).
    assert_eq!(body["code"], "HttpCipherTextBadResponse");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("(MetadataValidateError)"),
        "{body}"
    );
    ingress.wait_for_log(
        "client attestation is required but no attestation info was provided",
        Duration::from_secs(5),
    );
    assert_eq!(backend.requests(), 0);
}

/// An egress and an ingress in front of it, each with the given attestation fields.
/// Returns them with the ingress and egress ports.
fn launch_pair(backend: &Backend, egress_ra: Value, ingress_ra: Value) -> (Tng, Tng, u16, u16) {
    let egress_port = free_port();
    let ingress_port = free_port();
    let mut egress = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": egress_port}, "out": {"host": "127.0.0.1", "port": backend.port()}},
        "ohttp": {}
    });
    let mut ingress = json!({
        "mapping": {"in": {"host": "127.0.0.1", "port": ingress_port}, "out": {"host": "127.0.0.1", "port": egress_port}},
        "ohttp": {}
    });
    for (entry, ra) in [(&mut egress, egress_ra), (&mut ingress, ingress_ra)] {
        if let Value::Object(fields) = ra {
            for (k, v) in fields {
                entry[k] = v;
            }
        }
    }
    let egress = Tng::launch_named("egress", json!({"add_egress": [egress]}));
    let ingress = Tng::launch_named("ingress", json!({"add_ingress": [ingress]}));
    (egress, ingress, ingress_port, egress_port)
}

/// `refresh_interval: 0` means no reuse: every request is attested afresh.
#[test]
fn refresh_interval_zero_attests_every_request() {
    let stack = Stack::start();
    let backend = Backend::start();
    let mut attest = stack.attest(true);
    attest["refresh_interval"] = 0.into();
    let (_egress, ingress, port, _) = launch_pair(
        &backend,
        json!({"verify": stack.verify(true)}),
        json!({"attest": attest}),
    );
    for i in 0..3 {
        let body = format!("request {i}");
        let response = curl_status(&[
            "--data-binary",
            &body,
            &format!("http://127.0.0.1:{port}/echo"),
        ]);
        assert_eq!((response.status, response.text()), (200, body));
    }
    // The log writer is asynchronous: wait for the third line rather than read once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ingress
        .log()
        .matches("client attestation token obtained")
        .count()
        < 3
        && std::time::Instant::now() < deadline
    {
        pause(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        ingress
            .log()
            .matches("client attestation token obtained")
            .count(),
        3
    );
}

/// Passport answers are reused for `refresh_interval` (default 600 s): two ingresses get the
/// very same token; with `refresh_interval: 0` each gets its own.
#[test]
fn egress_caches_passport_answers_for_refresh_interval() {
    for (refresh, same) in [(None, true), (Some(0), false)] {
        let stack = Stack::start();
        let backend = Backend::start();
        let mut attest = stack.attest(true);
        if let Some(r) = refresh {
            attest["refresh_interval"] = r.into();
        }
        let (_egress, first, first_port, egress_in) = launch_pair(
            &backend,
            json!({"attest": attest}),
            json!({"verify": stack.verify(true)}),
        );
        let url = |port: u16| format!("http://127.0.0.1:{port}/echo");
        assert_eq!(curl_status(&["-d", "a", &url(first_port)]).status, 200);
        // A second ingress in front of the same egress.
        let second_port = free_port();
        let second = Tng::launch_named(
            "ingress2",
            json!({"add_ingress": [{
                "mapping": {"in": {"host": "127.0.0.1", "port": second_port}, "out": {"host": "127.0.0.1", "port": egress_in}},
                "ohttp": {}, "verify": stack.verify(true)}]}),
        );
        assert_eq!(curl_status(&["-d", "b", &url(second_port)]).status, 200);
        let token = |t: &Tng| {
            t.status_json("/status/ingress/0/ohttp/keys")["servers"][0]["server_attestation"]
                .clone()
        };
        let (a, b) = (token(&first), token(&second));
        assert!(a.is_string() && b.is_string(), "{a} {b}");
        assert_eq!(a == b, same, "refresh_interval {refresh:?}");
    }
}
