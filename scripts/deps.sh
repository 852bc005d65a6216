#!/usr/bin/env bash
# Installs the Debian packages the tests (and, with --bench, the benchmark) need.
#
# Idempotent: apt-get runs only when a required command is missing, so running it before every
# test run costs nothing on a prepared machine. Installing needs root; without root the script
# only reports what is missing and fails, because the tests would fail later in a less clear way.
#
#   scripts/deps.sh           # test dependencies
#   scripts/deps.sh --bench   # plus wrk (load generator) and perf (profiling, best effort)
set -euo pipefail

bench=false
for arg in "$@"; do
  case "$arg" in
    --bench) bench=true ;;
    *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

# command -> Debian package providing it. iptables/ipset/iproute2/tcpdump are used by the
# capture and outer-leg tests, nginx is the L7 gateway in the end-to-end topology, prometheus
# scrapes the control interface's /metrics in the telemetry tests, haproxy is the L4 load
# balancer that speaks the PROXY protocol in the client-address tests; curl, python3, psql and
# gcc (a static test program) are the applications of the `tng exec` tests; dnsmasq (a DNS
# server answering from its own hosts file) and dig are the service and client of the
# `netfilter_udp` tests.
declare -A need=(
  [curl]=curl
  [nginx]=nginx
  [iptables]=iptables
  [ip]=iproute2
  [ipset]=ipset
  [tcpdump]=tcpdump
  [openssl]=openssl
  [prometheus]=prometheus
  [haproxy]=haproxy
  [python3]=python3
  [psql]=postgresql-client
  [gcc]=gcc
  [dnsmasq]=dnsmasq-base
  [dig]=bind9-dnsutils
)
if $bench; then
  need[wrk]=wrk
fi

# Debian keeps admin tools in /usr/sbin, which is not always on a login-less PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for cmd in "${!need[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${need[$cmd]}")
  fi
done

# The `tng exec` tests build a static program (gcc -static needs the static C library).
if [ -z "$(find /usr/lib -name libc.a -print -quit 2>/dev/null)" ]; then
  missing+=(libc6-dev)
fi

# nginx's stream module (the L4 gateway of the rats-TLS topology) is a dynamic module in
# Debian, packaged apart from nginx and loaded by path from the tests' own nginx.conf.
if [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  missing+=(libnginx-mod-stream)
fi

want_perf=false
if $bench && ! command -v perf >/dev/null 2>&1; then
  want_perf=true
fi

if [ ${#missing[@]} -eq 0 ] && ! $want_perf; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/deps.sh: missing packages: ${missing[*]:-} $($want_perf && echo linux-perf)" >&2
  echo "scripts/deps.sh: run as root, or: sudo apt-get install ${missing[*]:-}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Package installs must not start daemons (nginx would grab port 80 and keep running):
# tests start their own nginx instances. policy-rc.d exit code 101 = "action forbidden".
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=true
fi
cleanup() {
  if $created_policy; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

# A fresh machine (or container) may have empty package lists; update only when installing.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -print -quit 2>/dev/null)" ]; then
  apt-get update
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/deps.sh: installing ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

if $want_perf; then
  # perf is only for the benchmark's profile; its package name differs between releases
  # and it may be unavailable, in which case bench/run.sh says so in the results.
  apt-get install -y --no-install-recommends linux-perf ||
    echo "scripts/deps.sh: linux-perf not installable; the benchmark will skip profiling" >&2
fi
