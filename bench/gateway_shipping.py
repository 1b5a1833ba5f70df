"""End-to-end gateway benchmark with call records shipped to a live console.

    .venv/bin/python bench/gateway_shipping.py [--duration 5] [--runs 5] [--connections 50]

The full-featured configuration of `bench/gateway.py` (key auth + local rate limit; one worker),
in three deployments, started once each and measured interleaved, run after run:

  shipping     `hypercare up --workers 1`: the worker ships every call record to the console
               (the shipper `up` enables), which stores them (SQLite) and feeds detection
  records      the same configuration with each call record handed to a trivial in-memory
               sink (`bench/gateway.py`'s "full" BatchSink): the fair baseline, so the ratio
               shipping / records isolates the cost of shipping
  no-shipping  `hypercare gateway --workers 1`: the same configuration, no sink at all

The gateway worker is pinned to CPU 0 in all three; nginx (upstream), wrk and the console
process share CPU 1. Prints req/s and the worker's requests per CPU-second (utime+stime from
/proc), the shipping/records and shipping/no-shipping ratios (per-run medians), and the
console's ingested record count (from its /metrics) to show the records really arrive.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import (
    KEY,
    UPSTREAM_BODY,
    UPSTREAM_PORT,
    batch_sink,
    cpu_seconds,
    ensure_tools,
    hypercare_config,
    start_nginx,
    wait_port,
    wrk,
)

SHIP_PORT, PLAIN_PORT, RECORDS_PORT = 19111, 19112, 19117
CONSOLE_PORT, SHIP_ADMIN, PLAIN_ADMIN = 19113, 19114, 19116
ADMIN = "bench-admin-token-0123456789abcdef"


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def workers_of(pid: int, port: int, timeout: float = 60.0) -> list[int]:
    """The gateway worker processes under `pid` (those holding a socket on `port`)."""
    wait_port(port, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for child in children(pid):
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"resource_tracker" not in cmd:
                found.append(child)
        if found:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"no gateway worker under {pid}")


def ingested(client: httpx.Client) -> float:
    text = client.get(f"http://127.0.0.1:{CONSOLE_PORT}/metrics").text
    m = re.search(
        r"^hypercare_telemetry_ingested_records_total(?:\{[^}]*\})?\s+([\d.e+]+)", text, re.M
    )
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    args = ap.parse_args()
    ensure_tools()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERCARE_")} | {
        "HYPERCARE_ADMIN_TOKEN": ADMIN
    }
    from hypercare.config import parse_config
    from hypercare.gateway.supervisor import start_workers

    hc = [sys.executable, "-m", "hypercare"]
    names = ("shipping", "records", "no-shipping")
    rps: dict[str, list[float]] = {n: [] for n in names}
    cap: dict[str, list[float]] = {n: [] for n in names}
    group = None
    with tempfile.TemporaryDirectory(prefix="hc-bench-ship-") as d:
        tmp = Path(d)
        cfg = tmp / "hypercare.yaml"
        cfg.write_text(hypercare_config(True))
        procs: list[subprocess.Popen[bytes]] = []
        logs = [open(tmp / "up.log", "wb"), open(tmp / "gw.log", "wb")]  # noqa: SIM115
        try:
            procs.append(start_nginx(tmp, "upstream", UPSTREAM_BODY.format(port=UPSTREAM_PORT), 1))
            wait_port(UPSTREAM_PORT)
            up = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    *hc,
                    "up",
                    "--config",
                    str(cfg),
                    "--data-dir",
                    str(tmp / "data"),
                    "--workers",
                    "1",
                    "--console-listen",
                    f"127.0.0.1:{CONSOLE_PORT}",
                    "--gateway-listen",
                    f"127.0.0.1:{SHIP_PORT}",
                    "--gateway-admin-listen",
                    f"127.0.0.1:{SHIP_ADMIN}",
                ],
                stdout=logs[0],
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(up)
            gw = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    *hc,
                    "gateway",
                    "--config",
                    str(cfg),
                    "--listen",
                    f"127.0.0.1:{PLAIN_PORT}",
                    "--workers",
                    "1",
                    "--admin-listen",
                    f"127.0.0.1:{PLAIN_ADMIN}",
                ],
                stdout=logs[1],
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(gw)
            group = start_workers(
                parse_config(cfg.read_text()),
                f"127.0.0.1:{RECORDS_PORT}",
                workers=1,
                sink_factory=batch_sink,
            )
            pids = {
                "shipping": workers_of(up.pid, SHIP_PORT),
                "records": group.pids,
                "no-shipping": workers_of(gw.pid, PLAIN_PORT),
            }
            for worker_pids in pids.values():
                for pid in worker_pids:
                    os.sched_setaffinity(pid, {0})
            ports = {"shipping": SHIP_PORT, "records": RECORDS_PORT, "no-shipping": PLAIN_PORT}
            headers = [f"apikey: {KEY}"]
            console = httpx.Client(timeout=10, headers={"authorization": f"Bearer {ADMIN}"})
            for port in ports.values():
                wrk(port, 1, args.connections, headers)  # warm up
            time.sleep(1)
            before = ingested(console)
            served = 0
            for run in range(args.runs):
                for name, port in ports.items():
                    cpu0 = cpu_seconds(pids[name])
                    r, _, _, requests = wrk(port, args.duration, args.connections, headers)
                    cpu = cpu_seconds(pids[name]) - cpu0
                    rps[name].append(r)
                    cap[name].append(requests / cpu if cpu > 0 else 0.0)
                    if name == "shipping":
                        served += requests
                    print(
                        f"run {run + 1} {name:12s} {r:8.0f} req/s"
                        f" {cap[name][-1]:8.0f} req per CPU-second",
                        file=sys.stderr,
                    )
            time.sleep(3)  # the last batches (every 250 ms) reach the console
            after = ingested(console)
            console.close()
        finally:
            if group is not None:
                group.stop(5)
            for p in reversed(procs):
                p.send_signal(signal.SIGQUIT if p is procs[0] else signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            for f in logs:
                f.close()

    def ratios(series: dict[str, list[float]], base: str) -> list[float]:
        return [s / b for s, b in zip(series["shipping"], series[base], strict=True)]

    print(
        f"\nmedians of {args.runs} runs, {args.duration}s each, {args.connections} connections,"
        f" full configuration, load average {os.getloadavg()[0]:.2f}"
    )
    for name in rps:
        print(
            f"{name:12s} {statistics.median(rps[name]):8.0f} req/s"
            f" {statistics.median(cap[name]):8.0f} req per CPU-second"
        )
    for base in ("records", "no-shipping"):
        print(
            f"shipping / {base}: req/s {statistics.median(ratios(rps, base)):.3f}"
            f" (per-run median), req per CPU-second {statistics.median(ratios(cap, base)):.3f}"
        )
    print(f"console ingested {after - before:.0f} records of {served} served while shipping")


if __name__ == "__main__":
    main()
