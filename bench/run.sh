#!/usr/bin/env bash
# Benchmark (not a test; CI never runs it): nginx serving static files on loopback, measured
# directly, through our tng ingress+egress, and through upstream TNG 2.9.0 ingress+egress, all in
# one run on one machine so the ratios are comparable. Writes bench/results.md.
#
#   bench/run.sh            # ~3 minutes; needs root for the first install of wrk/nginx
#
# Environment: WRK_DURATION (default 15s), BULK_SIZE (default 1G), PERF=0 to skip profiling,
# OURS_BIN=PATH to measure another binary as "ours" without building (checks the script itself),
# RESULTS=PATH to write the results elsewhere than bench/results.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

wrk_duration="${WRK_DURATION:-15s}"
bulk_size="${BULK_SIZE:-1G}"
upstream_version=2.9.0

scripts/deps.sh --bench
scripts/fetch-upstream.sh
if [ -n "${OURS_BIN:-}" ]; then
  ours="$(realpath "$OURS_BIN")"
else
  echo "== cargo build --release --workspace --bins"
  cargo build --release --workspace --bins
  ours="$root/target/release/tng"
fi
results_md="${RESULTS:-$root/bench/results.md}"
upstream="$root/target/upstream/$upstream_version/tng"
work="$root/bench/work"
rm -rf "$work"
mkdir -p "$work/nginx/logs" "$work/nginx/tmp" "$work/www" "$work/logs"

pids=()
names=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || continue
    wait "${pids[$i]}" 2>/dev/null || true
  done
  # The 1 GiB file is sparse, but do not leave it around anyway.
  rm -f "$work/www/bulk"
  exit "$status"
}
trap cleanup EXIT INT TERM

start() {
  local name="$1"
  shift
  "$@" >"$work/logs/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

pid_of() {
  local i
  for i in "${!names[@]}"; do
    if [ "${names[$i]}" = "$1" ]; then
      echo "${pids[$i]}"
      return
    fi
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:PORT accepts TCP (the readiness signal common to ours and upstream).
wait_port() {
  local port="$1" name="$2"
  for _ in $(seq 1 200); do
    if (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$name: port $port not accepting; log:" >&2
  tail -n 30 "$work/logs/$name.log" >&2
  exit 1
}

# --- backend: nginx with a 1 KiB file and a sparse bulk file --------------------------------
head -c 1024 /dev/urandom >"$work/www/1k"
truncate -s "$bulk_size" "$work/www/bulk"
# nginx workers run as nobody when started by root: everything served must be world-readable.
chmod -R a+rX "$work/www"
nginx_port="$(free_port)"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    location / { }
  }
}
CONF
# -e: nginx opens its compiled-in error log before reading the config; keep it in the prefix.
start nginx nginx -p "$work/nginx" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf"
wait_port "$nginx_port" nginx

# --- tunnels: ours and upstream, same layout -------------------------------------------------
launch_pair() {
  local label="$1" binary="$2" egress_port ingress_port
  egress_port="$(free_port)"
  ingress_port="$(free_port)"
  cat >"$work/$label-egress.json" <<JSON
{"add_egress":[{"mapping":{"in":{"host":"127.0.0.1","port":$egress_port},"out":{"host":"127.0.0.1","port":$nginx_port}},"ohttp":{"key":{"source":"self_generated","rotation_interval":300}},"no_ra":true}]}
JSON
  cat >"$work/$label-ingress.json" <<JSON
{"add_ingress":[{"mapping":{"in":{"host":"127.0.0.1","port":$ingress_port},"out":{"host":"127.0.0.1","port":$egress_port}},"ohttp":{},"no_ra":true}]}
JSON
  # Same log level for both implementations (the product default), logs to a file.
  start "$label-egress" env RUST_LOG=info "$binary" launch --config-file "$work/$label-egress.json"
  wait_port "$egress_port" "$label-egress"
  start "$label-ingress" env RUST_LOG=info "$binary" launch --config-file "$work/$label-ingress.json"
  wait_port "$ingress_port" "$label-ingress"
  # Warm up: the first request fetches the key config.
  curl -sS --fail -o /dev/null "http://127.0.0.1:$ingress_port/1k"
  # A global rather than stdout: start() must record the pids in this shell, not a subshell.
  pair_port="$ingress_port"
}

echo "== starting tunnels"
pair_port=""
launch_pair ours "$ours"
ours_port="$pair_port"
launch_pair upstream "$upstream"
upstream_port="$pair_port"

# --- measurements ----------------------------------------------------------------------------
results="$work/results.env"
: >"$results"

# wrk latencies come as 812.00us / 1.23ms / 1.02s; normalise to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "nan" }'
}

run_wrk() {
  local label="$1" port="$2" out
  echo "== wrk -t2 -c64 -d$wrk_duration --latency ($label)"
  out="$work/wrk-$label.txt"
  wrk -t2 -c64 -d"$wrk_duration" --latency "http://127.0.0.1:$port/1k" | tee "$out"
  {
    echo "${label}_rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    echo "${label}_p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
    echo "${label}_p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
    # Failed requests count against a tunnel: wrk reports them separately from req/s.
    echo "${label}_non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out" | grep . || echo 0)"
    echo "${label}_sockerr=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$out" | grep . || echo 0)"
  } >>"$results"
}

run_bulk() {
  local label="$1" port="$2" speed
  echo "== bulk download of $bulk_size ($label)"
  speed="$(curl -sS --fail --max-time 600 -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/bulk")"
  echo "   $speed bytes/s"
  echo "${label}_bulk=$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')" >>"$results"
}

# Other work on the machine skews every number: record the load the run started under.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
run_wrk direct "$nginx_port"
run_wrk ours "$ours_port"
run_wrk upstream "$upstream_port"
run_bulk direct "$nginx_port"
run_bulk ours "$ours_port"
run_bulk upstream "$upstream_port"

# Peak RSS after all runs (VmHWM: high-water mark of the resident set).
for name in ours-ingress ours-egress upstream-ingress upstream-egress; do
  pid="$(pid_of "$name")"
  hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
  echo "$(tr - _ <<<"$name")_rss_kib=$hwm" >>"$results"
done

# --- where the time goes: perf profile of our egress under load --------------------------------
profile="$work/perf-top.txt"
: >"$profile"
if [ "${PERF:-1}" != 0 ] && command -v perf >/dev/null 2>&1; then
  echo "== perf record -g of our egress under wrk (10 s)"
  egress_pid="$(pid_of ours-egress)"
  wrk -t2 -c64 -d12s "http://127.0.0.1:$ours_port/1k" >/dev/null &
  wrk_pid=$!
  # Let the load settle before sampling.
  sleep 1
  if perf record -g -o "$work/perf-egress.data" -p "$egress_pid" -- sleep 10 >"$work/logs/perf-egress.log" 2>&1; then
    # Self time per binary/library first (kernel vs allocator vs crypto vs our code), then the
    # top symbols. perf pads its table with spaces and empty "-" columns: cut those, and very
    # long generic symbol names.
    report() {
      perf report -i "$work/perf-egress.data" --no-children -g none --stdio "$@" 2>/dev/null |
        grep -E '^ +[0-9.]+%' | sed -E 's/([[:space:]]+-)+[[:space:]]*$//; s/[[:space:]]+$//' | cut -c1-170
    }
    {
      echo "# by shared object"
      report --sort dso | head -n 6
      echo "# by area (symbol name contains ...)"
      report --sort symbol | awk '
        { pct = $1; sub(/%/, "", pct); sym = $0 }
        sym ~ /curve25519|x25519/ { a["X25519 (HPKE encap/decap)"] += pct; next }
        sym ~ /chacha|poly1305|aes|gcm|sha2|hkdf|hmac/ { a["AEAD, SHA-256, HKDF"] += pct; next }
        sym ~ /\[k\]/ { a["kernel (syscalls, TCP, scheduling)"] += pct; next }
        sym ~ /malloc|free|memmove|memcpy|memset|_int_|unlink_chunk/ { a["allocator and memcpy"] += pct; next }
        sym ~ /hyper|h2::|tokio|mio/ { a["hyper / tokio"] += pct; next }
        { a["other"] += pct }
        END { for (k in a) printf "%8.2f%%  %s\n", a[k], k }' | sort -rn
      echo "# top symbols"
      report --sort dso,symbol | head -n 25
    } >"$profile" || true
  else
    echo "perf record failed: $(tail -n 3 "$work/logs/perf-egress.log")" >"$profile"
  fi
  wait "$wrk_pid" || true
else
  echo "perf not available on this machine (apt-get install linux-perf failed or PERF=0)" >"$profile"
fi

# --- results.md ------------------------------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then
  commit="$commit (+ uncommitted changes)"
fi
model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
python3 - "$results" "$profile" "$results_md" <<PY
import sys, datetime
env = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l)
profile = open(sys.argv[2]).read().rstrip()
f = lambda k: float(env[k])
MiB = 1024

def ratio(a, b):
    return a / b if b else float("nan")

rows = []
for label, name in [("direct", "direct (nginx)"), ("ours", "ours (tng ingress+egress)"),
                    ("upstream", "upstream TNG $upstream_version ingress+egress")]:
    rows.append(f"| {name} | {f(label+'_rps'):,.0f} | {f(label+'_p50'):.2f} | {f(label+'_p99'):.2f} "
                f"| {int(env[label+'_non2xx'])} / {int(env[label+'_sockerr'])} | {f(label+'_bulk'):,.1f} |")

rps_r = ratio(f("ours_rps"), f("upstream_rps"))
p99_r = ratio(f("ours_p99"), f("upstream_p99"))
bulk_r = ratio(f("ours_bulk"), f("upstream_bulk"))
verdict = lambda ok: "**PASS**" if ok else "**FAIL**"
ours_errors = int(env["ours_non2xx"]) + int(env["ours_sockerr"])
targets = [
    f"| req/s, ours / upstream | {rps_r:.2f}× | ≥ 4× | {verdict(rps_r >= 4)} |",
    f"| p99 latency, ours / upstream (lower is better) | {p99_r:.3f}× | ≤ 0.25× | {verdict(p99_r <= 0.25)} |",
    f"| bulk MB/s, ours / upstream | {bulk_r:.2f}× | ≥ 5× | {verdict(bulk_r >= 5)} |",
]
for proc in ["ingress", "egress"]:
    kib = int(env[f"ours_{proc}_rss_kib"])
    targets.append(f"| peak RSS, our {proc} | {kib / MiB:.1f} MiB | ≤ 32 MiB | {verdict(kib <= 32 * MiB)} |")
targets.append(f"| failed requests through ours under wrk | {ours_errors} | 0 | {verdict(ours_errors == 0)} |")

rss = [f"| {proc} | {int(env[f'ours_{proc}_rss_kib']) / MiB:.1f} | {int(env[f'upstream_{proc}_rss_kib']) / MiB:.1f} |"
       for proc in ["ingress", "egress"]]

out = f"""# Benchmark results

Generated by \`bench/run.sh\` — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}.

- Machine: $(nproc) CPUs, $model, loopback only; load average before the runs: $load_before
  (other processes on the machine make all numbers noisy; compare ratios within one run)
- Commit: \`$commit\`
- Backend: nginx $(nginx -v 2>&1 | sed 's|.*/||'), \`worker_processes 2\`, access_log off, static files
- Load: \`wrk -t2 -c64 -d$wrk_duration --latency\` on a 1 KiB file (64 keep-alive connections);
  bulk: \`curl -o /dev/null\` of a $bulk_size file (sparse), one stream
- Ours: \`$ours\`
- Upstream: the PyPI \`tng-sdk==$upstream_version\` binary
- Tunnels: mapping mode, \`no_ra\`, self-generated key (rotation 300 s), \`RUST_LOG=info\` for both

## Absolute numbers

| path | req/s | p50 ms | p99 ms | non-2xx / socket errors | bulk MB/s |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

## Ratios

| | ours / upstream | ours / direct | upstream / direct |
|---|---:|---:|---:|
| req/s | {rps_r:.2f} | {ratio(f('ours_rps'), f('direct_rps')):.3f} | {ratio(f('upstream_rps'), f('direct_rps')):.3f} |
| p99 latency (lower is better) | {p99_r:.3f} | {ratio(f('ours_p99'), f('direct_p99')):.2f} | {ratio(f('upstream_p99'), f('direct_p99')):.2f} |
| bulk MB/s | {bulk_r:.2f} | {ratio(f('ours_bulk'), f('direct_bulk')):.3f} | {ratio(f('upstream_bulk'), f('direct_bulk')):.3f} |

## Peak RSS (VmHWM after all runs)

| process | ours MiB | upstream MiB |
|---|---:|---:|
{chr(10).join(rss)}

## Targets (issue 2)

| target | measured | required | result |
|---|---:|---:|---|
{chr(10).join(targets)}

## Where the time goes

\`perf record -g -p <our egress>\` for 10 s under \`wrk -t2 -c64 /1k\` through our tunnel; top symbols by
self time (\`perf report --no-children --sort dso,symbol\`):

\`\`\`
{profile}
\`\`\`
"""
open(sys.argv[3], "w").write(out)
PY
echo "== wrote $results_md"
cat "$results_md"
