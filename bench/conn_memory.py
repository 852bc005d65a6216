#!/usr/bin/env python3
"""Memory per idle keep-alive connection of a tng ingress and egress.

Starts a devkit backend, an egress and an ingress (mapping mode, no_ra, loopback) from
target/<profile>/, then for each gateway: records its RSS, opens N keep-alive connections that
each complete one request (ingress: GET /echo through the tunnel; egress: a plain GET, which
the egress answers 403 and keeps the connection), lets the process settle, records RSS
again, and reports (after - before) / N. Usage: bench/conn_memory.py [N] [debug|release]
"""
import json, os, socket, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
PROFILE = sys.argv[2] if len(sys.argv) > 2 else "release"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", PROFILE)
TMP = tempfile.mkdtemp(prefix="tng-connmem-")
LIMITS = {"idle_timeout": 3600, "header_read_timeout": 3600, "max_connections": N + 100}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def launch(name, config, ready_port):
    path = os.path.join(TMP, f"{name}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    log = open(os.path.join(TMP, f"{name}.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "tng"), "launch", "--config-file", path],
                            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", ready_port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start; see {TMP}")


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.split(b" ")[1]


def measure(name, pid, port, request):
    conns = []
    time.sleep(1)
    before = rss_kib(pid)
    for _ in range(N):
        s = socket.create_connection(("127.0.0.1", port))
        if request:
            s.sendall(request)
            read_response(s)
        conns.append(s)
    time.sleep(2)
    after = rss_kib(pid)
    per_conn = (after - before) * 1024 / N
    print(f"{name}: RSS {before} KiB -> {after} KiB with {N} connections: "
          f"{per_conn:.0f} bytes/connection")
    for s in conns:
        s.close()
    return before, after, per_conn


def scenario(name, which, request):
    """A fresh backend + egress + ingress, then `measure` on one of the gateways."""
    backend_port = free_port()
    backend = subprocess.Popen([os.path.join(BIN, "tng-devkit"), "backend", "--listen",
                                f"127.0.0.1:{backend_port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eport, iport = free_port(), free_port()
    procs = [backend]
    try:
        procs.append(launch("egress", {"add_egress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": eport},
                        "out": {"host": "127.0.0.1", "port": backend_port}},
            "ohttp": {}, "no_ra": True, "limits": LIMITS}]}, eport))
        procs.append(launch("ingress", {"add_ingress": [{
            "mapping": {"in": {"host": "127.0.0.1", "port": iport},
                        "out": {"host": "127.0.0.1", "port": eport}},
            "ohttp": {}, "no_ra": True, "limits": LIMITS}]}, iport))
        warm = socket.create_connection(("127.0.0.1", iport))
        warm.sendall(b"GET /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
        assert read_response(warm) == b"200", "tunnel does not work"
        warm.close()
        if which == "ingress":
            return measure(name, procs[2].pid, iport, request)
        return measure(name, procs[1].pid, eport, request)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def main():
    print(f"N = {N}, binaries from {BIN}")
    echo = b"GET /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi"
    scenario("ingress, idle after one request through the tunnel", "ingress", echo)
    scenario("egress, idle after one request (403, non-TNG)", "egress",
             b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    scenario("ingress, connected, no request yet", "ingress", None)
    scenario("egress, connected, no request yet", "egress", None)


if __name__ == "__main__":
    main()
