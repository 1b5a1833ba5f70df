"""Helpers shared by tests, benchmarks and scripts: polling with a deadline, and a real
`hypercare up` started as a child process on ports it binds itself.

    with hypercare_up(tmp_path / "data", config=cfg, env={"HYPERCARE_ADMIN_TOKEN": t}) as up:
        httpx.get(f"{up.url}/readyz")           # the console
        httpx.get(f"http://{up.gateway}/items")  # its gateway worker(s)

The console, the gateway and each gateway worker's admin listener bind port 0 and report the
ports they got through ``--ready-file``, so no port is probed and then lost to another process
under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

# How long `start_up` waits for a `hypercare up` to get ready by default. A fresh store runs
# every migration and the supervisor spawns the console and the gateway workers (each a new
# interpreter importing the product); on two cores shared with a loaded CI run (load average
# 10-19) that was measured at over 60 s. It is a deadline, not a pause: a process that exits
# fails at once, and a ready one returns as soon as it answers.
START_TIMEOUT = 240.0

# What a probe may raise while the thing it polls is not there yet.
NOT_YET: tuple[type[BaseException], ...] = (httpx.TransportError, ConnectionError)


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """Call `predicate` until it returns something truthy and return that; raise
    `AssertionError` naming `what` after `timeout` seconds. Exceptions of the `ignore`
    types count as "not yet"; any other propagates at once."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*ignore):
            got = predicate()
            if got:
                return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    what: str,
    *,
    interval: float = 0.02,
    ignore: tuple[type[BaseException], ...] = NOT_YET,
) -> T:
    """`wait_until` for a test running on an event loop: sleeps without blocking the loop,
    and `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*ignore):
            got = predicate()
            if inspect.isawaitable(got):
                got = await got
            if got:
                return got  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused for as long as the context lasts: a
    socket bound to it that does not listen holds it, so no other process can take it
    (unlike a port probed free and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@dataclass
class Up:
    """A running `hypercare up` child process and the addresses it bound."""

    proc: subprocess.Popen[bytes]
    url: str  # the console, e.g. http://127.0.0.1:41234
    gateway: str | None  # HOST:PORT of the gateway workers, None with --workers 0
    gateway_admin: str | None  # HOST:PORT of worker 0's admin listener
    gateway_admins: list[str]  # HOST:PORT of each worker's admin listener
    log: Path
    ready: dict[str, object] = field(default_factory=dict)

    @property
    def gateway_port(self) -> int:
        if self.gateway is None:
            raise AssertionError("this hypercare up runs no gateway")
        return int(self.gateway.rpartition(":")[2])

    @property
    def console_port(self) -> int:
        return int(self.url.rpartition(":")[2])

    def output(self) -> str:
        """What the process printed so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> str:
        """Signal the process, wait for it (kill after `timeout`), return its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.output()

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_up(
    data_dir: Path,
    *,
    config: Path | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    console_port: int = 0,
    timeout: float = START_TIMEOUT,
    log: Path | None = None,
    python: Sequence[str] = (sys.executable,),
    new_session: bool = False,
) -> Up:
    """Start `hypercare up` with a SQLite store in `data_dir` and wait until its console
    answers /readyz. `env` is added to this process's environment (without
    HYPERCARE_DATABASE_URL; a None value removes a variable); `args` are appended to the
    command line (e.g. ``--workers 0``).
    `console_port` 0 binds any free port; give the port of an earlier run to restart on it.
    `new_session` gives it a process group of its own (its pid is the group's id), as a
    terminal does: Ctrl-C is then ``os.killpg(up.proc.pid, SIGINT)``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / "up.ready.json"
    ready_file.unlink(missing_ok=True)
    log = log or data_dir / "up.log"
    full_env = {k: v for k, v in os.environ.items() if k != "HYPERCARE_DATABASE_URL"}
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    command = [
        *python,
        "-m",
        "hypercare",
        "up",
        "--data-dir",
        str(data_dir),
        *(("--config", str(config)) if config is not None else ()),
        "--console-listen",
        f"127.0.0.1:{console_port}",
        "--gateway-listen",
        "127.0.0.1:0",
        "--gateway-admin-listen",
        "127.0.0.1:0",
        "--ready-file",
        str(ready_file),
        *args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=new_session,
        )

    def reported() -> dict[str, object] | None:
        if proc.poll() is not None:
            raise AssertionError(
                f"hypercare up exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        if not ready_file.exists():
            return None
        data: dict[str, object] = json.loads(ready_file.read_text(encoding="utf-8"))
        return data

    try:
        ready = wait_until(reported, timeout, "hypercare up to write its ready file")
        url = str(ready["console"])
        wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200,
            timeout,
            f"{url}/readyz",
        )
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        raise
    gateway = ready.get("gateway")
    admin = ready.get("gateway_admin")
    admins = ready.get("gateway_admins")
    return Up(
        proc=proc,
        url=url,
        gateway=str(gateway) if gateway else None,
        gateway_admin=str(admin) if admin else None,
        gateway_admins=[str(a) for a in admins] if isinstance(admins, list) else [],
        log=log,
        ready=ready,
    )


@contextlib.contextmanager
def hypercare_up(data_dir: Path, **kw: object) -> Iterator[Up]:
    """`start_up` (same arguments) as a context: stopped with SIGTERM on the way out."""
    up = start_up(data_dir, **kw)  # type: ignore[arg-type]
    try:
        yield up
    finally:
        up.stop()
