//! The egress's key file (`key.source: file`) replaced with garbage, truncated, emptied or
//! removed: the egress keeps its current key, says so in one error line that names the file
//! but not its content, and the tunnel keeps working without a single 422.

use std::time::{Duration, Instant};

use serde_json::json;
use tng_e2e::keys::{write_x25519_pem, x25519_pem};
use tng_e2e::*;

use crate::common::*;

/// Waits until `needle` occurs in more than `seen` log lines; returns the newest such line.
fn next_line(tng: &Tng, needle: &str, seen: usize) -> String {
    let deadline = Instant::now() + GENEROUS;
    loop {
        let log = tng.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        if lines.len() > seen {
            return lines[lines.len() - 1].to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no new {needle:?} line; log:\n{}",
            tng.log_tail(20)
        );
        pause(Duration::from_millis(50));
    }
}

#[test]
fn key_file_replaced_with_garbage_keeps_the_old_key() {
    let (backend, pem, t) = file_key_tunnel("key-garbage");
    let dir = pem.parent().expect("key file directory").to_path_buf();
    let r = curl_status(&["-d", "warm", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "warm".to_string()));
    let old = t.egress.egress_public_keys(0);
    assert_eq!(old.len(), 1);

    let fresh = x25519_pem("a key cut in half");
    let half = &fresh[..fresh.len() / 2];
    let secret_part = half.lines().nth(1).expect("a base64 line").to_string();
    let invalid = "OHTTP key file is invalid, keeping the current key";
    let unreadable = "cannot read OHTTP key file, keeping the current key";
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("garbage", Some("this is not a PEM key\n"), invalid),
        ("empty file", Some(""), invalid),
        ("truncated PEM", Some(half), invalid),
        ("file removed", None, unreadable),
    ];
    let path_shown = pem.display().to_string();
    for (what, content, needle) in cases {
        let seen = t
            .egress
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .count();
        match content {
            // Renamed into place: the watcher must see exactly this content, never the empty
            // file a truncating write passes through.
            Some(text) => {
                let tmp = dir.join("next.pem");
                std::fs::write(&tmp, text).expect("write key file");
                std::fs::rename(&tmp, &pem).expect("replace key file");
            }
            None => std::fs::remove_file(&pem).expect("remove key file"),
        }
        let line = next_line(&t.egress, needle, seen);
        assert!(line.contains("ERROR"), "{what}: {line}");
        assert!(
            line.contains(&path_shown),
            "{what}: the line does not name the file: {line}"
        );
        assert!(
            !line.contains(&secret_part),
            "{what}: the error line echoes key material: {line}"
        );
        assert_eq!(t.egress.egress_public_keys(0), old, "{what}");
        for i in 0..3 {
            let before = backend.requests();
            let body = format!("{what} {i}");
            let r = curl_status(&["-d", &body, &t.url("/echo")]);
            assert_eq!((r.status, r.text()), (200, body), "{what}");
            assert_eq!(backend.requests(), before + 1, "{what}");
        }
    }
    // Not one request was refused on the way: the ingress still has the first key.
    assert!(!t.egress.log().contains("ServerKeyConfigNotFound"));
    let servers = t.ingress.status_json("/status/ingress/0/ohttp/keys");
    assert_eq!(servers["servers"][0]["server_public_key"], old[0].as_str());
    let errors = t
        .egress
        .log()
        .lines()
        .filter(|l| l.contains(invalid) || l.contains(unreadable))
        .count();
    // One line per change, not one per poll.
    assert_eq!(errors, 4, "{}", t.egress.log_tail(20));

    // A valid key again: taken, and the ingress follows transparently.
    write_x25519_pem(&pem, "the next good key");
    let deadline = Instant::now() + GENEROUS;
    while t.egress.egress_public_keys(0) == old {
        assert!(Instant::now() < deadline, "the valid key was not taken");
        pause(Duration::from_millis(100));
    }
    let r = curl_status(&["-d", "new key", &t.url("/echo")]);
    assert_eq!((r.status, r.text()), (200, "new key".to_string()));
}

/// An emptied file and then a removed one are two different failures, each reported once
/// (an empty file once looked like "unreadable already reported").
#[test]
fn key_file_removed_after_being_emptied_is_reported() {
    let (_backend, pem, t) = file_key_tunnel("key-emptied");
    std::fs::write(&pem, "").expect("empty the key file");
    next_line(
        &t.egress,
        "OHTTP key file is invalid, keeping the current key",
        0,
    );
    std::fs::remove_file(&pem).expect("remove the key file");
    next_line(
        &t.egress,
        "cannot read OHTTP key file, keeping the current key",
        0,
    );
}

/// A backend and a tunnel whose egress reads its key from a fresh file (returned) holding a
/// valid key.
fn file_key_tunnel(name: &str) -> (Backend, std::path::PathBuf, Tunnel) {
    let backend = Backend::start();
    let pem = test_dir(name).join("ohttp-key.pem");
    write_x25519_pem(&pem, "the good key");
    let t = tunnel(
        backend.addr(),
        json!({"ohttp": {"key": {"source": "file", "path": pem.display().to_string()}}}),
        json!({}),
    );
    (backend, pem, t)
}
