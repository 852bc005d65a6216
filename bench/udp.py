#!/usr/bin/env python3
"""UDP benchmark (not a test; CI never runs it): datagrams/s and gateway CPU per datagram
through a mapping_udp ingress+egress pair of ours and of upstream 2.12.0, same run, same
machine, no_ra, on loopback, in front of one UDP echo service.

A client keeps WINDOW datagrams of SIZE bytes in flight for DURATION seconds per round and
counts echoes; CPU = utime+stime of both gateway processes (/proc/<pid>/stat) over the round,
divided by the datagrams echoed. Rounds alternate between the pairs; each pair keeps its best.
The echo service and the client are `tng-devkit udp-echo` / `udp-load` (release build, next to
OURS_BIN): compiled, they leave the CPU to the gateways, so datagrams/s measures them.

    OURS_BIN=target/release/tng ROUNDS=3 DURATION=5 python3 bench/udp.py [RESULTS_FILE]

Prints one markdown row per pair and the ratios; appends them to RESULTS_FILE when given.
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.environ.get("OURS_BIN", os.path.join(ROOT, "target/release/tng"))
THEIRS = os.environ.get("UPSTREAM_BIN", os.path.join(ROOT, "target/upstream/2.12.0/tng"))
DEVKIT = os.environ.get("DEVKIT_BIN", os.path.join(ROOT, "target/release/tng-devkit"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = float(os.environ.get("DURATION", "5"))
SIZE = int(os.environ.get("SIZE", "1000"))
WINDOW = int(os.environ.get("WINDOW", "64"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def echo_server():
    port = free_port()
    proc = subprocess.Popen([DEVKIT, "udp-echo", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return port, proc


def entry(in_port, out_port):
    return {"mapping_udp": {"in": {"host": "127.0.0.1", "port": in_port},
                            "out": {"host": "127.0.0.1", "port": out_port}}, "no_ra": True}


def launch(binary, side, config, tmp):
    path = os.path.join(tmp, f"{side}-{os.path.basename(os.path.dirname(binary))}-{time.time_ns()}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    log = open(path + ".log", "w")
    return subprocess.Popen([binary, "launch", "--config-file", path], stdout=log, stderr=log,
                            env=dict(os.environ, RUST_LOG="warn"))


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pair(binary, backend, tmp):
    eg_port, in_port = free_port(), free_port()
    eg = launch(binary, "egress", {"add_egress": [entry(eg_port, backend)]}, tmp)
    time.sleep(0.5)
    ing = launch(binary, "ingress", {"add_ingress": [entry(in_port, eg_port)]}, tmp)
    time.sleep(0.8)
    return [eg, ing], in_port


def round_(procs, in_port):
    c0 = sum(cpu(p.pid) for p in procs)
    out = subprocess.run([DEVKIT, "udp-load", "--target", f"127.0.0.1:{in_port}", "--size", str(SIZE),
                          "--window", str(WINDOW), "--duration", str(DURATION)],
                         capture_output=True, text=True, check=True).stdout
    c1 = sum(cpu(p.pid) for p in procs)
    result = json.loads(out)
    got = result["echoed"]
    return got / result["seconds"], (c1 - c0) / max(got, 1) * 1e6


def main():
    tmp = tempfile.mkdtemp(prefix="tng-udp-bench-")
    backend, echo = echo_server()
    paths = {"ours": OURS, "upstream 2.12.0": THEIRS}
    running = {name: pair(b, backend, tmp) for name, b in paths.items()}
    best = {name: (0.0, float("inf")) for name in paths}
    try:
        for r in range(ROUNDS):
            order = list(paths) if r % 2 == 0 else list(reversed(list(paths)))
            for name in order:
                rate, us = round_(*running[name])
                print(f"round {r + 1} {name}: {rate:.0f} datagrams/s, {us:.1f} µs CPU/datagram", flush=True)
                best[name] = (max(best[name][0], rate), min(best[name][1], us))
    finally:
        for procs, _ in running.values():
            for p in procs:
                p.terminate()
        echo.terminate()
    o, t = best["ours"], best["upstream 2.12.0"]
    lines = [
        f"\n## UDP (`mapping_udp`, no_ra, loopback; {SIZE}-byte datagrams, window {WINDOW}, {ROUNDS} alternating rounds of {DURATION:.0f} s, best of each)\n",
        "| pair | datagrams/s | gateway CPU per datagram (µs, both processes) |",
        "|---|---|---|",
        f"| ours ({os.path.relpath(OURS, ROOT)}) | {o[0]:.0f} | {o[1]:.1f} |",
        f"| upstream 2.12.0 | {t[0]:.0f} | {t[1]:.1f} |",
        f"| ratio ours / upstream | {o[0] / t[0]:.2f}× (target ≥ 1.5×) | {o[1] / t[1]:.2f}× (target ≤ 0.67×) |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
