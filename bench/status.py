"""Status page benchmark, loopback only, bounded in time.

1. Serving: `/api/v2/summary.json` and `/status` from the console (its in-memory snapshot)
   against nginx serving the same summary.json bytes as a static file, same run. wrk (one
   thread, CPU 1) drives each; the console's process tree and nginx's worker are pinned
   to CPU 0. Prints req/s, p50/p99 and requests per CPU-second of the server, and the ratio
   to nginx (goal: ≥ 0.3× nginx per CPU-second, p99 ≤ 10 ms). The console answers these in
   its HTTP protocol (`hypercare.api.fastpath`); `/api/v2/summary%2Ejson`, the same
   document by a percent-encoded path, is left to the ASGI app and shows what that costs.
   Then the cost of each path in process, without sockets: the protocol fed a request, and
   the ASGI app called with a scope.
2. Detection latency: the demo shop behind the gateway with steady traffic; payments starts
   answering 503 to every call; the time until `summary.json` shows Payments other than
   operational is measured (and until it is back after the fault is lifted), several times
   (goal: ≤ 5 s median).

    .venv/bin/python bench/status.py [--duration 5] [--runs 3] [--flips 5]

Needs nginx and wrk (installed with apt-get when missing, as bench/gateway.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import cpu_seconds, ensure_tools, nginx_workers, start_nginx, wait_port
from tests.support import hypercare_up

from hypercare.demo.config import DEMO_KEY, demo_yaml
from hypercare.demo.shop import Faults, Shop
from hypercare.demo.traffic import Traffic

NGINX_PORT = 19131

STATIC_BODY = """
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {root};
    location / {{ default_type application/json; etag on; }}
  }}
"""

STATUS_CONFIG = """
status:
  page: {name: Bench status}
  rate_limit: 10000000
  components:
    - {name: Payments, group: Checkout, routes: [payment-create, payment-status]}
    - {name: Orders, group: Checkout, tags: {component: orders}}
    - {name: Catalog, tags: {component: catalog}}
  hysteresis: {raise_after: 2s, clear_after: 5s}
"""


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out = [pid]
    for p in out:
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return list(dict.fromkeys(out))


def listener(port: int) -> int | None:
    """The pid of the process listening on `port` (the console child of `up`)."""
    import re

    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def pin(pids: list[int], cpu: int) -> None:
    for p in pids:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(p)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


def wrk_url(url: str, duration: int, connections: int) -> tuple[float, float, float, int]:
    import re

    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} error responses:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, pct("50"), pct("99"), requests


class ShopThread:
    """The demo shop and its traffic on a loop of their own (the benchmark thread blocks)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.shop = Shop()
        self.traffic: Traffic | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.shop.start())

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)  # type: ignore[arg-type]

    def start_traffic(self, host: str, port: int, rate: float) -> None:
        async def go() -> None:
            self.traffic = Traffic(host, port, rate=rate, api_key=DEMO_KEY)
            self.traffic.start()

        self.call(go())

    def faults(self, faults: Faults) -> None:
        self.shop.services["payments"].faults = faults

    def close(self) -> None:
        async def stop() -> None:
            if self.traffic is not None:
                await self.traffic.stop()
            await self.shop.close()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def payments(http: httpx.Client) -> str:
    comps = http.get("/api/v2/summary.json").json()["components"]
    return str(next(c["status"] for c in comps if c["name"] == "Payments"))


def until(http: httpx.Client, want: bool, timeout: float = 60) -> float:
    """Seconds until Payments is operational (want=True) or not (want=False)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (payments(http) == "operational") == want:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("nan")


class NullTransport(asyncio.Transport):
    """Takes what the protocol writes and forgets it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default


def inprocess_cost(tmp: Path, n: int = 20000) -> tuple[float, float]:
    """CPU µs per summary.json request (no server, no socket) through the console's HTTP
    protocol with its fast path (parse, answer, one write), and through the ASGI app alone
    (called with a scope): what each costs before the loop and the kernel."""
    from uvicorn.server import ServerState

    from hypercare.api.app import build_state, create_app
    from hypercare.config import parse_config
    from hypercare.server import console_config
    from hypercare.status.views import PublicDocs
    from hypercare.store.db import create_engine

    async def run() -> tuple[float, float]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp / 'inproc.db'}")
        state = build_state(parse_config(STATUS_CONFIG, "<bench>"), engine)
        app = create_app(state, background=False)
        config = console_config(app, "127.0.0.1", 0, [], PublicDocs(state).answer)
        config.load()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=ServerState(), app_state={}
        )
        transport = NullTransport()
        protocol.connection_made(transport)
        request = b"GET /api/v2/summary.json HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\n\r\n"
        for _ in range(200):
            protocol.data_received(request)
        started = time.process_time()
        for _ in range(n):
            protocol.data_received(request)
        fast = (time.process_time() - started) / n * 1e6
        if transport.writes != n + 200:
            raise RuntimeError(f"the fast path wrote {transport.writes} times for {n + 200}")
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/v2/summary.json",
            "headers": [],
            "client": ("127.0.0.1", 1),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(_: object) -> None:
            return None

        for _ in range(200):
            await app(dict(scope), receive, send)
        started = time.process_time()
        for _ in range(n):
            await app(dict(scope), receive, send)
        cost = (time.process_time() - started) / n * 1e6
        protocol.connection_lost(None)
        await engine.dispose()
        return fast, cost

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--runs", type=int, default=3, help="wrk runs per target")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--flips", type=int, default=5, help="fault injections to time")
    ap.add_argument("--rate", type=float, default=40.0, help="shop requests per second")
    args = ap.parse_args()
    ensure_tools()
    shop = ShopThread()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        data.mkdir()
        config = data / "hypercare.yaml"
        config.write_text(demo_yaml(shop.shop.ports, STATUS_CONFIG))
        nginx = None
        try:
            with hypercare_up(data, config=config, timeout=120) as up:
                http = httpx.Client(base_url=up.url, timeout=10)
                until(http, True)
                root = tmp / "www" / "api" / "v2"
                root.mkdir(parents=True)
                body = http.get("/api/v2/summary.json").content
                (root / "summary.json").write_bytes(body)
                # nginx's worker runs unprivileged: let it read the file
                for p in (tmp, tmp / "www", tmp / "www" / "api", root):
                    p.chmod(0o755)
                (root / "summary.json").chmod(0o644)
                nginx = start_nginx(
                    tmp, "static", STATIC_BODY.format(port=NGINX_PORT, root=tmp / "www"), 0
                )
                wait_port(NGINX_PORT)
                deadline = time.monotonic() + 10
                while not nginx_workers(nginx.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                pin(tree(up.proc.pid), 0)
                console = listener(up.console_port)
                console_pids = [console] if console else tree(up.proc.pid)
                targets = {
                    "nginx static summary.json": (
                        f"http://127.0.0.1:{NGINX_PORT}/api/v2/summary.json",
                        nginx_workers(nginx.pid),
                    ),
                    "hypercare summary.json": (f"{up.url}/api/v2/summary.json", console_pids),
                    "hypercare /status": (f"{up.url}/status", console_pids),
                    "hypercare via the ASGI app": (
                        f"{up.url}/api/v2/summary%2Ejson",
                        console_pids,
                    ),
                }
                # the console's background loops (detection, telemetry, status) cost CPU
                # with no request at all: measured idle, and also reported without it
                before = cpu_seconds(console_pids)
                time.sleep(args.duration)
                idle = (cpu_seconds(console_pids) - before) / args.duration
                print(f"console idle: {idle * 1000:.0f} CPU ms per second", flush=True)
                results: dict[str, list[tuple[float, float, float, float]]] = {}
                above_idle: dict[str, list[float]] = {}
                for name, (url, pids) in targets.items():
                    wrk_url(url, 1, args.connections)  # warm up
                    for _ in range(args.runs):
                        before = cpu_seconds(pids)
                        rps, p50, p99, n = wrk_url(url, args.duration, args.connections)
                        cpu = cpu_seconds(pids) - before
                        results.setdefault(name, []).append(
                            (rps, p50, p99, n / cpu if cpu > 0 else 0.0)
                        )
                        busy = cpu - (idle * args.duration if pids is console_pids else 0.0)
                        above_idle.setdefault(name, []).append(n / busy if busy > 0 else 0.0)
                        print(
                            f"{name:28s} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                            f"  {n / cpu if cpu else 0:9.0f} req/CPU-s",
                            flush=True,
                        )
                # --- part 2: threshold to summary.json ----------------------------------
                gw_host, _, gw_port = (up.gateway or "").rpartition(":")
                shop.start_traffic(gw_host, int(gw_port), args.rate)
                time.sleep(3)  # traffic flowing, component operational
                until(http, True)
                raised: list[float] = []
                cleared: list[float] = []
                for _ in range(args.flips):
                    shop.faults(Faults(error_rate=1.0, paths=("/payment/status", "/payments")))
                    raised.append(until(http, False))
                    shop.faults(Faults())
                    cleared.append(until(http, True))
                    print(
                        f"fault -> not operational {raised[-1]:5.2f} s; lifted -> operational"
                        f" {cleared[-1]:5.2f} s",
                        flush=True,
                    )
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            shop.close()
    print()
    med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in results.items()}
    ref = med["nginx static summary.json"]
    print(
        f"medians of {args.runs} runs, wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"server on CPU 0, wrk on CPU 1 ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'target':28s} {'req/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'req/CPU-s':>10s}"
        f" {'x nginx':>8s}"
    )
    for k, (rps, p50, p99, cap) in med.items():
        print(f"{k:28s} {rps:9.0f} {p50:7.2f} {p99:7.2f} {cap:10.0f} {cap / ref[3]:8.2f}")
    with tempfile.TemporaryDirectory() as tmp_name:
        fast, app = inprocess_cost(Path(tmp_name))
        print(
            f"in process, per summary.json: {fast:.1f} CPU µs through the HTTP protocol's fast"
            f" path (parse, answer, write), {app:.1f} CPU µs in the ASGI app alone (uvicorn's"
            f" task, parsing and writes not counted)"
        )
    ref_busy = statistics.median(above_idle["nginx static summary.json"])
    for k, v in above_idle.items():
        if k.startswith("hypercare"):
            print(
                f"{k:28s} above the console's idle CPU: {statistics.median(v):10.0f} req/CPU-s"
                f" {statistics.median(v) / ref_busy:8.2f} x nginx"
            )
    print(
        f"threshold crossed -> summary.json shows it: median {statistics.median(raised):.2f} s"
        f" (runs: {', '.join(f'{x:.2f}' for x in raised)}); fault lifted -> operational: "
        f"median {statistics.median(cleared):.2f} s (clear_after 5s)"
    )


if __name__ == "__main__":
    main()
