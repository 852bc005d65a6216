//! The `tng` binary: everything lives in the library so tests and tools can reuse it.
#![forbid(unsafe_code)]

/// mimalloc rather than glibc's malloc: per request the gateways allocate and free many small
/// buffers across runtime threads, where glibc spent ~8 % of the CPU in its own bookkeeping
/// (`malloc_consolidate`, `unlink_chunk`) in the profile (bench/speed-budget.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tng::cli::main()
}
