//! Why logging could not start. Every message names the flag or variable at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{var}: {reason}")]
    Env { var: &'static str, reason: String },
    // The OS error is part of the message (not a `source`), so `{:#}` does not repeat it.
    #[error("{origin} {}: cannot open: {cause}", path.display())]
    Open {
        origin: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{origin} {}: is the same file as {other}; give the error file its own path", path.display())]
    SameFile {
        origin: &'static str,
        other: &'static str,
        path: PathBuf,
    },
    #[error("cannot start the log writer thread: {0}")]
    Thread(std::io::Error),
}
