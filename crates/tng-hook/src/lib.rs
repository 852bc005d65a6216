//! `libtng_hook.so`, preloaded by `tng exec` into the application (and every program it
//! runs). It overrides four libc functions:
//! - `connect` (and `sendto` with `MSG_FASTOPEN`): a TCP connection to a destination that a
//!   capture rule of `TNG_HOOK_INGRESS_MAPPINGS` selects is made to the TNG engine's CONNECT
//!   proxy on 127.0.0.1 instead, and succeeds only once the engine answers 200 — that is,
//!   once the protected tunnel to the destination exists;
//! - `bind`: a port listed in `TNG_HOOK_EGRESS_MAPPINGS` is replaced by its real port, so the
//!   engine can listen on the port the application asked for;
//! - `getsockname`: reports the asked-for port back.
//!
//! No threads, no async runtime, no allocation-heavy work in the hot paths: the tables are
//! read once when the library loads. Logs go to the `tng exec` log collector socket
//! (`TNG_HOOK_LOG_SOCKET`), else to stderr.
//!
//! `unsafe` lives in [`ffi`] only (the exported symbols, the real libc functions and the
//! socket calls around them); everything else is safe code.
#![deny(unsafe_code)]

mod ffi;
mod hooks;
mod log;
mod tables;
