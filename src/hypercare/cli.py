"""The `hypercare` command line.

Every command that touches the store takes `--data-dir` / `--database-url` the same way:
the SQLite file `<data-dir>/hypercare.db` by default, PostgreSQL when given a
``postgresql://`` URL (also from the environment as HYPERCARE_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from hypercare import __version__
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, load_config, parse_config, read_source
from hypercare.errors import HypercareError
from hypercare.store.db import create_engine, database_url, redact_url

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Hypercare command center.",
)
config_app = typer.Typer(no_args_is_help=True, help="Validate configuration files.")
token_app = typer.Typer(no_args_is_help=True, help="Manage API tokens.")
telemetry_app = typer.Typer(no_args_is_help=True, help="Telemetry shipping from gateway nodes.")
app.add_typer(config_app, name="config")
app.add_typer(token_app, name="token")
app.add_typer(telemetry_app, name="telemetry")

T = TypeVar("T")

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", help="Directory for the embedded SQLite store and spool files."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HYPERCARE_DATABASE_URL",
        help="postgresql://user@host:5432/db to use PostgreSQL instead of SQLite.",
    ),
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="The hypercare YAML configuration file.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hypercare {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hypercare: collect, analyze, act, validate — for the weeks after a launch."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; turn hypercare's own errors into a message and exit code 2."""
    try:
        return asyncio.run(_guard(make))
    except HypercareError as exc:
        raise _fail(exc.message) from None


async def _guard(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _load(config: Path | None) -> HypercareConfig:
    try:
        return load_config(config)
    except HypercareError as exc:
        raise _fail(exc.message) from None


def _load_source(config: Path | None) -> tuple[HypercareConfig, str]:
    """Like `_load`, also returning the YAML text the configuration was read from (what
    the gateway keeps as its last good configuration); empty text: every default."""
    if config is None:
        return HypercareConfig(), ""
    try:
        text = read_source(config)
        return parse_config(text, str(config)), text
    except HypercareError as exc:
        raise _fail(exc.message) from None


def _url(data_dir: Path, database_url_: str | None) -> str:
    try:
        return database_url(data_dir, database_url_)
    except HypercareError as exc:
        raise _fail(exc.message) from None


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The YAML file to validate.")]) -> None:
    """Validate FILE without starting anything; exit 2 with file:line messages if invalid."""
    _load(file)
    typer.echo(f"{file}: ok")


@app.command()
def migrate(data_dir: DataDir = Path(".hypercare"), database_url_: DatabaseUrl = None) -> None:
    """Apply database migrations."""
    url = _url(data_dir, database_url_)

    async def go() -> None:
        from hypercare.store.migrate import migrate as run_migrations

        engine = create_engine(url)
        try:
            await run_migrations(engine)
        finally:
            await engine.dispose()

    _run(go)
    typer.echo(f"migrated {redact_url(url)}")


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option("--role", help="admin, responder, support or viewer.")],
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    url = _url(data_dir, database_url_)

    async def go() -> str:
        from hypercare.auth import service
        from hypercare.store.db import session_factory
        from hypercare.store.migrate import migrate as run_migrations

        engine = create_engine(url)
        try:
            await run_migrations(engine)
            async with session_factory(engine)() as session, session.begin():
                created = await service.create_token(session=session, name=name, role=role)
            return created.token
        finally:
            await engine.dispose()

    token = _run(go)
    typer.echo(token)


@telemetry_app.command("node-token")
def telemetry_node_token(
    name: Annotated[str, typer.Option("--name", help="The gateway node, e.g. edge-1.")],
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
) -> None:
    """Create a node token for a remote gateway and print it once (only its hash is stored).

    A node token can ship telemetry and nothing else; give it to the gateway as
    HYPERCARE_NODE_TOKEN with HYPERCARE_CONSOLE_URL.
    """
    url = _url(data_dir, database_url_)

    async def go() -> str:
        from hypercare.store.db import session_factory
        from hypercare.store.migrate import migrate as run_migrations
        from hypercare.telemetry import nodes

        engine = create_engine(url)
        try:
            await run_migrations(engine)
            async with session_factory(engine)() as session, session.begin():
                created = await nodes.create_node_token(session=session, name=name)
            return created.token
        finally:
            await engine.dispose()

    typer.echo(_run(go))


def _listen(value: str, option: str, *, any_port: bool = False) -> tuple[str, int]:
    """HOST:PORT; with `any_port`, port 0 (a free port chosen at bind time) is allowed."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if any_port else 1
    if not sep or not port.isdigit() or not lowest <= int(port) < 65536:
        raise _fail(f"{option} must be HOST:PORT, e.g. 127.0.0.1:8700 (got {value!r})")
    return host.strip("[]") or "127.0.0.1", int(port)


@app.command()
def up(
    config: ConfigFile = None,
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
    console_listen: Annotated[
        str,
        typer.Option(
            "--console-listen", help="HOST:PORT for the console (API and UI); port 0: any free."
        ),
    ] = "127.0.0.1:8700",
    gateway_listen: Annotated[
        str, typer.Option("--gateway-listen", help="HOST:PORT for the API gateway; 0: any free.")
    ] = "127.0.0.1:8080",
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Gateway worker processes (0: no gateway).")
    ] = 1,
    gateway_admin_listen: Annotated[
        str,
        typer.Option(
            "--gateway-admin-listen",
            help="HOST:PORT of worker 0's /metrics, /healthz, /targets (worker i: PORT+i).",
        ),
    ] = "127.0.0.1:8081",
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also run a demo shop behind the gateway with traffic and a scripted incident.",
        ),
    ] = False,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file",
            help="Once serving, write the bound addresses here as JSON (console, gateway, "
            "gateway_admin, pid); removed on exit.",
        ),
    ] = None,
) -> None:
    """Start hypercare: migrate the store, then supervise the console and the gateway
    workers (a child that dies is restarted; the workers serve while the console is away)."""
    cfg, text = _load_source(config)
    url = _url(data_dir, database_url_)
    host, port = _listen(console_listen, "--console-listen", any_port=True)
    _listen(gateway_listen, "--gateway-listen", any_port=True)
    _listen(gateway_admin_listen, "--gateway-admin-listen")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from hypercare.server import GatewayPlan, serve  # serve() quiets alembic and httpx

    data = data_dir.resolve()

    try:
        asyncio.run(
            serve(
                cfg,
                url=url,
                host=host,
                port=port,
                admin_token=os.environ.get("HYPERCARE_ADMIN_TOKEN"),
                gateway=GatewayPlan(
                    gateway_listen,
                    workers,
                    gateway_admin_listen,
                    spool_dir=data / "spool",
                    config_dir=data / "gateway",
                )
                if workers
                else None,
                demo=demo,
                config_text=text,
                ready_file=ready_file.resolve() if ready_file else None,
            )
        )
    except HypercareError as exc:
        raise _fail(exc.message) from None
    except KeyboardInterrupt:
        pass


@app.command()
def gateway(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The hypercare YAML file (without it: the last good one kept in --data-dir).",
        ),
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT for the proxy.")] = (
        "127.0.0.1:8080"
    ),
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (SO_REUSEPORT).")
    ] = 1,
    admin_listen: Annotated[
        str | None,
        typer.Option("--admin-listen", help="HOST:PORT for /metrics, /healthz, /targets (+i)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Keep the configuration the workers run in DIR/gateway/last-good.yaml.",
        ),
    ] = None,
) -> None:
    """Run the gateway data plane alone, from the gateway: section of the config file.

    SIGTERM or Ctrl-C drains and stops; SIGHUP re-reads the file and replaces the workers
    without dropping in-flight requests (an invalid file is reported and ignored). With
    --data-dir, the configuration the workers run is kept there, and a gateway started
    without --config starts from it.
    """
    import signal
    import threading

    from hypercare.errors import ConfigError
    from hypercare.gateway import lastgood
    from hypercare.gateway.supervisor import start_workers

    kept_dir = data_dir.resolve() / "gateway" if data_dir is not None else None
    if config is not None:
        cfg, text = _load_source(config)
    elif kept_dir is None:
        raise _fail("give --config FILE, or --data-dir DIR holding a last good configuration")
    else:
        try:
            kept = lastgood.load(kept_dir)
        except ConfigError as exc:
            raise _fail(exc.message) from None
        if kept is None:
            raise _fail(
                f"no --config given and no last good configuration in {kept_dir} "
                "(start once with --config to keep one)"
            )
        cfg, text = kept, None
        typer.echo(f"hypercare gateway: starting from {lastgood.path_in(kept_dir)}")
    _listen(listen, "--listen")
    try:
        group = start_workers(
            cfg, listen, workers, admin_listen, config_text=text, config_dir=kept_dir
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise _fail(f"cannot start the gateway on {listen}: {exc}") from None
    typer.echo(f"hypercare gateway: {workers} worker(s) on {group.host}:{group.port}")
    done = threading.Event()
    reload = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    while not done.wait(0.2):
        if reload.is_set():
            reload.clear()
            if config is None:
                typer.echo("error: reload needs --config; the configuration is kept", err=True)
                continue
            try:
                text = read_source(config)
                cfg = parse_config(text, str(config))
                group.reload(cfg, text)
                typer.echo("hypercare gateway: configuration reloaded")
            except (ConfigError, RuntimeError) as exc:
                message = exc.message if isinstance(exc, ConfigError) else str(exc)
                typer.echo(f"error: reload refused, old configuration kept: {message}", err=True)
        if not group.alive():
            group.stop(5)
            raise _fail("a gateway worker died; see its log above")
    group.stop(cfg.gateway.limits.drain_timeout.total_seconds() + 5)


def main() -> None:
    app()
