#!/usr/bin/env bash
# The founding scenario (seed "use case 4": a client reaching an HTTP business cluster through
# an L7 gateway, protected by OHTTP and remote attestation), end to end on one machine.
#
#   tng-client                    tng-gateway                     tng-server
#   curl ──> TNG ingress ──────>  nginx :8080  ────────────────>  TNG egress ──> backend :8080
#            (netfilter, verify)  (/foo/, / -> server:8080)       (netfilter, attest)
#            198.18.0.1           198.18.0.2 | 198.19.0.1         198.19.0.2
#                 │                                               sample AA (default socket)
#                 └──── challenge / attestation ────────────────> sample AS :8000
#
# Both TNG configurations are the seed's, verbatim; only `<attestation-service-url>` is filled
# in. Run as root on a Debian machine:
#
#   scripts/scenario.sh
#
# It installs missing packages (scripts/deps.sh), builds, creates three network namespaces,
# sends requests with curl, shows what nginx saw and which attestation the ingress accepted,
# then removes everything it created (also on error or Ctrl-C). Exit status 0 only if every
# check passed. Logs and configurations stay in the printed work directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# rustup installs cargo in ~/.cargo/bin, which non-login shells may not have on PATH; Debian
# keeps ip, iptables and nginx in sbin directories.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/scenario.sh: needs root (network namespaces, iptables, nginx)" >&2
  exit 1
fi

# Names and addresses. Only the benchmarking range 198.18.0.0/15 is used; the namespaces are
# private, so these addresses never reach a real network.
ns_client="tng-client"
ns_gateway="tng-gateway"
ns_server="tng-server"
client_ip=198.18.0.1
gw_ip=198.18.0.2
gw_server_ip=198.19.0.1
server_ip=198.19.0.2
# The AS is a separate service on the server side (as the seed's steps say). Port 8000, not
# 8080: the ingress captures every connection to port 8080, and the egress every connection
# to the server's 8080.
as_addr="http://$server_ip:8000/"
aa_socket=/run/confidential-containers/attestation-agent/attestation-agent.sock
# Shared with crates/tng-e2e/tests/scenario.rs: one user of the default AA socket at a time.
aa_lock=/run/tng-default-aa.lock

echo "== installing missing packages (scripts/deps.sh)"
scripts/deps.sh
for cmd in python3 flock; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "scripts/scenario.sh: $cmd is required" >&2; exit 1; }
done

echo "== building (cargo build --workspace --bins)"
cargo build --workspace --bins
tng="$root/target/debug/tng"
devkit="$root/target/debug/tng-devkit"

work="$(mktemp -d /tmp/tng-scenario.XXXXXX)"
pids=()
names=()
created_ns=()
aa_dirs=()

# Kills every process still running inside a namespace (they are all ours: the namespace was
# created by this script or by an earlier run of it) and deletes the namespace.
remove_namespace() {
  local ns="$1" pid
  [ -e "/run/netns/$ns" ] || return 0
  for pid in $(ip netns pids "$ns" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
    sleep 0.1
  done
  ip netns del "$ns" 2>/dev/null || true
}

# On a signal the interrupted command's status says nothing: exit 128+signal instead.
cleanup() {
  local status=$?
  [ $# -gt 0 ] && status="$1"
  trap - EXIT INT TERM
  set +e
  if [ "$status" -ne 0 ]; then
    echo
    echo "== FAILED (status $status); last log lines:" >&2
    for f in "$work"/*.log "$work"/nginx/error.log; do
      [ -s "$f" ] || continue
      echo "--- $f" >&2
      tail -n 15 "$f" >&2
    done
  fi
  echo
  echo "== stopping"
  # Reverse start order: the ingress first, the backend last. SIGTERM lets tng remove its
  # netfilter rules and the AA remove its socket.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    local pid="${pids[$i]}" name="${names[$i]}" rc=0
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    echo "   $name (pid $pid) exited with status $rc"
  done
  for ns in "${created_ns[@]}"; do
    remove_namespace "$ns"
  done
  # Only a socket: never a file someone else put there.
  [ -S "$aa_socket" ] && rm -f "$aa_socket"
  for d in "${aa_dirs[@]}"; do
    rmdir "$d" 2>/dev/null
  done
  echo "== logs and configurations: $work"
  exit "$status"
}
trap cleanup EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

# One run at a time: a second run would replace this run's AA socket.
exec 9>"$aa_lock"
if ! flock -w 60 9; then
  echo "scripts/scenario.sh: another run (or the scenario test) holds $aa_lock" >&2
  exit 1
fi

# A live Attestation Agent on the default socket belongs to someone else (perhaps a real one):
# never take its place. A socket nobody answers on is left over from an earlier run.
if [ -S "$aa_socket" ]; then
  if python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' \
    "$aa_socket" 2>/dev/null; then
    echo "scripts/scenario.sh: an Attestation Agent is already serving $aa_socket; stop it first" >&2
    exit 1
  fi
  rm -f "$aa_socket"
fi

# Starts a long-running process inside a namespace; output goes to $work/NAME.log.
start() {
  local ns="$1" name="$2"
  shift 2
  ip netns exec "$ns" "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# Waits (30 s) until FILE contains a line matching PATTERN; fails if the process died first.
wait_for_log() {
  local name="$1" pattern="$2" pid="${pids[-1]}"
  for _ in $(seq 1 300); do
    if grep -q -- "$pattern" "$work/$name.log" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before logging '$pattern'" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name did not log '$pattern' within 30 s" >&2
  return 1
}

echo "== namespaces $ns_client, $ns_gateway, $ns_server"
for ns in "$ns_client" "$ns_gateway" "$ns_server"; do
  # Leftovers of an interrupted run (same names) would make `ip netns add` fail.
  remove_namespace "$ns"
  ip netns add "$ns"
  created_ns+=("$ns")
  ip -n "$ns" link set lo up
done
# veth ends are created directly inside the namespaces: nothing touches the host's own.
ip link add tngsc0 netns "$ns_client" type veth peer name tngsg0 netns "$ns_gateway"
ip link add tngsg1 netns "$ns_gateway" type veth peer name tngss0 netns "$ns_server"
ip -n "$ns_client" addr add "$client_ip/24" dev tngsc0
ip -n "$ns_gateway" addr add "$gw_ip/24" dev tngsg0
ip -n "$ns_gateway" addr add "$gw_server_ip/24" dev tngsg1
ip -n "$ns_server" addr add "$server_ip/24" dev tngss0
ip -n "$ns_client" link set tngsc0 up
ip -n "$ns_gateway" link set tngsg0 up
ip -n "$ns_gateway" link set tngsg1 up
ip -n "$ns_server" link set tngss0 up
# The gateway routes between its two links, so the client also reaches the AS on the server
# side (plain routing, no nginx involved).
ip netns exec "$ns_gateway" sysctl -qw net.ipv4.ip_forward=1
ip -n "$ns_client" route add 198.19.0.0/24 via "$gw_ip"
ip -n "$ns_server" route add 198.18.0.0/24 via "$gw_server_ip"
echo "   $ns_client $client_ip -- $gw_ip $ns_gateway $gw_server_ip -- $server_ip $ns_server"

echo "== server side: backend, sample Attestation Agent, sample Attestation Service"
# The AA creates the socket's directories; remember which ones were not there, to remove them.
aa_dirs=()
for d in /run/confidential-containers /run/confidential-containers/attestation-agent; do
  [ -d "$d" ] || aa_dirs=("$d" "${aa_dirs[@]}")
done
start "$ns_server" backend "$devkit" backend --listen 0.0.0.0:8080
wait_for_log backend "backend listening on"
start "$ns_server" aa "$devkit" aa --socket "unix://$aa_socket"
wait_for_log aa "attestation agent listening on"
start "$ns_server" as "$devkit" as --listen "$server_ip:8000" --workdir "$work/as"
wait_for_log as "attestation service listening on"
echo "   backend $server_ip:8080, AA $aa_socket, AS $as_addr"

echo "== gateway: nginx on $gw_ip:8080 (/foo/ and / -> $server_ip:8080)"
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<NGINX
# Runs in the foreground under this script; everything lives in $work/nginx.
worker_processes 1;
daemon off;
user root;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log info;
events { worker_connections 256; }
http {
  # What the gateway can see of each request: method, URI, content type, TNG's API header.
  log_format scenario '\$request_method \$request_uri ct=\$content_type api=\$http_x_tng_ohttp_api status=\$status';
  access_log $work/nginx/access.log scenario;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  client_max_body_size 0;
  # Streaming both ways: OHTTP chunks must pass as they come.
  proxy_http_version 1.1;
  proxy_request_buffering off;
  proxy_buffering off;
  server {
    listen $gw_ip:8080;
    location /foo/ { proxy_pass http://$server_ip:8080; }
    location / { proxy_pass http://$server_ip:8080; }
  }
}
NGINX
start "$ns_gateway" nginx nginx -p "$work/nginx/" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf"
for _ in $(seq 1 100); do
  ip netns exec "$ns_gateway" bash -c "exec 3<>/dev/tcp/$gw_ip/8080" 2>/dev/null && break
  sleep 0.1
done
ip netns exec "$ns_gateway" bash -c "exec 3<>/dev/tcp/$gw_ip/8080" ||
  { echo "nginx is not listening on $gw_ip:8080" >&2; exit 1; }

echo "== server side: TNG egress (seed configuration, verbatim)"
# Exactly the seed's egress configuration.
cat >"$work/egress.json" <<'JSON'
{
    "add_egress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                },
                "capture_local_traffic": true
            },
            "ohttp": {
                "key": {
                    "source": "self_generated"
                }
            },
            "attest": {
                "aa_addr": "unix:///run/confidential-containers/attestation-agent/attestation-agent.sock"
            }
        }
    ]
}
JSON
cat "$work/egress.json"
start "$ns_server" egress env RUST_LOG="${RUST_LOG:-info}" "$tng" launch --config-file "$work/egress.json"
wait_for_log egress "tng started"

echo "== client side: TNG ingress (seed configuration, verbatim but for the AS URL)"
# Exactly the seed's ingress configuration; the placeholder is filled in below.
cat >"$work/ingress.json" <<'JSON'
{
    "add_ingress": [
        {
            "netfilter": {
                "capture_dst": {
                    "port": 8080
                }
            },
            "ohttp": {
                "path_rewrites": [
                    {
                        "match_regex": "^/foo/([^/]+)([/]?.*)$",
                        "substitution": "/foo/$1"
                    }
                ]
            },
            "verify": {
                "as_addr": "<attestation-service-url>",
                "policy_ids": [
                    "default"
                ]
            }
        }
    ]
}
JSON
sed -i "s|<attestation-service-url>|$as_addr|" "$work/ingress.json"
cat "$work/ingress.json"
start "$ns_client" ingress env RUST_LOG="${RUST_LOG:-info}" "$tng" launch --config-file "$work/ingress.json"
wait_for_log ingress "tng started"

gw="http://$gw_ip:8080"
# The client application is plain curl talking to the gateway; --fail-with-body stops the
# script (set -e) on a non-2xx answer but still shows what came back.
req() {
  echo
  echo "[$ns_client]\$ curl $(printf "%q " "$@")"
  ip netns exec "$ns_client" curl -sS --fail-with-body --max-time 30 "$@"
  echo
}
expect() {
  local want="$1" got
  shift
  echo
  echo "[$ns_client]\$ curl $(printf "%q " "$@")"
  got="$(ip netns exec "$ns_client" curl -sS --fail-with-body --max-time 30 "$@")"
  echo "$got"
  if [ "$got" != "$want" ]; then
    echo "expected: $want" >&2
    return 1
  fi
}

echo
echo "== requests from the client to the gateway (captured and tunnelled by the ingress)"
req -i "$gw/foo/bar/baz"
expect "hello from backend: GET /foo/bar/baz" "$gw/foo/bar/baz?page=2"
expect "hello from backend: GET /foo/hello" "$gw/foo/hello"
expect "hello from backend: POST /foo/hello" -X POST -H 'content-type: text/plain' \
  --data-binary 'a secret the gateway never sees' "$gw/foo/hello?lang=en"

echo
echo "== what nginx saw ($work/nginx/access.log)"
cat "$work/nginx/access.log"
# Every request must be an opaque POST on a rewritten path: key-config fetches (JSON) and
# tunnel requests (chunked OHTTP) on /foo/bar and /foo/hello, nothing else.
python3 - "$work/nginx/access.log" <<'PY'
import sys

lines = open(sys.argv[1]).read().splitlines()
tunnel = []
bad = []
for line in lines:
    method, uri, *fields = line.split(" ")
    f = dict(x.split("=", 1) for x in fields)
    ok = method == "POST" and uri in ("/foo/bar", "/foo/hello") and f["status"] == "200"
    if f["api"] == "/tng/tunnel":
        ok = ok and f["ct"] == "message/ohttp-chunked-req"
        tunnel.append(uri)
    elif f["api"] == "/tng/key-config":
        ok = ok and f["ct"] == "application/json"
    else:
        ok = False
    if not ok:
        bad.append(line)
if bad or sorted(tunnel) != ["/foo/bar", "/foo/bar", "/foo/hello", "/foo/hello"]:
    sys.exit("nginx saw something other than the expected opaque POSTs:\n" + "\n".join(bad or lines))
print(f"   ok: {len(lines)} requests, all POST on /foo/bar or /foo/hello; "
      f"{len(tunnel)} tunnel requests (message/ohttp-chunked-req), "
      f"{len(lines) - len(tunnel)} key-config fetches (application/json)")
PY

echo
echo "== attestation the ingress accepted (from its log)"
grep -F "server attestation verified" "$work/ingress.log" ||
  { echo "the ingress logged no verified server attestation" >&2; exit 1; }
# The ingress logs the verified EAR token's claims as key=value fields.
python3 - "$work/ingress.log" <<'PY'
import re
import sys
import time

for line in open(sys.argv[1]):
    if "server attestation verified" not in line:
        continue
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\[[^\]]*\]|\S+)', line))
    exp = int(fields["exp"])
    status = fields["ear_status"]
    if not all(s.endswith("=affirming") for s in status.split(",")):
        sys.exit(f"unexpected ear.status {status}")
    print(f"   egress {fields['url']}: ear.status {status}, policy ids {fields['policy_ids']}, "
          f"token expires {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(exp))} "
          f"(in {exp - int(time.time())} s)")
PY

echo
echo "== scenario passed"
