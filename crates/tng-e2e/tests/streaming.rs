//! 1 GiB down and 1 GiB up through the tunnel with flat memory in both tng processes.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use tng_e2e::*;

const GIB: u64 = 1 << 30;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn report_rss(t: &Tunnel, what: &str) -> (u64, u64) {
    let e = t.egress.peak_rss_kib();
    let i = t.ingress.peak_rss_kib();
    println!("[rss] after {what}: egress peak {e} KiB, ingress peak {i} KiB");
    (e, i)
}

#[test]
fn one_gib_download_and_upload_with_flat_memory() {
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let expected_sha = pattern_sha256(GIB);

    // Download: stream curl's stdout through a pattern check; nothing is stored.
    let started = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "600", "-o", "-"])
        .arg(t.url(&format!("/bytes?n={GIB}")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let mut stdout = child.stdout.take().unwrap();
    let mut checker = PatternChecker::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stdout.read(&mut buf).expect("read curl stdout");
        if n == 0 {
            break;
        }
        checker.feed(&buf[..n]);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "[bulk] download 1 GiB in {:.1} s ({:.0} MB/s)",
        started.elapsed().as_secs_f64(),
        GIB as f64 / 1e6 / started.elapsed().as_secs_f64()
    );
    assert_eq!(checker.len(), GIB);
    assert_eq!(checker.first_mismatch(), None);
    assert_eq!(checker.sha256(), expected_sha);
    let (e, i) = report_rss(&t, "1 GiB download");
    assert!(
        e < RSS_LIMIT_KIB && i < RSS_LIMIT_KIB,
        "peak RSS over 64 MiB: egress {e} KiB, ingress {i} KiB"
    );

    // Upload: curl reads the body from a pipe (-T - ⇒ chunked), we write the pattern into it.
    let started = Instant::now();
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "600", "-X", "POST", "-T", "-"])
        .args(["-H", "content-type: application/octet-stream"])
        .arg(t.url("/sink"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block = pattern_bytes(0, (1 << 20) + PATTERN_PERIOD as usize);
        let mut sent = 0u64;
        while sent < GIB {
            let start = (sent % PATTERN_PERIOD) as usize;
            stdin
                .write_all(&block[start..start + (1 << 20)])
                .expect("write to curl");
            sent += 1 << 20;
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "[bulk] upload 1 GiB in {:.1} s ({:.0} MB/s)",
        started.elapsed().as_secs_f64(),
        GIB as f64 / 1e6 / started.elapsed().as_secs_f64()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sink answer not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v, json!({"bytes": GIB, "sha256": expected_sha}));
    let (e, i) = report_rss(&t, "1 GiB upload");
    assert!(
        e < RSS_LIMIT_KIB && i < RSS_LIMIT_KIB,
        "peak RSS over 64 MiB: egress {e} KiB, ingress {i} KiB"
    );
}

#[test]
fn content_length_upload_of_a_file() {
    // curl -T FILE sends Content-Length (not chunked): the other request framing.
    let backend = Backend::start();
    let t = tunnel(backend.addr(), json!({}), json!({}));
    let dir = test_dir("cl-upload");
    let file = dir.join("upload.bin");
    let len = 64u64 << 20;
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let block = pattern_bytes(0, 1 << 20);
        // 1 MiB is not a multiple of 251, so write the pattern at running offsets.
        let mut written = 0u64;
        while written < len {
            let chunk = pattern_bytes(written, block.len());
            f.write_all(&chunk).unwrap();
            written += chunk.len() as u64;
        }
    }
    let r = curl_status(&[
        "-X",
        "POST",
        "-T",
        &file.display().to_string(),
        &t.url("/sink"),
    ]);
    std::fs::remove_file(&file).ok();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"bytes": len, "sha256": pattern_sha256(len)})
    );
}
