//! Shared harness for the end-to-end tests: real `tng` and `tng-devkit` processes, real curl.
//!
//! Binaries are never built here: run `cargo build --workspace --bins` first, then the tests.
//! Every process gets its own temp directory under `$TMPDIR/tng-e2e/` with its log, which the
//! harness prints so a failing test can be diagnosed afterwards.
//!
//! Typical use:
//! ```no_run
//! use tng_e2e::*;
//! let backend = Backend::start();
//! let t = tunnel(backend.addr(), serde_json::json!({}), serde_json::json!({}));
//! let out = curl(&[&format!("http://127.0.0.1:{}/echo", t.ingress_port), "-d", "hi"]);
//! assert_eq!(out.stdout, b"hi");
//! ```

pub mod backend;
pub mod certs;
pub mod client;
pub mod gateways;
pub mod hardening;
pub mod keys;
pub mod net;
pub mod netns;
pub mod otlp;
pub mod paths;
pub mod pattern;
pub mod proc;
pub mod prometheus;
pub mod relay;
pub mod sealed;
pub mod stack;
pub mod tng;
pub mod udp;
pub mod upstream;

pub use backend::Backend;
pub use net::{
    assert_capture_complete, curl, curl_status, free_port, http_get, raw_http, try_curl_status,
    wait_http_ok, RawResponse,
};
pub use paths::{bin, test_dir};
pub use pattern::{pattern_bytes, pattern_sha256, PatternChecker, PATTERN_PERIOD};
pub use proc::Proc;
pub use relay::{split_requests, CapturedMessage, Relay};
pub use tng::{launch_egress, launch_ingress, tunnel, Tng, Tunnel};

/// Blocks the calling (test) thread. The workspace bans `std::thread::sleep` because it stalls
/// async runtimes; the harness is synchronous and polls real processes, so it needs one.
#[allow(clippy::disallowed_methods)]
pub fn pause(duration: std::time::Duration) {
    std::thread::sleep(duration);
}
