"""What `hypercare up` runs: a small supervisor whose children are the console and the
gateway workers.

The `up` process prepares the store once (migrations, the bootstrap admin, the local
node token), binds the console's listening socket, then starts the children and watches
them: a child that dies is logged with its exit code or signal and restarted with a
bounded backoff (`hypercare.supervise`). The workers do not depend on the console to serve:
while it is away they spool their call records and replay them when it is back, and the
console's socket stays bound by the supervisor, so its URL and the workers' node token stay
valid across a console restart. SIGINT/SIGTERM stop everything in order: the demo, then the
workers (drained, their last records reach the console), then the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from hypercare.api import fastpath
from hypercare.api.fastpath import Responder
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.demo import run as demo_run
from hypercare.demo.run import Demo
from hypercare.demo.shop import Shop
from hypercare.errors import StartupError
from hypercare.gateway.supervisor import WorkerGroup, parse_hostport
from hypercare.store.db import create_engine, redact_url, session_factory
from hypercare.store.migrate import migrate
from hypercare.supervise import ChildState, RestartPolicy
from hypercare.telemetry import nodes as telemetry_nodes

log = logging.getLogger("hypercare")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WATCH_SECONDS = 0.1  # how often the supervisor looks at its children
CONSOLE_STOP_SECONDS = 30.0
ORPHAN_CHECK_SECONDS = 1.0


def sign_in_line(host: str, port: int, token: str | None, *, from_env: bool) -> str:
    """The one line `up` prints to say how to get into the console."""
    where = f"sign in at http://{host}:{port}/"
    if token:
        return f"{where} with {token}  (shown once; only its hash is stored)"
    if from_env:
        return (
            f"{where} with the HYPERCARE_ADMIN_TOKEN value "
            "(or any token `hypercare token list` shows)"
        )
    return (
        f"{where} with an existing token (`hypercare token list` shows them, "
        "`hypercare token create --role admin --name you` makes one)"
    )


async def bootstrap_admin(
    sessions: async_sessionmaker[AsyncSession], admin_token: str | None
) -> str | None:
    """Make sure an admin exists. Returns a newly generated token to print once, if any.

    With HYPERCARE_ADMIN_TOKEN set, that value becomes the bootstrap admin's token
    (nothing is printed); otherwise a random one is generated.
    """
    async with sessions() as session, session.begin():
        if await auth_service.has_admin(session=session):
            return None
        created = await auth_service.create_token(
            session=session, name="bootstrap-admin", role=Role.admin, token=admin_token
        )
    return None if admin_token else created.token


def reserve_port(listen: str) -> tuple[socket.socket, str]:
    """Bind ``HOST:0`` with SO_REUSEPORT (as the gateway workers bind) and return the socket
    with ``HOST:PORT``: the port is known before the workers start and stays ours while the
    socket is open, so configuration that names it can be built first."""
    host, port = parse_hostport(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind the gateway on {listen}: {exc}") from None
    bound = sock.getsockname()[1]
    return sock, f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """The gateway workers `up` runs next to the console."""

    listen: str
    workers: int
    admin_listen: str | None
    spool_dir: Path | None = None  # where workers spool call records the console cannot take
    config_dir: Path | None = None  # where the last good configuration is kept (lastgood)


async def export_node_token(
    sessions: async_sessionmaker[AsyncSession], host: str, port: int
) -> str:
    """Make sure the local gateway workers have a node token, and export it (with the
    console URL) as HYPERCARE_NODE_TOKEN / HYPERCARE_CONSOLE_URL for the processes this
    one starts; `hypercare.telemetry.shipper.shipper_from_env` reads them. A token given
    in HYPERCARE_NODE_TOKEN is kept; otherwise a fresh one replaces the previous one.
    Done once per `up`: a restarted console keeps serving the same URL and token."""
    async with sessions() as session, session.begin():
        token = await telemetry_nodes.ensure_local_node_token(
            session=session, token=os.environ.get("HYPERCARE_NODE_TOKEN")
        )
    os.environ["HYPERCARE_NODE_TOKEN"] = token
    os.environ["HYPERCARE_CONSOLE_URL"] = telemetry_nodes.local_console_url(host, port)
    return token


def console_config(
    app: ASGIApp,
    host: str,
    port: int,
    trusted_proxies: Sequence[str],
    fast: Responder | None = None,
) -> uvicorn.Config:
    """uvicorn's settings for the console.

    uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 and ::1 by default (or from
    FORWARDED_ALLOW_IPS): anyone on the machine, the gateway's own clients included, could then
    pick the address the widget rate limit counts. Only `web.trusted_proxies` are believed.
    With `fast`, uvicorn's httptools protocol asks it first (`hypercare.api.fastpath`).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=fastpath.protocol(fastpath.FastPath(fast, trusted_proxies)) if fast else "auto",
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies),
    )


def write_ready_file(path: Path, ready: dict[str, object]) -> None:
    """Write `ready` as JSON to `path` all at once (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ready, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def bind_console(host: str, port: int) -> socket.socket:
    """The console's listening socket, bound before anything else starts so that port 0
    resolves to the real port the gateway workers ship to and the ready file reports, and
    owned by the supervisor for its whole life: while the console restarts, connections
    wait in the backlog instead of being refused. The console child gets it explicitly
    (multiprocessing passes it); no other child inherits it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says
    # TCP, and without it a response written in two parts waits for a delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} for the console: {exc}") from None
    sock.set_inheritable(False)
    return sock


# --- the console child -------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the console child stops on SIGTERM from the
    supervisor only (Ctrl-C reaches the whole process group, and the console must outlive
    the workers' drain to take their last records)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def console_main(
    config: HypercareConfig,
    url: str,
    sock: socket.socket,
    health_urls: list[str],
    supervisor: int | None = None,
) -> None:
    """Entry point of the console child process (multiprocessing "spawn"); `supervisor` is
    the pid of the process that started it (the console stops when it is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    _quiet_loggers()
    if supervisor is None:
        supervisor = os.getppid()
    import uvloop  # as the gateway workers: less loop overhead per request than asyncio's

    if not uvloop.run(_run_console(config, url, sock, health_urls, supervisor)):
        raise SystemExit(3)  # the app did not start (its lifespan failed); logged above


def _quiet_loggers() -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # one INFO line per outbound request (the detection loop asks the gateway workers for
    # their targets every few seconds) would drown the console's own log
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def _run_console(
    config: HypercareConfig,
    url: str,
    sock: socket.socket,
    health_urls: list[str],
    supervisor: int,
) -> bool:
    from hypercare.api.app import build_state, create_app
    from hypercare.detection.jobs import runtime as detection_runtime
    from hypercare.status.views import PublicDocs

    engine = create_engine(url)
    try:
        state = build_state(config, engine)
        detection_runtime(state).health_urls = list(health_urls)
        host, port = sock.getsockname()[:2]
        # links in notifications fall back to this when response.base_url is not set
        state.console_url = telemetry_nodes.local_console_url(host, port)
        # the public status documents are answered in the HTTP protocol, ahead of the app
        fast = PublicDocs(state).answer if config.status.enabled else None
        server = _Server(
            console_config(create_app(state), host, port, config.web.trusted_proxies, fast)
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.request_exit)
        watch = asyncio.create_task(_exit_when_orphaned(server, supervisor))
        try:
            await server.serve(sockets=[sock])
        finally:
            watch.cancel()
        return server.started
    finally:
        await engine.dispose()


async def _exit_when_orphaned(server: _Server, supervisor: int) -> None:
    """Stop when the supervisor (its pid) is gone (killed with SIGKILL, it could not tell
    us). The pid comes from the supervisor itself, not from a getppid() taken once this
    runs: a console whose supervisor died while it was still starting (seconds under load)
    would otherwise take its new parent for the supervisor and serve on forever."""
    while True:
        if os.getppid() != supervisor:
            log.warning("the supervising process %d is gone: stopping the console", supervisor)
            server.request_exit()
            return
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)


# --- the supervisor ----------------------------------------------------------------------


@dataclass
class _Console:
    """The console child: how to start it again, and the running process."""

    config: HypercareConfig
    url: str
    sock: socket.socket
    health_urls: list[str]
    process: BaseProcess | None = None
    state: ChildState = field(default_factory=lambda: ChildState("console"))

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(
            target=console_main,
            args=(self.config, self.url, self.sock, self.health_urls, os.getpid()),
            name="hypercare-console",
        )
        p.start()
        self.process = p
        self.state.started(time.monotonic())
        log.info("console started (pid %s)", p.pid)

    def stop(self, timeout: float) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Blocking."""
        p = self.process
        if p is None:
            return
        if p.pid is not None and p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join(5)

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()


async def serve(
    config: HypercareConfig,
    *,
    url: str,
    host: str,
    port: int,
    admin_token: str | None,
    gateway: GatewayPlan | None = None,
    demo: bool = False,
    config_text: str | None = None,
    ready_file: Path | None = None,
    policy: RestartPolicy | None = None,
) -> None:
    """Run everything until SIGINT/SIGTERM. With `demo`, the shop's configuration replaces
    `config` and the demo's traffic and scenario run against the started product.
    `config_text` is the YAML source of `config`, kept as the workers' last good
    configuration when `gateway.config_dir` is set.

    Port 0 for the console (or the gateway) takes a free port. With `ready_file`, once the
    console answers /readyz the bound addresses are written there as JSON, e.g.
    ``{"console": "http://127.0.0.1:41234", "gateway": "127.0.0.1:41240",
    "gateway_admin": "127.0.0.1:8081", "gateway_admins": ["127.0.0.1:8081"], "workers": 1,
    "pid": 4242}`` (``gateway_admin`` is worker 0's admin listener, ``gateway_admins`` every
    worker's; ``gateway`` and ``gateway_admin`` are null without workers, ``gateway_admins``
    empty; ``pid`` is the supervisor's); the file is removed on the way out. With the gateway's
    admin port 0, each worker binds a free admin port and keeps it across restarts; the
    workers then start before the console, which is handed their addresses."""
    _quiet_loggers()
    policy = policy or RestartPolicy()
    engine = create_engine(url)
    group: WorkerGroup | None = None
    shop: Shop | None = None
    running_demo: Demo | None = None
    console: _Console | None = None
    sock: socket.socket | None = None
    reserved: socket.socket | None = None  # holds the demo's gateway port until the workers bind
    group_lock = asyncio.Lock()
    ready_task: asyncio.Task[None] | None = None
    try:
        if demo:
            if gateway is None:
                raise StartupError("--demo needs the gateway: use --workers 1 or more")
            if parse_hostport(gateway.listen)[1] == 0:
                # the widget's allowed origin names the gateway's port: take it now
                reserved, listen = reserve_port(gateway.listen)
                gateway = dataclasses.replace(gateway, listen=listen)
            shop, config, config_text = await demo_run.prepare(gateway.listen)
        await migrate(engine)
        sessions = session_factory(engine)
        token = await bootstrap_admin(sessions, admin_token)
        sock = bind_console(host, port)
        port = sock.getsockname()[1]
        await export_node_token(sessions, host, port)
        health = _health_urls(gateway)
        if gateway is not None and health is None:
            # admin port 0: the workers first, the console learns where they listen
            group = await start_gateway(config, gateway, config_text)
            health = _bound_health_urls(gateway, group)
        # otherwise the console first: its interpreter starts while the workers start theirs
        console = _Console(config, url, sock, health or [])
        console.start()
        if gateway is not None:
            if group is None:
                group = await start_gateway(config, gateway, config_text)
            print(
                f"gateway: http://{group.host}:{group.port}/ ({gateway.workers} worker(s))",
                flush=True,
            )
            for i, pid in enumerate(group.pids):
                log.info("gateway worker %d started (pid %s)", i, pid)
        print(f"hypercare {host}:{port} — store {redact_url(url)}", flush=True)
        print(f"console: http://{host}:{port}/  API: http://{host}:{port}/api/v1", flush=True)
        if not demo:  # the demo prints its line once the shop is up, with the same token
            print(sign_in_line(host, port, token, from_env=bool(admin_token)), flush=True)
        drain_timeout = config.gateway.limits.drain_timeout.total_seconds() + 5
        stop = asyncio.Event()
        stopping: asyncio.Task[None] | None = None

        async def stop_in_order() -> None:
            """The demo and the gateway workers first, while the console still takes their
            last call records (nothing left to spool), then the console."""
            nonlocal running_demo, shop, group
            try:
                if ready_task is not None and not ready_task.done():
                    ready_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ready_task
                if running_demo is not None:
                    demo_now, running_demo, shop = running_demo, None, None
                    await demo_now.stop()
                async with group_lock:
                    if group is not None:
                        await asyncio.to_thread(group.stop, drain_timeout)
                        group = None
                if console is not None:
                    await asyncio.to_thread(console.stop, CONSOLE_STOP_SECONDS)
            finally:
                stop.set()

        def on_signal() -> None:
            nonlocal stopping
            if stopping is None:
                stopping = asyncio.create_task(stop_in_order())
                return
            # a second signal: stop now
            log.warning("second signal: killing the gateway workers and the console")
            if group is not None:
                for p in group.processes:
                    if p.is_alive():
                        p.kill()
            if console is not None:
                console.kill()

        async def when_ready() -> None:
            """Once the console answers: the ready file, then the demo."""
            nonlocal running_demo
            if not await _wait_ready(f"http://{_url_host(host)}:{port}/readyz", stop):
                return
            if ready_file is not None:
                admins = (
                    [f"{_admin_host(gateway.admin_listen)}:{p}" for p in group.admin_ports]
                    if group is not None and gateway is not None
                    else []
                )
                write_ready_file(
                    ready_file,
                    {
                        "console": f"http://{_url_host(host)}:{port}",
                        "gateway": f"{_url_host(group.host)}:{group.port}" if group else None,
                        "gateway_admin": admins[0] if admins else None,
                        "gateway_admins": admins,
                        "workers": gateway.workers if gateway else 0,
                        "pid": os.getpid(),
                    },
                )
            if shop is None or group is None or stopping is not None:
                return
            running_demo = await demo_run.start(
                sessions,
                shop,
                console=(host, port),
                gateway=(group.host, group.port),
                admin_token=token,
            )
            print(
                sign_in_line(host, port, running_demo.tokens["admin"], from_env=False) + "\n"
                f"demo: the shop is at http://{group.host}:{group.port}/ — the incident "
                "starts in 45 s",
                flush=True,
            )
            await engine.dispose()  # the demo's tokens exist: the children own the store

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        # in the background: the children are watched while the console gets ready
        ready_task = asyncio.create_task(when_ready(), name="when-ready")
        ready_task.add_done_callback(_log_failure)
        if shop is None:
            await engine.dispose()  # the children own the store from here on
        workers = (
            [ChildState(f"gateway worker {i}") for i in range(len(group.processes))]
            if (group is not None)
            else []
        )
        now = time.monotonic()
        for w in workers:
            w.started(now)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_SECONDS)
            if stopping is not None:
                continue
            await _watch_console(console, policy)
            if group is not None:
                async with group_lock:
                    if stopping is None and group is not None:
                        await _watch_workers(group, workers, policy)
    finally:
        if ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(ready_file)
        if ready_task is not None and not ready_task.done():
            ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready_task
        if running_demo is not None:
            await running_demo.stop()
        elif shop is not None:
            await shop.close()
        if group is not None:
            await asyncio.to_thread(
                group.stop, config.gateway.limits.drain_timeout.total_seconds() + 5
            )
        if console is not None:
            await asyncio.to_thread(console.stop, CONSOLE_STOP_SECONDS)
        if sock is not None:
            sock.close()
        if reserved is not None:
            reserved.close()
        await engine.dispose()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc)


async def _wait_ready(url: str, stop: asyncio.Event, warn_after: float = 60.0) -> bool:
    """Poll the console's /readyz until it answers 200 (True) or `stop` is set (False);
    a console still not ready after `warn_after` seconds is logged once."""
    deadline = time.monotonic() + warn_after
    async with httpx.AsyncClient(timeout=2.0) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return True
            if deadline and time.monotonic() > deadline:
                log.warning("the console is not ready after %.0fs", warn_after)
                deadline = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _watch_console(console: _Console, policy: RestartPolicy) -> None:
    p = console.process
    now = time.monotonic()
    if p is not None and not p.is_alive() and console.state.restart_at is None:
        p.join(0)
        log.error(console.state.died(p.exitcode, now, policy))
    if console.state.due(now):
        console.start()


async def _watch_workers(
    group: WorkerGroup, workers: list[ChildState], policy: RestartPolicy
) -> None:
    for i, child in enumerate(workers):
        p = group.processes[i]
        now = time.monotonic()
        if not p.is_alive() and child.restart_at is None:
            p.join(0)
            log.error(child.died(p.exitcode, now, policy))
        if child.due(now):
            try:
                await asyncio.to_thread(group.restart, i)
            except RuntimeError as exc:
                now = time.monotonic()
                child.started(now)  # it did not run: the next wait doubles
                log.error("%s (%s)", child.died(None, now, policy), exc)
                continue
            child.started(time.monotonic())
            log.info("gateway worker %d started (pid %s)", i, group.processes[i].pid)


def _health_urls(plan: GatewayPlan | None) -> list[str] | None:
    """Where the console's detection loop asks each worker for its targets' health; None
    when the admin port is 0 (known once the workers have bound theirs)."""
    if plan is None or not plan.admin_listen:
        return []
    admin_port = int(plan.admin_listen.rpartition(":")[2])
    if admin_port == 0:
        return None
    host = _admin_host(plan.admin_listen)
    return [f"http://{host}:{admin_port + i}/targets" for i in range(plan.workers)]


def _bound_health_urls(plan: GatewayPlan, group: WorkerGroup) -> list[str]:
    host = _admin_host(plan.admin_listen)
    return [f"http://{host}:{port}/targets" for port in group.admin_ports]


def _admin_host(listen: str | None) -> str:
    host = (listen or "127.0.0.1:0").rpartition(":")[0].strip("[]")
    return host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"


async def start_gateway(
    config: HypercareConfig, plan: GatewayPlan, config_text: str | None = None
) -> WorkerGroup:
    from hypercare.gateway.supervisor import start_workers
    from hypercare.telemetry.shipper import worker_sink

    if plan.spool_dir is not None:
        os.environ["HYPERCARE_SPOOL_DIR"] = str(plan.spool_dir)
    try:
        return await asyncio.to_thread(
            start_workers,
            config,
            plan.listen,
            plan.workers,
            plan.admin_listen,
            worker_sink,
            config_text=config_text,
            config_dir=plan.config_dir,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise StartupError(f"cannot start the gateway on {plan.listen}: {exc}") from None
