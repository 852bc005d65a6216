#!/usr/bin/env bash
# Dependency policy check (deny.toml): licences, bans, sources, and advisories when the RustSec
# database can be fetched. Installs cargo-deny on first use. Not part of scripts/test.sh: the
# advisory database lives on GitHub, which the test machines cannot always reach, and a CI run
# must not depend on it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo-deny > /dev/null 2>&1; then
    cargo install cargo-deny --locked
fi

checks=(licenses bans sources)
if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD > /dev/null 2>&1; then
    checks+=(advisories)
else
    echo "deny.sh: github.com unreachable, advisories not checked" >&2
fi
exec cargo deny --workspace check "${checks[@]}"
