#!/usr/bin/env bash
# The main job for now: a TNG tunnel on loopback and a few requests through it.
#
#   curl --> tng ingress (mapping, 127.0.0.1:I) --OHTTP--> tng egress (127.0.0.1:E) --> backend
#
# Builds the binaries, starts a tng-devkit backend, an egress and an ingress (no_ra: no remote
# attestation, loopback only), sends requests through the ingress, prints the responses and the
# egress's OHTTP key status, then stops everything (also on error or Ctrl-C).
# Logs and configs stay in the printed work directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

echo "== building (cargo build --workspace --bins)"
cargo build --workspace --bins
bin="$root/target/debug"

work="$(mktemp -d /tmp/tng-demo.XXXXXX)"
pids=()
names=()

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  echo "== stopping"
  # Reverse start order: ingress first, backend last, so nothing loses its peer mid-request.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    local pid="${pids[$i]}" name="${names[$i]}" rc=0
    kill -TERM "$pid" 2>/dev/null || continue
    wait "$pid" 2>/dev/null || rc=$?
    echo "   $name (pid $pid) exited with status $rc"
  done
  echo "== logs and configs: $work"
  exit "$status"
}
trap cleanup EXIT INT TERM

# A currently free loopback port (the kernel picks it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers 200 (20 s), failing with the log of the process otherwise.
wait_ready() {
  local url="$1" log="$2"
  for _ in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "not ready: $url; log $log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

start() {
  local name="$1"
  shift
  "$@" >"$work/$name.out" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

echo "== starting backend"
start backend "$bin/tng-devkit" backend --listen 127.0.0.1:0
backend=""
for _ in $(seq 1 100); do
  backend="$(sed -n 's/.*backend listening on \([0-9.:]*\).*/\1/p' "$work/backend.out" | head -n 1)"
  [ -n "$backend" ] && break
  sleep 0.1
done
[ -n "$backend" ] || { echo "backend did not start:" >&2; cat "$work/backend.out" >&2; exit 1; }
echo "   backend listening on $backend"

egress_port="$(free_port)"
egress_ctl="$(free_port)"
cat >"$work/egress.json" <<JSON
{
  "control_interface": {"restful": {"host": "127.0.0.1", "port": $egress_ctl}},
  "add_egress": [{
    "mapping": {"in": {"host": "127.0.0.1", "port": $egress_port},
                "out": {"host": "${backend%:*}", "port": ${backend##*:}}},
    "ohttp": {"key": {"source": "self_generated", "rotation_interval": 300}},
    "no_ra": true
  }]
}
JSON
echo "== starting egress on 127.0.0.1:$egress_port (control 127.0.0.1:$egress_ctl)"
start egress env RUST_LOG="${RUST_LOG:-info}" "$bin/tng" --log-file "$work/egress.log" \
  launch --config-file "$work/egress.json"
wait_ready "http://127.0.0.1:$egress_ctl/readyz" "$work/egress.log"

ingress_port="$(free_port)"
ingress_ctl="$(free_port)"
cat >"$work/ingress.json" <<JSON
{
  "control_interface": {"restful": {"host": "127.0.0.1", "port": $ingress_ctl}},
  "add_ingress": [{
    "mapping": {"in": {"host": "127.0.0.1", "port": $ingress_port},
                "out": {"host": "127.0.0.1", "port": $egress_port}},
    "ohttp": {"path_rewrites": [{"match_regex": "^/foo/([^/]+)([/]?.*)$", "substitution": "/foo/\$1"}]},
    "no_ra": true
  }]
}
JSON
echo "== starting ingress on 127.0.0.1:$ingress_port (control 127.0.0.1:$ingress_ctl)"
start ingress env RUST_LOG="${RUST_LOG:-info}" "$bin/tng" --log-file "$work/ingress.log" \
  launch --config-file "$work/ingress.json"
wait_ready "http://127.0.0.1:$ingress_ctl/readyz" "$work/ingress.log"

url="http://127.0.0.1:$ingress_port"
# --fail-with-body: a non-2xx answer stops the demo (set -e) but still shows what came back.
req() {
  echo
  echo "$ curl $(printf "%q " "$@")"
  curl -sS --fail-with-body --max-time 30 "$@"
  echo
}

echo "== requests through the tunnel"
req -i "$url/foo/bar/baz?x=1"
req -X POST --data-binary 'hello through the tunnel' -H 'x-demo: 1' -D - -o - "$url/echo?q=2"
direct="$(curl -sS --fail "http://$backend/bytes?n=1048576" | sha256sum)"
tunneled="$(curl -sS --fail "$url/bytes?n=1048576&te=chunked" | sha256sum)"
echo
echo "\$ curl $url/bytes?n=1048576&te=chunked | sha256sum"
echo "   through the tunnel: ${tunneled%% *}"
echo "   direct to backend:  ${direct%% *}"
[ "$direct" = "$tunneled" ] || { echo "1 MiB download differs" >&2; exit 1; }

echo
echo "== egress OHTTP key status"
echo "\$ curl http://127.0.0.1:$egress_ctl/status/egress/0/ohttp/keys"
curl -sS --fail "http://127.0.0.1:$egress_ctl/status/egress/0/ohttp/keys" | python3 -m json.tool
