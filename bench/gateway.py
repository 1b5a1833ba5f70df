"""Gateway throughput benchmark against nginx, loopback only, bounded in time.

    .venv/bin/python bench/gateway.py [--duration 5] [--runs 3] [--connections 50]

Installs nginx and wrk with apt-get when missing, runs nginx as the upstream (CPU 1), and
measures, each through wrk (CPU 1) with the proxy under test pinned to CPU 0:

  direct     wrk → upstream nginx
  nginx      wrk → nginx proxy_pass with upstream keep-alive (one worker)
  plain      wrk → hypercare, one worker, routing only
  full       wrk → hypercare, one worker, key auth + local rate limit + a call-record sink
  capture    (with --capture) full, plus `telemetry.capture.default: all`: every call's
             headers and body captured and redacted in the worker

Prints req/s, p50 and p99 (medians over the runs) and each proxy's ratio to nginx proxy_pass.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UPSTREAM_PORT = 19101
NGINX_PROXY_PORT = 19102
HC_PORT = 19103
KEY = "bench-key-0123456789"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx-{name}.pid;
error_log {tmp}/nginx-{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {body}
}}
"""
UPSTREAM_BODY = """
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "hello from the upstream, a small json-sized body\\n"; }}
  }}
"""
PROXY_BODY = """
  upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
"""


class BatchSink:
    """Hands records over in batches of 1024, as a telemetry shipper's queue would.

    The batch is dropped when full (shipping is the telemetry issue's cost, not the gateway's);
    keeping a huge ring of records alive instead would mostly measure Python's cyclic GC
    walking them.
    """

    def __init__(self) -> None:
        self.batch: list[object] = []
        self.shipped = 0

    def emit(self, record: object, capture: object = None) -> None:
        batch = self.batch
        batch.append(record if capture is None else (record, capture))
        if len(batch) >= 1024:
            self.shipped += len(batch)
            self.batch = []


def batch_sink(index: int) -> BatchSink:
    return BatchSink()


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None]
    if missing:
        print(f"installing {', '.join(missing)} with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True, env=env, timeout=600
        )


def start_nginx(tmp: Path, name: str, body: str, cpu: int) -> subprocess.Popen[bytes]:
    conf = tmp / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, name=name, body=body))
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), "nginx", "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` (and their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def nginx_workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(c) for c in children]


def wrk(
    port: int, duration: int, connections: int, headers: list[str]
) -> tuple[float, float, float, int]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}/payment/status")
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} error responses:\n{out}")

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, pct("50"), pct("99"), requests


def hypercare_config(full: bool, capture: bool = False) -> str:
    route = """
    - name: payment-status
      match: {path: /payment/status, methods: [GET]}
      upstream: payments
"""
    if full:
        route += """      auth: key
      rate_limit: {limit: 100000000, per: 1s, by: consumer}
"""
    return f"""
gateway:
  upstreams:
    payments:
      targets: ["127.0.0.1:{UPSTREAM_PORT}"]
  routes:{route}
  consumers:
    - name: bench
      keys: ["{KEY}"]
""" + ("telemetry:\n  capture: {default: all}\n" if capture else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--capture", action="store_true", help="also measure capture: all")
    args = ap.parse_args()
    ensure_tools()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from hypercare.config import parse_config
    from hypercare.gateway.supervisor import start_workers

    results: dict[str, list[tuple[float, float, float]]] = {}
    capacity: dict[str, list[float]] = {}  # requests per CPU-second of the proxy
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as d:
        tmp = Path(d)
        procs = [start_nginx(tmp, "upstream", UPSTREAM_BODY.format(port=UPSTREAM_PORT), 1)]
        procs.append(
            start_nginx(tmp, "proxy", PROXY_BODY.format(up=UPSTREAM_PORT, port=NGINX_PROXY_PORT), 0)
        )
        groups = []
        try:
            wait_port(UPSTREAM_PORT)
            wait_port(NGINX_PROXY_PORT)
            wait_for_workers = time.monotonic() + 10
            while not nginx_workers(procs[1].pid) and time.monotonic() < wait_for_workers:
                time.sleep(0.05)
            targets: dict[str, tuple[int, list[str]]] = {
                "direct": (UPSTREAM_PORT, []),
                "nginx": (NGINX_PROXY_PORT, []),
            }
            cpu_pids: dict[str, list[int]] = {
                "direct": nginx_workers(procs[0].pid),
                "nginx": nginx_workers(procs[1].pid),
            }
            configs = [("plain", False, False), ("full", True, False)]
            if args.capture:
                configs.append(("capture", True, True))
            for i, (name, full, capture) in enumerate(configs):
                port = HC_PORT + i
                group = start_workers(
                    parse_config(hypercare_config(full, capture)),
                    f"127.0.0.1:{port}",
                    workers=1,
                    sink_factory=batch_sink if full else None,
                )
                groups.append(group)
                for pid in group.pids:
                    os.sched_setaffinity(pid, {0})
                targets[name] = (port, [f"apikey: {KEY}"] if full else [])
                cpu_pids[name] = group.pids
            for port, headers in targets.values():
                wrk(port, 1, args.connections, headers)  # warm up (pools, caches)
            for run in range(args.runs):
                for name, (port, headers) in targets.items():
                    cpu_before = cpu_seconds(cpu_pids[name])
                    *r, requests = wrk(port, args.duration, args.connections, headers)
                    cpu = cpu_seconds(cpu_pids[name]) - cpu_before
                    results.setdefault(name, []).append((r[0], r[1], r[2]))
                    capacity.setdefault(name, []).append(requests / cpu if cpu > 0 else 0.0)
                    print(
                        f"run {run + 1} {name:7s} {r[0]:10.0f} req/s"
                        f"  p50 {r[1]:.2f} ms  p99 {r[2]:.2f} ms"
                        f"  {capacity[name][-1]:8.0f} req per CPU-second",
                        file=sys.stderr,
                    )
        finally:
            for g in groups:
                g.stop(5)
            for p in procs:
                p.send_signal(signal.SIGQUIT)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    med = {
        k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()
    }
    base = med["nginx"][0]
    print(
        f"\nmedians of {args.runs} runs, {args.duration}s each,"
        f" {args.connections} connections, wrk -t1"
    )
    # Runs interleave the configurations, so a per-run ratio cancels most of the machine's
    # background load; its median is the steadier number on a shared machine.
    # The proxy's requests per CPU-second is what it would serve with a core of its own: on a
    # shared, noisy machine it is far steadier than req/s, which other tenants' load distorts.
    print(
        f"{'config':8s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'x nginx':>8s}"
        f" {'x nginx/run':>12s} {'req/CPU-s':>10s} {'x nginx':>8s}"
    )
    cap = {k: statistics.median(v) for k, v in capacity.items()}
    for k, (rps, p50, p99) in med.items():
        per_run = statistics.median(
            r[0] / n[0] for r, n in zip(results[k], results["nginx"], strict=True)
        )
        print(
            f"{k:8s} {rps:10.0f} {p50:8.2f} {p99:8.2f} {rps / base:8.2f} {per_run:12.2f}"
            f" {cap[k]:10.0f} {cap[k] / cap['nginx']:8.2f}"
        )


if __name__ == "__main__":
    main()
