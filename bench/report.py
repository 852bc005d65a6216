"""Turns bench/run.sh's measurements into bench/results.md.

Each path keeps its best round: the highest req/s and MB/s, the lowest latency and CPU per
request (noise on a shared machine only ever makes a round worse).
"""

import os
import sys
from collections import defaultdict

raw_path, profile_path, out_path = sys.argv[1:4]
env = os.environ
clk_tck = float(env["BENCH_CLK_TCK"])
ref = env["BENCH_REFERENCE"].replace(".", "")
older = env["BENCH_OLDER"].replace(".", "")

wrk = defaultdict(list)
bulk = defaultdict(list)
rss = {}
for line in open(raw_path):
    kind, label, _round, *fields = line.split()
    values = dict(f.split("=", 1) for f in fields)
    if kind == "wrk":
        requests = float(values["requests"])
        cpu_us = float(values["cpu_ticks"]) / clk_tck * 1e6 / requests if requests else float("nan")
        wrk[label].append(
            dict(
                rps=float(values["rps"]),
                p50=float(values["p50"]),
                p99=float(values["p99"]),
                cpu=cpu_us,
                errors=int(values["non2xx"]) + int(values["sockerr"]),
            )
        )
    elif kind == "bulk":
        bulk[label].append(float(values["mbps"]))
    elif kind == "rss":
        rss[label] = int(values["kib"]) / 1024


def best(label):
    rounds = wrk[label]
    return dict(
        rps=max(r["rps"] for r in rounds),
        p50=min(r["p50"] for r in rounds),
        p99=min(r["p99"] for r in rounds),
        cpu=min(r["cpu"] for r in rounds),
        errors=sum(r["errors"] for r in rounds),
        bulk=max(bulk[label]) if bulk[label] else float("nan"),
        spread=max(r["rps"] for r in rounds) / min(r["rps"] for r in rounds),
    )


def ratio(a, b):
    return a / b if b else float("nan")


labels = list(wrk)
transports = []
for label in labels:
    if label.startswith("ours-"):
        transports.append(label[len("ours-") :])

names = {
    "ohttp": "OHTTP",
    "rats-raw": "rats-TLS, multiplex off",
    "rats-mux": "rats-TLS, multiplex on",
}


def who(label):
    if label == "direct":
        return "direct (nginx)"
    side, transport = label.split("-", 1)
    owner = {
        "ours": "ours",
        "ourstel": "ours + metrics, traces, access log",
        f"up{ref}": f"upstream {env['BENCH_REFERENCE']}",
        f"up{older}": f"upstream {env['BENCH_OLDER']}",
    }[side]
    return f"{names[transport]}: {owner}"


rows = []
for label in labels:
    b = best(label)
    ingress = rss.get(f"{label}-ingress")
    egress = rss.get(f"{label}-egress")
    rss_text = f"{ingress:.1f} / {egress:.1f}" if ingress is not None else "—"
    cpu = "—" if label == "direct" else f"{b['cpu']:.0f}"
    rows.append(
        f"| {who(label)} | {b['rps']:,.0f} | {b['p50']:.2f} | {b['p99']:.2f} | {cpu} "
        f"| {b['bulk']:,.0f} | {rss_text} | {b['errors']} | {b['spread']:.2f} |"
    )

verdict = lambda ok: "**PASS**" if ok else "**FAIL**"
targets = {
    # (req/s ≥, p99 ≤, CPU ≤, bulk ≥): issue 11 for OHTTP, issue 10 for rats-TLS.
    "ohttp": (2.0, 0.5, 0.5, 2.0),
    "rats-raw": (1.5, 0.67, 0.5, 1.5),
    "rats-mux": (1.5, 0.67, 0.5, 1.5),
}
ratio_rows = []
target_rows = []
for t in transports:
    ours = best(f"ours-{t}")
    up = best(f"up{ref}-{t}")
    r = dict(
        rps=ratio(ours["rps"], up["rps"]),
        p99=ratio(ours["p99"], up["p99"]),
        cpu=ratio(ours["cpu"], up["cpu"]),
        bulk=ratio(ours["bulk"], up["bulk"]),
    )
    line = f"| {names[t]} | {r['rps']:.2f} | {r['p99']:.2f} | {r['cpu']:.2f} | {r['bulk']:.2f} |"
    if f"up{older}-{t}" in wrk:
        o = best(f"up{older}-{t}")
        line += (
            f" {ratio(ours['rps'], o['rps']):.2f} / {ratio(ours['p99'], o['p99']):.2f} / "
            f"{ratio(ours['cpu'], o['cpu']):.2f} / {ratio(ours['bulk'], o['bulk']):.2f} |"
        )
    else:
        line += " — |"
    ratio_rows.append(line)
    rps_t, p99_t, cpu_t, bulk_t = targets[t]
    target_rows += [
        f"| {names[t]}: req/s ours / {env['BENCH_REFERENCE']} | {r['rps']:.2f}× | ≥ {rps_t}× | {verdict(r['rps'] >= rps_t)} |",
        f"| {names[t]}: p99 ours / {env['BENCH_REFERENCE']} | {r['p99']:.2f}× | ≤ {p99_t}× | {verdict(r['p99'] <= p99_t)} |",
        f"| {names[t]}: CPU per request ours / {env['BENCH_REFERENCE']} | {r['cpu']:.2f}× | ≤ {cpu_t}× | {verdict(r['cpu'] <= cpu_t)} |",
        f"| {names[t]}: bulk MB/s ours / {env['BENCH_REFERENCE']} | {r['bulk']:.2f}× | ≥ {bulk_t}× | {verdict(r['bulk'] >= bulk_t)} |",
    ]
    for side in ("ingress", "egress"):
        mib = rss.get(f"ours-{t}-{side}", float("nan"))
        target_rows.append(f"| {names[t]}: peak RSS, our {side} | {mib:.1f} MiB | ≤ 32 MiB | {verdict(mib <= 32)} |")
    target_rows.append(
        f"| {names[t]}: failed requests through ours | {ours['errors']} | 0 | {verdict(ours['errors'] == 0)} |"
    )

telemetry_rows = []
for t in transports:
    if f"ourstel-{t}" in wrk:
        off = best(f"ours-{t}")["cpu"]
        on = best(f"ourstel-{t}")["cpu"]
        rise = ratio(on, off) - 1
        telemetry_rows.append(
            f"| {names[t]} | {off:.0f} | {on:.0f} | {rise * 100:+.1f} % | ≤ +3 % | {verdict(rise <= 0.03)} |"
        )

telemetry = ""
if telemetry_rows:
    telemetry = (
        "\n## Telemetry cost (metrics + traces + access log on vs off, gateway CPU µs per request)\n\n"
        "| transport | off | on | rise | target | result |\n|---|---:|---:|---:|---:|---|\n"
        + "\n".join(telemetry_rows)
        + "\n"
    )

profile = open(profile_path).read().rstrip()
out = f"""# Benchmark results

Generated by `bench/run.sh` — {env['BENCH_DATE']}.

- Machine: {env['BENCH_NPROC']} CPUs, {env['BENCH_MODEL']}, loopback only; load average before /
  after the runs: {env['BENCH_LOAD_BEFORE']} / {env['BENCH_LOAD_AFTER']} (other processes on the
  machine make every number noisy: compare ratios within one run; CPU per request is steadier
  than req/s)
- Commit: `{env['BENCH_COMMIT']}`; ours: `{env['BENCH_OURS']}`; upstream: the PyPI `tng-sdk`
  binaries {env['BENCH_REFERENCE']} (the reference) and {env['BENCH_OLDER']}
- Backend: nginx {env['BENCH_NGINX']}, `worker_processes 2`, access_log off, static files
- Load: `wrk -t2 -c64 -d{env['BENCH_WRK']} --latency` on a 1 KiB file (64 keep-alive
  connections), {env['BENCH_ROUNDS']} rounds in rotating order, best round per path; bulk:
  `curl -o /dev/null` of a {env['BENCH_BULK']} file, one stream, best of {env['BENCH_BULK_ROUNDS']}
- Tunnels: ingress + egress in mapping mode, `no_ra`, `RUST_LOG=info` for both implementations
- CPU per request: utime+stime of both gateway processes over the wrk run ÷ requests completed

## Absolute numbers (best round)

| path | req/s | p50 ms | p99 ms | gateway CPU µs/req | bulk MB/s | peak RSS MiB ingress / egress | failed requests | req/s spread (best/worst round) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

## Ratios, ours / upstream {env['BENCH_REFERENCE']} (and / {env['BENCH_OLDER']})

| transport | req/s | p99 (lower is better) | CPU per request (lower is better) | bulk MB/s | vs {env['BENCH_OLDER']}: req/s / p99 / CPU / bulk |
|---|---:|---:|---:|---:|---:|
{chr(10).join(ratio_rows)}

## Targets (issue 11 for OHTTP, issue 10 for rats-TLS)

| target | measured | required | result |
|---|---:|---:|---|
{chr(10).join(target_rows)}
{telemetry}
## Where the time goes

`perf record -g -p <pid>` for 10 s under `wrk -t2 -c64 /1k` through our tunnel; self time by
shared object, by area, and the top symbols (`perf report --no-children`):

```
{profile}
```
"""
# Sections other scripts append (bench/udp.py's "## UDP ...") survive a rewrite of this file.
try:
    previous = open(out_path).read()
except FileNotFoundError:
    previous = ""
kept = previous.find("\n## UDP")
if kept >= 0:
    out += previous[kept:]
open(out_path, "w").write(out)
