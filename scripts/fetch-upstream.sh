#!/usr/bin/env bash
# Fetches the official upstream TNG binaries (the interop peers of the tests and the benchmark)
# from the PyPI package `tng-sdk`, whose wheel carries the native binary at bin/scripts/tng.
#
# Result: target/upstream/<version>/tng for every version below. Idempotent: a version whose
# binary is present and reports the right version is not downloaded again.
set -euo pipefail

versions=("2.12.0" "2.9.0" "2.7.3")

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_root="$root/target/upstream"

python=python3
command -v "$python" >/dev/null 2>&1 || { echo "fetch-upstream.sh: python3 is required" >&2; exit 1; }

# First line of a command's output ("tng X.Y.Z"; build details follow on later lines), or
# nothing if it fails (a truncated or foreign file).
first_line() {
  local out
  out="$("$@" 2>/dev/null)" || return 0
  printf '%s' "${out%%$'\n'*}"
}

for version in "${versions[@]}"; do
  dest="$dest_root/$version/tng"
  if [ -x "$dest" ] && [ "$(first_line "$dest" --version)" = "tng $version" ]; then
    echo "upstream tng $version: present at $dest"
    continue
  fi
  work="$(mktemp -d)"
  # Only this iteration's temp dir is removed; the trap is reset per version.
  trap 'rm -rf "$work"' EXIT
  echo "upstream tng $version: downloading tng-sdk==$version from PyPI"
  # --no-deps: we want the wheel file only, nothing gets installed into any environment.
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
    "tng-sdk==$version" -d "$work/wheel"
  wheel="$(find "$work/wheel" -name 'tng_sdk-*.whl' -print -quit)"
  if [ -z "$wheel" ]; then
    echo "fetch-upstream.sh: no tng-sdk $version wheel for this platform" >&2
    exit 1
  fi
  "$python" -m zipfile -e "$wheel" "$work/unpacked"
  if [ ! -f "$work/unpacked/bin/scripts/tng" ]; then
    echo "fetch-upstream.sh: $wheel has no bin/scripts/tng" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dest")"
  # Install via a temp name + rename so a concurrent reader never sees a half-written binary.
  cp "$work/unpacked/bin/scripts/tng" "$dest.tmp"
  chmod +x "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
  # `--version` prints "tng X.Y.Z" followed by build details on further lines.
  got="$(first_line "$dest" --version)"
  if [ "$got" != "tng $version" ]; then
    echo "fetch-upstream.sh: $dest --version says '$got', expected 'tng $version'" >&2
    exit 1
  fi
  echo "upstream tng $version: installed at $dest"
  rm -rf "$work"
  trap - EXIT
done
