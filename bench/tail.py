"""`hypercare tail` benchmark: lines/s and CPU per line, against plain JSON decoding of the
same lines in the same run.

    .venv/bin/python bench/tail.py [--lines 200000] [--runs 5] [--format nginx-json]

The candidate is the real path of `hypercare tail` except the network: `run_tail` follows a
file of nginx JSON lines (written in the documented `log_format hypercare`) from its start,
parses each line with the adapter, names its route with an `external_routes:` matcher of 20
routes (`run_tail` remembers its answers while that pays; every path here is distinct, so
remembering never hits), and hands the records to the gateway shipper, which encodes batches
and sends them to a transport that answers 200 at once; the position is saved after every
flush. It runs a
second time with route matching replaced by a fixed route, to show what the matcher costs.
The reference reads the same file and decodes each line with orjson, nothing else.
Medians of --runs runs; CPU is this process's (user + system) time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from hypercare.telemetry.accesslog import FORMATS
from hypercare.telemetry.external import ExternalRouteConfig, ExternalRoutes
from hypercare.telemetry.shipper import Shipper
from hypercare.telemetry.tail import Follower, TailStats, run_tail
from hypercare.telemetry.transport import Reply


def nginx_lines(n: int) -> bytes:
    rng = random.Random(1)
    now = time.time() - 600
    out = []
    for i in range(n):
        status = 200 if rng.random() < 0.95 else rng.choice((404, 500, 502, 504))
        took = rng.lognormvariate(-4, 1)
        line = {
            "msec": f"{now + i * 0.001:.3f}",
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "request_method": "GET",
            "request_uri": f"/api/r{i % 20}/items/{i}?page=2",
            "host": "shop.example.com",
            "status": str(status),
            "request_length": "412",
            "body_bytes_sent": "2400",
            "request_time": f"{took:.3f}",
            "upstream_addr": "10.0.0.7:8080",
            "upstream_status": str(status),
            "upstream_header_time": f"{took * 0.9:.3f}",
            "upstream_response_time": f"{took * 0.95:.3f}",
            "remote_addr": "203.0.113.9",
            "remote_user": "",
            "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
            "http_traceparent": f"00-{uuid.UUID(int=rng.getrandbits(128)).hex}-00f067aa0ba902b7-01",
        }
        out.append(orjson.dumps(line))
    return b"\n".join(out) + b"\n"


class NullConsole:
    async def post(self, body: bytes) -> Reply:
        return Reply(200, b'{"accepted": 0}')

    async def close(self) -> None:
        pass


def reference(path: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    loads = orjson.loads
    for line in path.read_bytes().splitlines():
        loads(line)
    return time.perf_counter() - wall, time.process_time() - cpu


def fixed(host: str, method: str, path: str) -> tuple[str, str]:
    return "r0", "/api/r0/items/{id}"


def candidate(
    path: Path, lines: int, fmt: str, work: Path, *, route: bool = True
) -> tuple[float, float]:
    routes = ExternalRoutes(
        [
            ExternalRouteConfig.model_validate(
                {"name": f"r{i}", "match": {"path": f"/api/r{i}/items/{{id}}", "methods": ["GET"]}}
            )
            for i in range(20)
        ]
    )

    async def go() -> float:
        shipper = Shipper(
            "http://127.0.0.1:9", "hcn_bench", work / "spool", transport=NullConsole()
        )
        follower = Follower(path, work / "position.json", from_start=True)
        stop = asyncio.Event()
        stats = TailStats()
        started = time.perf_counter()
        task = asyncio.create_task(
            run_tail(
                follower,
                FORMATS[fmt],
                routes.match if route else fixed,
                shipper,
                stop,
                stats=stats,
            )
        )
        while stats.lines < lines:  # noqa: ASYNC110 - polls a counter, not an event
            await asyncio.sleep(0.005)
        took = time.perf_counter() - started
        stop.set()
        await task
        assert stats.records == lines, stats
        return took

    cpu = time.process_time()
    wall = asyncio.run(go())
    return wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--format", default="nginx-json", choices=["nginx-json"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        log.write_bytes(nginx_lines(args.lines))
        ref, cand, unrouted = [], [], []
        for run in range(args.runs):
            ref.append(reference(log))
            cand.append(candidate(log, args.lines, args.format, Path(tmp) / f"run-{run}"))
            unrouted.append(
                candidate(log, args.lines, args.format, Path(tmp) / f"u-{run}", route=False)
            )
        n = args.lines
        ref_wall = statistics.median(w for w, _ in ref)
        ref_cpu = statistics.median(c for _, c in ref)
        wall = statistics.median(w for w, _ in cand)
        cpu = statistics.median(c for _, c in cand)
        print(f"lines: {n}, runs: {args.runs} (medians), {log.stat().st_size / n:.0f} bytes/line")
        print(
            f"reference (orjson.loads per line): {n / ref_wall:,.0f} lines/s, "
            f"{ref_cpu / n * 1e6:.2f} µs CPU/line"
        )
        print(
            f"hypercare tail ({args.format}, to a null console): {n / wall:,.0f} lines/s, "
            f"{cpu / n * 1e6:.2f} µs CPU/line"
        )
        u_wall = statistics.median(w for w, _ in unrouted)
        u_cpu = statistics.median(c for _, c in unrouted)
        print(
            f"  the same without route matching (a fixed route): {n / u_wall:,.0f} lines/s, "
            f"{u_cpu / n * 1e6:.2f} µs CPU/line ({u_cpu / ref_cpu:.1f}x the reference CPU)"
        )
        print(
            f"ratio tail/reference: {wall / ref_wall:.1f}x the time, "
            f"{cpu / ref_cpu:.1f}x the CPU per line"
        )


if __name__ == "__main__":
    main()
