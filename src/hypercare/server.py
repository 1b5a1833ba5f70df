"""What `hypercare up` runs: migrations, the bootstrap admin, then the console server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from hypercare.api.app import create_app
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.demo import run as demo_run
from hypercare.demo.run import Demo
from hypercare.demo.shop import Shop
from hypercare.errors import StartupError
from hypercare.gateway.supervisor import WorkerGroup
from hypercare.store.db import create_engine, redact_url
from hypercare.store.migrate import migrate
from hypercare.telemetry import nodes as telemetry_nodes

log = logging.getLogger("hypercare")


async def bootstrap_admin(state: AppState, admin_token: str | None) -> str | None:
    """Make sure an admin exists. Returns a newly generated token to print once, if any.

    With HYPERCARE_ADMIN_TOKEN set, that value becomes the bootstrap admin's token
    (nothing is printed); otherwise a random one is generated.
    """
    async with state.sessions() as session, session.begin():
        if await auth_service.has_admin(session=session):
            return None
        created = await auth_service.create_token(
            session=session, name="bootstrap-admin", role=Role.admin, token=admin_token
        )
    return None if admin_token else created.token


def console_config(
    app: ASGIApp, host: str, port: int, trusted_proxies: Sequence[str]
) -> uvicorn.Config:
    """uvicorn's settings for the console.

    uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 and ::1 by default (or from
    FORWARDED_ALLOW_IPS): anyone on the machine, the gateway's own clients included, could then
    pick the address the widget rate limit counts. Only `web.trusted_proxies` are believed.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies),
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutting down,
    which would kill the process before the gateway workers are drained. `serve` handles
    the signals instead and shuts everything down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """The gateway workers `up` runs next to the console."""

    listen: str
    workers: int
    admin_listen: str | None
    spool_dir: Path | None = None  # where workers spool call records the console cannot take


async def export_node_token(state: AppState, host: str, port: int) -> str:
    """Make sure the local gateway workers have a node token, and export it (with the
    console URL) as HYPERCARE_NODE_TOKEN / HYPERCARE_CONSOLE_URL for the processes this
    one starts; `hypercare.telemetry.shipper.shipper_from_env` reads them. A token given
    in HYPERCARE_NODE_TOKEN is kept; otherwise a fresh one replaces the previous one."""
    async with state.sessions() as session, session.begin():
        token = await telemetry_nodes.ensure_local_node_token(
            session=session, token=os.environ.get("HYPERCARE_NODE_TOKEN")
        )
    os.environ["HYPERCARE_NODE_TOKEN"] = token
    os.environ["HYPERCARE_CONSOLE_URL"] = telemetry_nodes.local_console_url(host, port)
    return token


def bind_console(host: str, port: int) -> socket.socket:
    """The console's listening socket, bound before anything else starts so that port 0
    resolves to the real port the gateway workers ship to and the ready file reports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} for the console: {exc}") from None
    sock.set_inheritable(False)
    return sock


def write_ready_file(path: Path, ready: dict[str, object]) -> None:
    """Write `ready` as JSON to `path` all at once (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ready, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def serve(
    config: HypercareConfig,
    *,
    url: str,
    host: str,
    port: int,
    admin_token: str | None,
    gateway: GatewayPlan | None = None,
    demo: bool = False,
    ready_file: Path | None = None,
) -> None:
    """Run everything until SIGINT/SIGTERM. With `demo`, the shop's configuration replaces
    `config` and the demo's traffic and scenario run against the started product.

    Port 0 for the console (or the gateway) takes a free port. With `ready_file`, once the
    console accepts requests the bound addresses are written there as JSON, e.g.
    ``{"console": "http://127.0.0.1:41234", "gateway": "127.0.0.1:41240",
    "gateway_admin": "127.0.0.1:8081", "workers": 1, "pid": 4242}`` (``gateway`` and
    ``gateway_admin`` are null without workers); the file is removed on the way out."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # one INFO line per outbound request (the detection loop asks the gateway workers for
    # their targets every few seconds) would drown the console's own log
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine = create_engine(url)
    group: WorkerGroup | None = None
    shop: Shop | None = None
    running_demo: Demo | None = None
    listener: socket.socket | None = None
    try:
        if demo:
            if gateway is None:
                raise StartupError("--demo needs the gateway: use --workers 1 or more")
            shop, config = await demo_run.prepare(gateway.listen)
        await migrate(engine)
        listener = bind_console(host, port)
        port = int(listener.getsockname()[1])
        state = AppState.build(config, engine)
        # links in notifications fall back to this when response.base_url is not set
        link_host = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        state.extras["console_url"] = f"http://{_url_host(link_host)}:{port}"
        token = await bootstrap_admin(state, admin_token)
        await export_node_token(state, host, port)
        if gateway is not None:
            group = await start_gateway(config, gateway)
            if group.admin_port is not None:
                from hypercare.detection.jobs import runtime as detection_runtime

                detection_runtime(state).health_urls = [
                    f"http://{_admin_host(gateway.admin_listen)}:{group.admin_port + i}/targets"
                    for i in range(gateway.workers)
                ]
            print(
                f"gateway: http://{group.host}:{group.port}/ ({gateway.workers} worker(s))",
                flush=True,
            )
        print(f"hypercare {host}:{port} — store {redact_url(url)}", flush=True)
        print(f"console: http://{host}:{port}/  API: http://{host}:{port}/api/v1", flush=True)
        if token:
            print(
                f"admin token (shown once, only its hash is stored): {token}",
                flush=True,
            )
        server = _Server(console_config(create_app(state), host, port, config.web.trusted_proxies))
        drain_timeout = config.gateway.limits.drain_timeout.total_seconds() + 5
        stopping: asyncio.Task[None] | None = None

        async def stop_in_order() -> None:
            """The demo and the gateway workers first, while the console still takes their
            last call records (nothing left to spool), then the console."""
            nonlocal running_demo, shop, group
            try:
                if running_demo is not None:
                    demo_now, running_demo, shop = running_demo, None, None
                    await demo_now.stop()
                if group is not None:
                    group_now, group = group, None
                    await asyncio.to_thread(group_now.stop, drain_timeout)
            finally:
                server.request_exit()

        def on_signal() -> None:
            nonlocal stopping
            if stopping is None:
                stopping = asyncio.create_task(stop_in_order())
            else:  # a second signal: stop now
                server.request_exit()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        if (shop is not None and group is not None) or ready_file is not None:
            # uvicorn offers a flag, not an event, for "listening"
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        if ready_file is not None and server.started:
            write_ready_file(
                ready_file,
                {
                    "console": f"http://{_url_host(host)}:{port}",
                    "gateway": f"{_url_host(group.host)}:{group.port}" if group else None,
                    "gateway_admin": (
                        f"{_admin_host(gateway.admin_listen)}:{group.admin_port}"
                        if group is not None and gateway and group.admin_port is not None
                        else None
                    ),
                    "workers": gateway.workers if gateway else 0,
                    "pid": os.getpid(),
                },
            )
        if shop is not None and group is not None:
            running_demo = await demo_run.start(
                state, shop, console=(host, port), gateway=(group.host, group.port)
            )
            print(
                f"demo: sign in at http://{host}:{port}/ with {running_demo.tokens['admin']}\n"
                f"demo: the shop is at http://{group.host}:{group.port}/ — the incident "
                "starts in 45 s",
                flush=True,
            )
        await serving
    finally:
        if ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(ready_file)
        if listener is not None:
            listener.close()
        if running_demo is not None:
            await running_demo.stop()
        elif shop is not None:
            await shop.close()
        if group is not None:
            await asyncio.to_thread(
                group.stop, config.gateway.limits.drain_timeout.total_seconds() + 5
            )
        await engine.dispose()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _admin_host(listen: str | None) -> str:
    host = (listen or "127.0.0.1:0").rpartition(":")[0].strip("[]")
    return host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"


async def start_gateway(config: HypercareConfig, plan: GatewayPlan) -> WorkerGroup:
    from hypercare.gateway.supervisor import start_workers
    from hypercare.telemetry.shipper import worker_sink

    if plan.spool_dir is not None:
        os.environ["HYPERCARE_SPOOL_DIR"] = str(plan.spool_dir)
    try:
        return await asyncio.to_thread(
            start_workers, config, plan.listen, plan.workers, plan.admin_listen, worker_sink
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise StartupError(f"cannot start the gateway on {plan.listen}: {exc}") from None
