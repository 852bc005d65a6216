#!/usr/bin/env bash
# Benchmark (not a test; CI never runs it): nginx serving static files on loopback, measured
# directly and through tunnels of ours and of upstream TNG, all in one run on one machine so
# the ratios are comparable. Writes bench/results.md.
#
#   bench/run.sh            # ~10 minutes; needs root for the first install of wrk/nginx
#
# Paths: for each transport (OHTTP, rats-TLS raw, rats-TLS multiplexed) a tunnel of ours and
# one of upstream 2.12.0 (the reference), plus upstream 2.9.0 for OHTTP. Every tunnel is an
# ingress + egress pair in mapping mode with no_ra in front of the same nginx.
#
# The machine is shared and noisy, so every measurement runs ROUNDS times, the paths in a
# different order each round, and each path keeps its best round. Beside req/s and latency the
# steadier figure is the gateways' CPU time per request: utime+stime of the two gateway
# processes (/proc/<pid>/stat) over the wrk run, divided by the requests wrk completed.
#
# Environment: WRK_DURATION (default 10s), ROUNDS (default 3), BULK_SIZE (default 256M),
# BULK_ROUNDS (default 2), PERF=0 to skip profiling, PATHS to measure a subset (e.g.
# "ohttp rats-raw"), OURS_BIN=PATH to measure another binary as "ours" without building,
# OURS_ENV="VAR=value ..." for environment given to our gateways only,
# RESULTS=PATH to write the results elsewhere than bench/results.md, TELEMETRY=1 to add
# rows of ours with metrics, tracing and the access log on (TELEMETRY=metrics: metrics only).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

wrk_duration="${WRK_DURATION:-10s}"
rounds="${ROUNDS:-3}"
bulk_size="${BULK_SIZE:-256M}"
bulk_rounds="${BULK_ROUNDS:-2}"
transports="${PATHS:-ohttp rats-raw rats-mux}"
reference=2.12.0
older=2.9.0

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

# utime+stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
# name in field 2 has no spaces for the binaries measured here).
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}
clk_tck="$(getconf CLK_TCK)"

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

# --- tunnels ---------------------------------------------------------------------------------
# The transport part of an entry: JSON members merged into both sides' entries.
transport_json() {
  case "$1" in
    ohttp) echo '"ohttp":{}' ;;
    rats-raw) echo '"rats_tls":{"multiplex":false}' ;;
    rats-mux) echo '"rats_tls":{"multiplex":true}' ;;
  esac
}
egress_transport_json() {
  case "$1" in
    # Upstream 2.12 insists on rotation_interval once a key object is written.
    ohttp) echo '"ohttp":{"key":{"source":"self_generated","rotation_interval":300}}' ;;
    *) transport_json "$1" ;;
  esac
}

# Our telemetry rows: every exporter that costs something on the data path, pointed at a
# sink that accepts and drops (the stdout exporter logs through the same files as the rest).
# The telemetry rows export metrics to stdout every 60 s and every span over OTLP/HTTP to a
# local sink that accepts and discards them (the production shape; the `stdout` span exporter
# is a debugging aid that pretty-prints every span).
telemetry_json=""
if [ "${TELEMETRY:-0}" = 1 ]; then
  otlp_port="$(free_port)"
  start otlp-sink python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
' "$otlp_port"
  telemetry_json='"metric":{"exporters":[{"type":"stdout","step":60}]},"trace":{"exporters":[{"type":"oltp","protocol":"http/protobuf","endpoint":"http://127.0.0.1:'"$otlp_port"'/v1/traces"}]},'
elif [ "${TELEMETRY:-0}" = metrics ]; then
  # The same rows with metrics only, to tell the metrics' share from the spans'.
  TELEMETRY=1
  telemetry_json='"metric":{"exporters":[{"type":"stdout","step":60}]},'
fi

path_labels=()
path_ports=()
path_gateways=()
launch_pair() {
  local label="$1" binary="$2" transport="$3" extra="${4:-}" egress_port ingress_port envs=()
  # OURS_ENV (e.g. "TOKIO_WORKER_THREADS=1") reaches our processes only: upstream is a tokio
  # program too and would read the same variables.
  if [ "$binary" = "$ours" ] && [ -n "${OURS_ENV:-}" ]; then read -r -a envs <<<"$OURS_ENV"; fi
  egress_port="$(free_port)"
  ingress_port="$(free_port)"
  cat >"$work/$label-egress.json" <<JSON
{${extra}"add_egress":[{"mapping":{"in":{"host":"127.0.0.1","port":$egress_port},"out":{"host":"127.0.0.1","port":$nginx_port}},$(egress_transport_json "$transport"),"no_ra":true}]}
JSON
  cat >"$work/$label-ingress.json" <<JSON
{${extra}"add_ingress":[{"mapping":{"in":{"host":"127.0.0.1","port":$ingress_port},"out":{"host":"127.0.0.1","port":$egress_port}},$(transport_json "$transport"),"no_ra":true}]}
JSON
  # Same log level for both implementations (the product default), logs to a file.
  start "$label-egress" env RUST_LOG=info "${envs[@]}" "$binary" launch --config-file "$work/$label-egress.json"
  wait_port "$egress_port" "$label-egress"
  start "$label-ingress" env RUST_LOG=info "${envs[@]}" "$binary" launch --config-file "$work/$label-ingress.json"
  wait_port "$ingress_port" "$label-ingress"
  # Warm up: the first request fetches the key config / opens the pooled connection.
  curl -sS --fail -o /dev/null "http://127.0.0.1:$ingress_port/1k"
  path_labels+=("$label")
  path_ports+=("$ingress_port")
  path_gateways+=("$(pid_of "$label-ingress") $(pid_of "$label-egress")")
}

echo "== starting tunnels"
path_labels+=("direct")
path_ports+=("$nginx_port")
path_gateways+=("")
for transport in $transports; do
  launch_pair "ours-$transport" "$ours" "$transport"
  if [ "${TELEMETRY:-0}" = 1 ]; then
    launch_pair "ourstel-$transport" "$ours" "$transport" "$telemetry_json"
  fi
  launch_pair "up${reference//./}-$transport" "target/upstream/$reference/tng" "$transport"
  if [ "$transport" = ohttp ]; then
    launch_pair "up${older//./}-$transport" "target/upstream/$older/tng" "$transport"
  fi
done

# --- measurements ----------------------------------------------------------------------------
# One line per measurement: kind label round key=value...; results.md keeps each label's best.
raw="$work/measurements.txt"
: >"$raw"

# wrk latencies come as 812.00us / 1.23ms / 1.02s; normalise to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "nan" }'
}

run_wrk() {
  local i="$1" round="$2" label="${path_labels[$1]}" port="${path_ports[$1]}" out before after pid ticks
  out="$work/wrk-$label-$round.txt"
  before=0
  for pid in ${path_gateways[$i]}; do before=$((before + $(cpu_ticks "$pid"))); done
  wrk -t2 -c64 -d"$wrk_duration" --latency "http://127.0.0.1:$port/1k" >"$out"
  after=0
  for pid in ${path_gateways[$i]}; do after=$((after + $(cpu_ticks "$pid"))); done
  ticks=$((after - before))
  local requests rps p50 p99 non2xx sockerr
  requests="$(awk '/requests in/ {print $1}' "$out")"
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out" | grep . || echo 0)"
  sockerr="$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$out" | grep . || echo 0)"
  echo "wrk $label $round requests=$requests rps=$rps p50=$p50 p99=$p99 non2xx=$non2xx sockerr=$sockerr cpu_ticks=$ticks" >>"$raw"
  printf '   %-22s round %s: %9s req/s  p99 %7s ms  cpu %s ticks\n' "$label" "$round" "$rps" "$p99" "$ticks"
}

run_bulk() {
  local label="${path_labels[$1]}" port="${path_ports[$1]}" round="$2" speed
  speed="$(curl -sS --fail --max-time 600 -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/bulk")"
  echo "bulk $label $round mbps=$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')" >>"$raw"
  printf '   %-22s round %s: %s MB/s\n' "$label" "$round" "$(awk -v s="$speed" 'BEGIN {printf "%.1f", s / 1e6}')"
}

# Round r visits the paths rotated by r (and reversed on odd rounds), so no path always runs
# right after the same neighbour or always first.
order() {
  local r="$1" n="${#path_labels[@]}" k
  for ((k = 0; k < n; k++)); do
    if ((r % 2)); then echo $(((n - 1 - k + r) % n)); else echo $(((k + r) % n)); fi
  done
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
  echo "== round $((r + 1))/$rounds: wrk -t2 -c64 -d$wrk_duration /1k"
  for i in $(order "$r"); do run_wrk "$i" "$r"; done
done
for ((r = 0; r < bulk_rounds; r++)); do
  echo "== bulk round $((r + 1))/$bulk_rounds: $bulk_size download"
  for i in $(order "$r"); do run_bulk "$i" "$r"; done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# Peak RSS after all runs (VmHWM: high-water mark of the resident set).
for name in "${names[@]}"; do
  case "$name" in nginx) continue ;; esac
  pid="$(pid_of "$name")"
  echo "rss $name 0 kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")" >>"$raw"
done

# --- where the time goes: perf profile of our OHTTP egress and ingress under load ----------
profile="$work/perf-top.txt"
: >"$profile"
profile_label="ours-$(echo "$transports" | awk '{print $1}')"
if [ "${PERF:-1}" != 0 ] && command -v perf >/dev/null 2>&1 && perf stat -e task-clock true >/dev/null 2>&1; then
  port=""
  for i in "${!path_labels[@]}"; do
    [ "${path_labels[$i]}" = "$profile_label" ] && port="${path_ports[$i]}"
  done
  for side in egress ingress; do
    echo "== perf record -g of $profile_label-$side under wrk (10 s)"
    wrk -t2 -c64 -d12s "http://127.0.0.1:$port/1k" >/dev/null &
    wrk_pid=$!
    sleep 1
    data="$work/perf-$side.data"
    if perf record -g -o "$data" -p "$(pid_of "$profile_label-$side")" -- sleep 10 >"$work/logs/perf-$side.log" 2>&1; then
      report() {
        perf report -i "$data" --no-children -g none --stdio "$@" 2>/dev/null |
          grep -E '^ +[0-9.]+%' | sed -E 's/([[:space:]]+-)+[[:space:]]*$//; s/[[:space:]]+$//' | cut -c1-170
      }
      {
        echo "# $profile_label-$side: by shared object"
        report --sort dso | head -n 6
        echo "# $profile_label-$side: by area (symbol name contains ...)"
        report --sort symbol | awk '
          { pct = $1; sub(/%/, "", pct); sym = $0 }
          sym ~ /curve25519|x25519|X25519|ec_GFp|fiat_25519/ { a["X25519 (HPKE encap/decap)"] += pct; next }
          sym ~ /chacha|poly1305|aes|gcm|sha2|sha256|hkdf|hmac|HKDF|EVP_/ { a["AEAD, SHA-256, HKDF"] += pct; next }
          sym ~ /\[k\]/ { a["kernel (syscalls, TCP, scheduling)"] += pct; next }
          sym ~ /malloc|free|memmove|memcpy|memset|_int_|unlink_chunk/ { a["allocator and memcpy"] += pct; next }
          sym ~ /hyper|h2::|tokio|mio/ { a["hyper / tokio"] += pct; next }
          { a["other"] += pct }
          END { for (k in a) printf "%8.2f%%  %s\n", a[k], k }' | sort -rn
        echo "# $profile_label-$side: top symbols"
        report --sort dso,symbol | head -n 25
        echo
      } >>"$profile" || true
    else
      echo "perf record failed: $(tail -n 3 "$work/logs/perf-$side.log")" >>"$profile"
    fi
    wait "$wrk_pid" || true
  done
else
  echo "perf not usable on this machine (not installed, PERF=0, or no counters)" >"$profile"
fi

# --- results.md ------------------------------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then
  commit="$commit (+ uncommitted changes)"
fi
model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
BENCH_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" BENCH_NPROC="$(nproc)" BENCH_MODEL="$model" \
BENCH_LOAD_BEFORE="$load_before" BENCH_LOAD_AFTER="$load_after" BENCH_COMMIT="$commit" \
BENCH_NGINX="$(nginx -v 2>&1 | sed 's|.*/||')" BENCH_WRK="$wrk_duration" BENCH_ROUNDS="$rounds" \
BENCH_BULK="$bulk_size" BENCH_BULK_ROUNDS="$bulk_rounds" BENCH_OURS="$ours" BENCH_CLK_TCK="$clk_tck" \
BENCH_REFERENCE="$reference" BENCH_OLDER="$older" \
python3 bench/report.py "$raw" "$profile" "$results_md"
echo "== wrote $results_md"
cat "$results_md"
