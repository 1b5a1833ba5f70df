"""Gateway worker processes: N spawned workers sharing one port through SO_REUSEPORT.

Each worker is a fresh interpreter (multiprocessing "spawn") running its own uvloop and its own
`Gateway`; the kernel spreads connections across their listening sockets. The parent keeps a
bound, non-listening placeholder socket on the port so that port 0 resolves once and the port
stays reserved for the group's lifetime. Worker i's admin listener is on admin port + i, or,
with admin port 0, on a port it binds itself and reports back with its ready message; a
worker that replaces it later (reload, restart) binds that same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from hypercare.config import HypercareConfig
from hypercare.errors import ConfigError
from hypercare.gateway import lastgood
from hypercare.gateway.records import ManagedSink, RecordSink

log = logging.getLogger("hypercare.gateway")

SinkFactory = Callable[[int], RecordSink | None]


def parse_hostport(value: str, default_port: int = 8080) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ("127.0.0.1", 8080); ``"[::1]:80"`` works too."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"invalid port in {value!r} (use HOST:PORT)")
    return host, int(port)


@dataclass
class WorkerGroup:
    """Handle on running workers. `host`/`port` is where the proxy listens; `admin_ports[i]`
    is where worker i's admin listener is (empty without admin listeners)."""

    host: str
    port: int
    admin_port: int | None  # as asked: None (no admin listener), 0 (any free) or the base
    processes: list[BaseProcess] = field(default_factory=list)
    _placeholder: socket.socket | None = None
    admin_host: str = "127.0.0.1"
    sink_factory: SinkFactory | None = None
    ready_timeout: float = 20.0
    _draining: list[BaseProcess] = field(default_factory=list)
    config: HypercareConfig | None = None
    # where the configuration the workers run is kept (`lastgood`); None: nowhere
    config_dir: Path | None = None
    admin_ports: list[int] = field(default_factory=list)

    def _keep(self, config: HypercareConfig, text: str | None) -> None:
        self.config = config
        if self.config_dir is not None and text is not None:
            try:
                lastgood.save(self.config_dir, text)
            except OSError as exc:  # the workers serve anyway; only a later restart is affected
                log.error("cannot keep the last good configuration in %s: %s", self.config_dir, exc)

    def reload(self, config: HypercareConfig, text: str | None = None) -> None:
        """Replace the workers with ones running `config`, without dropping in-flight requests.

        New workers bind the same port (SO_REUSEPORT) and must report ready; only then are the
        old ones sent SIGTERM, so they stop accepting and finish what they were doing while the
        new ones take new connections. If a new worker fails, the new ones are stopped, the old
        ones keep serving and RuntimeError is raised. `text`, the YAML source of `config`,
        becomes the last good configuration once the new workers run it.
        """
        old = self.processes
        indices = range(len(old))
        new, admin_ports = _spawn(
            config,
            self.host,
            self.port,
            [self._admin(i) for i in indices],
            indices,
            self.sink_factory,
            self.ready_timeout,
        )
        self.processes = new
        self._set_admin_ports(indices, admin_ports)
        self._keep(config, text)
        for p in old:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        self._draining = [p for p in [*self._draining, *old] if p.is_alive()]

    def _admin(self, index: int) -> tuple[str, int] | None:
        """Where worker `index` binds its admin listener: the port its predecessor had, so
        the addresses handed out stay true; PORT + index; or 0 for a first start."""
        if self.admin_port is None:
            return None
        if index < len(self.admin_ports):
            return self.admin_host, self.admin_ports[index]
        if self.admin_port == 0:
            return self.admin_host, 0
        return self.admin_host, self.admin_port + index

    def _set_admin_ports(self, indices: Iterable[int], bound: list[int | None]) -> None:
        for i, got in zip(indices, bound, strict=True):
            if got is None:
                continue
            if i < len(self.admin_ports):
                self.admin_ports[i] = got
            else:
                self.admin_ports.append(got)

    def restart(self, index: int) -> None:
        """Start worker `index` again (after it died), from the last good configuration on
        disk when there is one, else from the one in memory. Blocking, like `start_workers`;
        RuntimeError when the new worker does not come up."""
        config = self.config
        if self.config_dir is not None:
            try:
                kept = lastgood.load(self.config_dir)
            except ConfigError as exc:
                log.error("%s; worker %d starts from the configuration in memory", exc, index)
            else:
                if kept is not None:
                    config = kept
                    log.info("worker %d starts from %s", index, lastgood.path_in(self.config_dir))
        if config is None:
            raise RuntimeError("the worker group has no configuration to restart a worker with")
        old = self.processes[index]
        if old.is_alive():
            raise RuntimeError(f"gateway worker {index} is still running")
        old.join(0)
        (self.processes[index],), admin_ports = _spawn(
            config,
            self.host,
            self.port,
            [self._admin(index)],
            [index],
            self.sink_factory,
            self.ready_timeout,
        )
        self._set_admin_ports([index], admin_ports)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.processes)

    def drain(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker: each stops accepting, finishes in-flight requests, exits."""
        everyone = [*self.processes, *self._draining]
        for p in everyone:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in everyone:
            p.join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Drain for at most `timeout` seconds, then kill what is left; release the port."""
        self.drain(timeout)
        for p in [*self.processes, *self._draining]:
            if p.is_alive():
                p.kill()
                p.join(5)
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None


def start_workers(
    config: HypercareConfig,
    listen: str = "127.0.0.1:8080",
    workers: int = 1,
    admin_listen: str | None = None,
    sink_factory: SinkFactory | None = None,
    ready_timeout: float = 20.0,
    *,
    config_text: str | None = None,
    config_dir: Path | None = None,
) -> WorkerGroup:
    """Start `workers` gateway processes serving `config.gateway` on `listen`.

    This is what ``hypercare up`` calls. Contract:

    - `config` is the whole validated `HypercareConfig` (pickled to the workers, which only
      read its ``gateway`` section).
    - `listen` is ``HOST:PORT``; port 0 picks a free port (read it from `WorkerGroup.port`).
      Every worker binds it with SO_REUSEPORT; the returned group holds the port until `stop()`.
    - `admin_listen` (``HOST:PORT``) gives worker i an admin listener on PORT + i with
      ``/metrics``, ``/healthz`` and ``/targets``; with port 0 each worker binds a free port
      (read them from `WorkerGroup.admin_ports`); None means no admin listener.
    - `sink_factory(worker_index)` is called *inside* each worker to make its `RecordSink`; it
      must be picklable (a module-level function). None: records only feed the worker's metrics.
    - Blocking: returns once every worker is listening (typically well under a second per
      worker); raises RuntimeError naming the first worker that failed (all of them are stopped
      first), OSError if the address cannot be bound, ValueError for a bad argument. From async
      code, call it through ``asyncio.to_thread``.
    - Workers are daemonic "spawn" children: they die with the parent. The program's main
      module must be import-safe (the usual ``if __name__ == "__main__":`` guard).
    - On the result: `stop(timeout)` drains (SIGTERM: stop accepting, finish in-flight requests
      within ``gateway.limits.drain_timeout``) then kills what is left and releases the port;
      `drain(timeout)` only drains; `reload(config)` swaps in workers running a new
      configuration without dropping in-flight requests; `alive()` tells whether every current
      worker runs; `pids` lists them; `restart(i)` starts worker i again after it died.
    - With `config_dir`, the configuration the workers run is kept there (`lastgood`): once
      every worker reported ready with `config`, its YAML source `config_text` is written to
      disk, and a worker restarted later starts from that file.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    host, port = parse_hostport(listen)
    admin: tuple[str, int] | None = parse_hostport(admin_listen) if admin_listen else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    placeholder = socket.socket(family, socket.SOCK_STREAM)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        placeholder.bind((host, port))
    except OSError:
        placeholder.close()
        raise
    port = placeholder.getsockname()[1]
    group = WorkerGroup(
        host,
        port,
        admin[1] if admin else None,
        _placeholder=placeholder,
        admin_host=admin[0] if admin else "127.0.0.1",
        sink_factory=sink_factory,
        ready_timeout=ready_timeout,
        config_dir=config_dir,
    )
    try:
        group.processes, admin_ports = _spawn(
            config,
            host,
            port,
            [group._admin(i) for i in range(workers)],
            range(workers),
            sink_factory,
            ready_timeout,
        )
        group._set_admin_ports(range(workers), admin_ports)
    except BaseException:
        placeholder.close()
        raise
    group._keep(config, config_text)
    return group


def _spawn(
    config: HypercareConfig,
    host: str,
    port: int,
    admins: list[tuple[str, int] | None],
    indices: Iterable[int],
    sink_factory: SinkFactory | None,
    ready_timeout: float,
) -> tuple[list[BaseProcess], list[int | None]]:
    """Start the workers numbered `indices` (worker `indices[k]` with its admin listener on
    `admins[k]`) and wait until each listens; on failure stop them all. Returns the
    processes and the admin port each one bound."""
    ctx = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    pipes: list[Connection] = []
    indices = list(indices)
    for i, worker_admin in zip(indices, admins, strict=True):
        parent_end, child_end = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=worker_main,
            args=(config, host, port, worker_admin, i, sink_factory, child_end, os.getpid()),
            name=f"hypercare-gateway-{i}",
            daemon=True,
        )
        p.start()
        child_end.close()
        processes.append(p)
        pipes.append(parent_end)
    admin_ports: list[int | None] = []
    for i, pipe in zip(indices, pipes, strict=True):
        message = pipe.recv() if pipe.poll(ready_timeout) else f"worker {i} did not start in time"
        pipe.close()
        # a worker that listens sends ("ready", its admin port or None); one that failed, why
        if not (isinstance(message, tuple) and message[:1] == ("ready",)):
            for started in processes:
                started.kill()
                started.join(5)
            raise RuntimeError(f"gateway worker {i} failed: {message}")
        admin_ports.append(message[1])
    return processes, admin_ports


def worker_main(
    config: HypercareConfig,
    host: str,
    port: int,
    admin: tuple[str, int] | None,
    index: int,
    sink_factory: SinkFactory | None,
    ready: Connection | None,
    supervisor: int | None = None,
) -> None:
    """Entry point of one worker process; `supervisor` is the pid of the process that
    started it (default: the parent now), the worker drains and exits when it is gone."""
    import uvloop

    if supervisor is None:
        supervisor = os.getppid()

    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s gateway[{index}] %(levelname)s %(message)s"
    )
    try:
        uvloop.run(_serve(config, host, port, admin, index, sink_factory, ready, supervisor))
    except Exception as exc:
        if ready is not None and not ready.closed:
            ready.send(f"{type(exc).__name__}: {exc}")
            ready.close()
        raise SystemExit(1) from None


ORPHAN_CHECK_SECONDS = 1.0


async def _stop_when_orphaned(stop: asyncio.Event, supervisor: int) -> None:
    """Drain and exit when the process that started this worker (pid `supervisor`) is gone
    (killed with SIGKILL, it could not tell us): a worker left behind would keep the port
    and serve with nobody to ship its records to or to stop it. The pid is the one the
    supervisor gave, not a getppid() taken once this runs: a worker orphaned while it was
    still starting would take its new parent for the supervisor."""
    while not stop.is_set():
        if os.getppid() != supervisor:
            log.warning("the supervising process %d is gone: draining and exiting", supervisor)
            stop.set()
            return
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)


async def _serve(
    config: HypercareConfig,
    host: str,
    port: int,
    admin: tuple[str, int] | None,
    index: int,
    sink_factory: SinkFactory | None,
    ready: Connection | None,
    supervisor: int,
) -> None:
    from hypercare.gateway.capture import Capturer
    from hypercare.gateway.runtime import Gateway

    sink = sink_factory(index) if sink_factory is not None else None
    if isinstance(sink, ManagedSink):
        await sink.start()
    # captures go with the records: without a sink there is nowhere to send them
    capture = Capturer.from_config(config.telemetry) if sink is not None else None
    gw = Gateway(config.gateway, sink, capture)
    await gw.start(host, port, admin=admin, reuse_port=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    orphan_watch = asyncio.create_task(_stop_when_orphaned(stop, supervisor))
    # Everything allocated so far (modules, config, routing tables) lives as long as the
    # worker: keep the cyclic GC from walking it again on every full collection.
    gc.freeze()
    if ready is not None:
        ready.send(("ready", gw.admin_address[1] if gw.admin_address else None))
        ready.close()
    log.info("listening on %s:%d", host, port)
    if gw.admin_address is not None:
        log.info("admin listener on %s:%d", *gw.admin_address)
    await stop.wait()
    orphan_watch.cancel()
    drained = await gw.drain(config.gateway.limits.drain_timeout.total_seconds())
    if not drained:
        log.warning("drain timeout: closing %d connections", len(gw.connections))
    await gw.close()
    if isinstance(sink, ManagedSink):
        await sink.close()
