#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (see .ci/run):
#   system packages (as root) -> upstream TNG binaries -> build binaries -> cargo test.
# The tests spawn the built binaries instead of building them, so the build comes first.
# The last lines of output are cargo test's summaries; the exit code is cargo test's. Every test
# binary runs even after one fails (--no-fail-fast), so one run shows every failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# rustup installs cargo in ~/.cargo/bin, which non-login shells may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

scripts/deps.sh
scripts/fetch-upstream.sh
cargo build --workspace --bins
# libtng_hook.so (the `tng exec` preload library) is a cdylib, which --bins does not build.
cargo build -p tng-hook
# Extra arguments go to cargo test (e.g. `scripts/test.sh --test interop`); CI passes none.
exec cargo test --workspace --no-fail-fast "$@"
