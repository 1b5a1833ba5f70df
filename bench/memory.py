"""One-off check: a 200 MB upload and a 200 MB download through one gateway worker, flat memory.

    .venv/bin/python bench/memory.py [--mb 200]

nginx (installed by bench/gateway.py if missing) is the upstream: it serves a sparse file for
the download and swallows the upload. curl moves the bytes; the worker's resident memory is
sampled every 50 ms and its peak printed next to its size at rest. Loopback only.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import gateway as bench

UPSTREAM = """
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location /big {{ root {root}; }}
    location /upload {{ proxy_pass http://127.0.0.1:{port}/sink; }}  # buffers: reads it all
    location /sink {{ return 200 "ok\\n"; }}
  }}
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    bench.ensure_tools()
    from hypercare.config import parse_config
    from hypercare.gateway.supervisor import start_workers

    port, gw_port = 19121, 19122
    with tempfile.TemporaryDirectory(prefix="hc-mem-") as d:
        tmp = Path(d)
        tmp.chmod(0o755)  # nginx workers run unprivileged
        big = tmp / "big"
        with big.open("wb") as f:
            f.truncate(args.mb * 1024 * 1024)
        big.chmod(0o644)
        nginx = bench.start_nginx(tmp, "mem", UPSTREAM.format(port=port, root=tmp), 1)
        cfg = parse_config(
            f"""
gateway:
  upstreams: {{u: {{targets: ["127.0.0.1:{port}"]}}}}
  routes:
    - {{name: all, match: {{path: /*}}, upstream: u, max_body: {args.mb * 2 * 1024 * 1024}}}
"""
        )
        group = start_workers(cfg, f"127.0.0.1:{gw_port}", workers=1)
        pid = group.pids[0]
        try:
            bench.wait_port(port)
            rest = rss_kb(pid)
            for name, cmd in (
                ("download", ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{gw_port}/big"]),
                (
                    "upload",
                    [
                        "curl", "-sf", "-o", "/dev/null", "-H", "Expect:", "-X", "POST",
                        "-T", str(big), f"http://127.0.0.1:{gw_port}/upload",
                    ],
                ),
            ):  # fmt: skip
                peak = [rss_kb(pid)]
                done = threading.Event()

                def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
                    while not done.is_set():
                        peak[0] = max(peak[0], rss_kb(pid))
                        time.sleep(0.05)

                t = threading.Thread(target=sample)
                t.start()
                started = time.monotonic()
                out = subprocess.run(
                    [*cmd, "-w", "uploaded=%{size_upload} downloaded=%{size_download}"],
                    check=True,
                    timeout=300,
                    capture_output=True,
                    text=True,
                )
                elapsed = time.monotonic() - started
                done.set()
                t.join()
                print(
                    f"{name:8s} {args.mb} MB in {elapsed:.2f}s: worker RSS at rest"
                    f" {rest / 1024:.1f} MiB, peak {peak[0] / 1024:.1f} MiB"
                    f" (+{(peak[0] - rest) / 1024:.1f} MiB); curl: {out.stdout.strip()}"
                )
        finally:
            group.stop(5)
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(10)


if __name__ == "__main__":
    main()
