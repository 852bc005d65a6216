//! The `tng` binary: everything lives in the library so tests and tools can reuse it.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tng::cli::main()
}
