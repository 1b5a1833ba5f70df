"""The `hypercare` command line.

Every command that touches the store takes `--data-dir` / `--database-url` the same way:
the SQLite file `<data-dir>/hypercare.db` by default, PostgreSQL when given a
``postgresql://`` URL (also from the environment as HYPERCARE_DATABASE_URL). `up` and
`migrate` create the store; the others (`token …`, `telemetry node-token`) refuse a store
that does not exist unless given `--create-store`, and say on stderr which store they used:
a token written into a fresh store next to the wrong directory is one the server refuses.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare import __version__
from hypercare.auth.models import TokenRead
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, load_config, parse_config, read_source
from hypercare.errors import HypercareError, NotFound, StoreUnavailable
from hypercare.store.db import create_engine, database_url, redact_url, sqlite_file

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
launch_app = typer.Typer(no_args_is_help=True, help="Launches: exit criteria and reports.")
app.add_typer(telemetry_app, name="telemetry")
app.add_typer(launch_app, name="launch")

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
CreateStore = Annotated[
    bool,
    typer.Option(
        "--create-store",
        help="Create a new, empty store if none exists (default: refuse, to catch a wrong "
        "--data-dir).",
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


def _url(data_dir: Path, database_url_: str | None, *, create: bool = True) -> str:
    try:
        return database_url(data_dir, database_url_, create=create)
    except HypercareError as exc:
        raise _fail(exc.message) from None


def _where(data_dir: Path, url: str) -> str:
    """The store as a person finds it: the data dir for SQLite, the redacted URL otherwise."""
    file = sqlite_file(url)
    if file is None:
        return redact_url(url)
    return f"{file} (data dir {file.parent})" if file.parent == data_dir.resolve() else str(file)


def _existing_store(data_dir: Path, database_url_: str | None, create: bool) -> str:
    """The URL of the store a store command works on; refuses a SQLite store that does not
    exist unless `create` (a PostgreSQL database is checked by `_open` once connected)."""
    url = _url(data_dir, database_url_, create=create)
    file = sqlite_file(url)
    if file is not None and not create and not file.exists():
        raise _fail(
            f"no hypercare store at {_where(data_dir, url)}: pass the --data-dir (or "
            "--database-url) that `hypercare up` uses, or --create-store to start a new, "
            "empty store there"
        )
    typer.secho(f"store: {_where(data_dir, url)}", err=True, fg=typer.colors.BRIGHT_BLACK)
    return url


async def _open(url: str, create: bool) -> AsyncEngine:
    """An engine on a migrated store; without `create`, a database that was never migrated
    is refused instead of being turned into an empty store."""
    from hypercare.store.migrate import initialized
    from hypercare.store.migrate import migrate as run_migrations

    engine = create_engine(url)
    try:
        if not create and not await initialized(engine):
            raise StoreUnavailable(
                f"the database {redact_url(url)} holds no hypercare store: pass the "
                "--database-url that `hypercare up` uses, or --create-store to start a new, "
                "empty store there"
            )
        await run_migrations(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


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
    create_store: CreateStore = False,
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    url = _existing_store(data_dir, database_url_, create_store)

    async def go() -> str:
        from hypercare.auth import service
        from hypercare.store.db import session_factory

        engine = await _open(url, create_store)
        try:
            async with session_factory(engine)() as session, session.begin():
                created = await service.create_token(session=session, name=name, role=role)
            return created.token
        finally:
            await engine.dispose()

    token = _run(go)
    typer.echo(token)


@token_app.command("list")
def token_list(
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
) -> None:
    """List the API tokens: id, name, role, the first characters, when created and last used."""
    url = _existing_store(data_dir, database_url_, False)

    async def go() -> list[TokenRead]:
        from hypercare.auth import service
        from hypercare.store.db import session_factory

        engine = await _open(url, False)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await service.list_tokens(session=session)
        finally:
            await engine.dispose()

    rows = _run(go)
    if not rows:
        typer.echo("no tokens (`hypercare up` creates the first admin)")
        return
    table = [("ID", "NAME", "ROLE", "PREFIX", "CREATED (UTC)", "LAST USED (UTC)", "STATUS")]
    for t in rows:
        table.append(
            (
                str(t.id),
                t.name,
                t.role.value,
                t.prefix + "…",
                _utc(t.created_at),
                _utc(t.last_used_at) if t.last_used_at else "never",
                "revoked" if t.revoked else "active",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's ID (see `hypercare token list`).")],
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
) -> None:
    """Revoke a token: the API refuses it from now on and its console sessions end."""
    url = _existing_store(data_dir, database_url_, False)

    async def go() -> tuple[TokenRead, bool, bool]:
        from hypercare.auth import service
        from hypercare.store.db import session_factory

        engine = await _open(url, False)
        try:
            async with session_factory(engine)() as session, session.begin():
                before = {t.id: t.revoked for t in await service.list_tokens(session=session)}
                revoked = await service.revoke_token(session=session, token_id=token_id)
                admin_left = await service.has_admin(session=session)
            return revoked, before.get(token_id, False), admin_left
        finally:
            await engine.dispose()

    token, already, admin_left = _run(go)
    if already:
        typer.echo(f"token {token.id} ({token.name}, {token.role.value}) was already revoked")
    else:
        typer.echo(
            f"revoked token {token.id} ({token.name}, {token.role.value}); "
            "its console sessions are signed out"
        )
    if not admin_left:
        typer.secho(
            "warning: no active admin token is left; make one with "
            "`hypercare token create --role admin --name NAME` (same --data-dir)",
            err=True,
            fg=typer.colors.YELLOW,
        )


@telemetry_app.command("node-token")
def telemetry_node_token(
    name: Annotated[str, typer.Option("--name", help="The gateway node, e.g. edge-1.")],
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
    create_store: CreateStore = False,
) -> None:
    """Create a node token for a remote gateway and print it once (only its hash is stored).

    A node token can ship telemetry and nothing else; give it to the gateway as
    HYPERCARE_NODE_TOKEN with HYPERCARE_CONSOLE_URL.
    """
    url = _existing_store(data_dir, database_url_, create_store)

    async def go() -> str:
        from hypercare.store.db import session_factory
        from hypercare.telemetry import nodes

        engine = await _open(url, create_store)
        try:
            async with session_factory(engine)() as session, session.begin():
                created = await nodes.create_node_token(session=session, name=name)
            return created.token
        finally:
            await engine.dispose()

    typer.echo(_run(go))


def _launch_config(config: Path | None) -> HypercareConfig:
    """The configuration to evaluate a launch with; the launch itself is looked up in it
    and in the store (launches made through the API) once the store is open."""
    return _load(config)


def _unknown_launch(exc: HypercareError, config: Path | None) -> HypercareError:
    """A not-found launch, with a hint when no config file was given."""
    if config is None and isinstance(exc, NotFound):
        return NotFound(exc.message + " (no --config given: pass the file `up` runs with)")
    return exc


@launch_app.command("exit-check")
def launch_exit_check(
    name: Annotated[str, typer.Argument(help="The launch's name (from the config or the API).")],
    config: ConfigFile = None,
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard as JSON.")] = False,
) -> None:
    """Evaluate NAME's exit criteria on the store's data and print the scorecard.

    Exit 0 when every criterion passes, 1 when one fails, 2 on error (unknown launch,
    invalid config, store unreachable): usable as a CI/CD gate.
    """
    cfg = _launch_config(config)
    url = _existing_store(data_dir, database_url_, False)

    async def go() -> object:
        from hypercare.launch import service
        from hypercare.store.db import session_factory
        from hypercare.telemetry.live import LiveStore

        engine = await _open(url, False)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await service.exit_check(
                    session=session,
                    live=LiveStore(),
                    config=cfg,
                    name=name,
                    now=datetime.now(UTC),
                )
        except HypercareError as exc:
            raise _unknown_launch(exc, config) from None
        finally:
            await engine.dispose()

    from hypercare.launch import rules

    card = _run(go)
    if not isinstance(card, rules.Scorecard):  # pragma: no cover - the coroutine's type
        raise _fail("internal: no scorecard")
    if as_json:
        import json

        typer.echo(json.dumps(card.as_dict(), indent=2, default=str))
    else:
        typer.echo(rules.render_text(card))
    raise typer.Exit(code=0 if card.passed else 1)


@launch_app.command("report")
def launch_report(
    name: Annotated[str, typer.Argument(help="The launch's name (from the config or the API).")],
    config: ConfigFile = None,
    data_dir: DataDir = Path(".hypercare"),
    database_url_: DatabaseUrl = None,
    kind: Annotated[
        str, typer.Option("--kind", help="daily (the last 24 h) or final (the whole launch).")
    ] = "daily",
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print (or write) NAME's daily or final report as Markdown or printable HTML."""
    if kind not in ("daily", "final"):
        raise _fail(f"--kind {kind!r}: use daily or final")
    if fmt not in ("md", "html"):
        raise _fail(f"--format {fmt!r}: use md or html")
    cfg = _launch_config(config)
    url = _existing_store(data_dir, database_url_, False)

    async def go() -> str:
        from hypercare.launch import report, service
        from hypercare.store.db import session_factory
        from hypercare.telemetry.live import LiveStore

        engine = await _open(url, False)
        try:
            async with session_factory(engine)() as session, session.begin():
                data = await service.load_report(
                    session=session,
                    live=LiveStore(),
                    config=cfg,
                    name=name,
                    kind=kind,
                    now=datetime.now(UTC),
                )
        except HypercareError as exc:
            raise _unknown_launch(exc, config) from None
        finally:
            await engine.dispose()
        return report.markdown(data) if fmt == "md" else report.html(data)

    text = _run(go)
    if output is None:
        typer.echo(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{output}: cannot write: {exc}") from None
    typer.secho(f"wrote {output}", err=True)


def _listen(value: str, option: str, *, any_port: bool = False) -> tuple[str, int]:
    """HOST:PORT; with `any_port`, port 0 (a free port chosen at bind time) is allowed."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if any_port else 1
    if not sep or not port.isdigit() or not lowest <= int(port) < 65536:
        raise _fail(f"{option} must be HOST:PORT, e.g. 127.0.0.1:8700 (got {value!r})")
    return host.strip("[]") or "127.0.0.1", int(port)


def _in_use(host: str, port: int) -> OSError | None:
    """Why (host, port) cannot be listened on right now, or None. SO_REUSEADDR as servers
    set it, so a port in TIME_WAIT from a previous run counts as free (on Linux it does not
    let a second socket bind a port someone listens on)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports(wanted: list[tuple[str, int, str]]) -> None:
    """Exit with a message naming the flag if any (host, port, flag) cannot be bound: before
    `up` touches the store or prints a token, not after uvicorn fails with Errno 98."""
    for host, port, flag in wanted:
        if port == 0:
            continue
        problem = _in_use(host, port)
        if problem is None:
            continue
        if problem.errno == errno.EADDRINUSE:
            raise _fail(f"port {port} is in use on {host} ({flag} to choose another)")
        if problem.errno == errno.EACCES:
            raise _fail(f"not allowed to listen on {host}:{port} ({flag} to choose another)")
        raise _fail(f"cannot listen on {host}:{port}: {problem.strerror} ({flag})")


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
            help="HOST:PORT of worker 0's /metrics, /healthz, /targets (worker i: PORT+i); "
            "port 0: each worker any free one (see --ready-file).",
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
    cfg, text = _load_source(config)  # reads a file only; a typo is reported whatever the ports
    host, port = _listen(console_listen, "--console-listen", any_port=True)
    gw_host, gw_port = _listen(gateway_listen, "--gateway-listen", any_port=True)
    admin_host, admin_port = _listen(gateway_admin_listen, "--gateway-admin-listen", any_port=True)
    ports = [(host, port, "--console-listen")]
    if workers:
        ports.append((gw_host, gw_port, "--gateway-listen"))
        # worker i serves its admin endpoints on PORT+i (port 0: each binds any free one)
        admin_ports = [admin_port + i for i in range(workers)] if admin_port else []
        ports += [(admin_host, p, "--gateway-admin-listen") for p in admin_ports]
    check_ports(ports)
    url = _url(data_dir, database_url_)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # before the import: alembic logs its plugin set-up at INFO when it is first imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
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
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT for the proxy; port 0: any free.")
    ] = "127.0.0.1:8080",
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (SO_REUSEPORT).")
    ] = 1,
    admin_listen: Annotated[
        str | None,
        typer.Option(
            "--admin-listen",
            help="HOST:PORT for /metrics, /healthz, /targets (worker i: PORT+i; 0: any free).",
        ),
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
    without --config starts from it. With HYPERCARE_CONSOLE_URL and HYPERCARE_NODE_TOKEN set,
    the workers ship their call records to that console (spooling under --data-dir/spool).
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
    _listen(listen, "--listen", any_port=True)
    if admin_listen is not None:
        _listen(admin_listen, "--admin-listen", any_port=True)
    sink_factory = None
    console_url = os.environ.get("HYPERCARE_CONSOLE_URL")
    node_token = os.environ.get("HYPERCARE_NODE_TOKEN")
    if console_url or node_token:
        from hypercare.telemetry.shipper import worker_sink

        if not (console_url and node_token):
            missing = "HYPERCARE_NODE_TOKEN" if console_url else "HYPERCARE_CONSOLE_URL"
            raise _fail(
                f"{missing} is not set: shipping call records needs both HYPERCARE_CONSOLE_URL "
                "and HYPERCARE_NODE_TOKEN (`hypercare telemetry node-token` makes a token)"
            )
        if not os.environ.get("HYPERCARE_SPOOL_DIR"):
            if data_dir is None:
                raise _fail(
                    "shipping call records needs a spool directory for when the console is "
                    "away: give --data-dir DIR (records spool under DIR/spool) or set "
                    "HYPERCARE_SPOOL_DIR"
                )
            os.environ["HYPERCARE_SPOOL_DIR"] = str(data_dir.resolve() / "spool")
        sink_factory = worker_sink
        typer.echo(f"hypercare gateway: shipping call records to {console_url}")
    # handlers first: a worker serves before start_workers returns, and a SIGTERM in between
    # must drain the workers, not kill this process with its default action
    done = threading.Event()
    reload = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    try:
        group = start_workers(
            cfg,
            listen,
            workers,
            admin_listen,
            sink_factory,
            config_text=text,
            config_dir=kept_dir,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise _fail(f"cannot start the gateway on {listen}: {exc}") from None
    typer.echo(f"hypercare gateway: {workers} worker(s) on {group.host}:{group.port}")
    if group.admin_ports:
        admin_host = _listen(admin_listen or "", "--admin-listen", any_port=True)[0]
        ports = ", ".join(str(p) for p in group.admin_ports)
        typer.echo(f"hypercare gateway: admin listeners on {admin_host} port(s) {ports}")
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


@app.command()
def tail(
    file: Annotated[Path, typer.Argument(help="The access log to follow.")],
    format_: Annotated[
        str,
        typer.Option(
            "--format", help="nginx-json, envoy-json or traefik-json (see docs/configuration.md)."
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The console's YAML file: its external_routes: name the calls (without it, "
            "every call goes under the catch-all route with its path template).",
        ),
    ] = None,
    console_url: Annotated[
        str | None,
        typer.Option("--console-url", envvar="HYPERCARE_CONSOLE_URL", help="The console."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HYPERCARE_NODE_TOKEN",
            help="A node token (`hypercare telemetry node-token --name NAME`).",
        ),
    ] = None,
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Where the position in the file and the spool are kept."),
    ] = Path(".hypercare-tail"),
    from_start: Annotated[
        bool,
        typer.Option(
            "--from-start",
            help="Read a file never followed before from its start (default: from its end).",
        ),
    ] = False,
) -> None:
    """Follow a gateway's access log and ship its lines to the console as call records.

    Follows the file across rotation (rename and copytruncate), ships batches like the
    gateway's shipper (spooling under --data-dir while the console is away, replayed in
    order), and keeps its position in the file across restarts. SIGTERM or Ctrl-C ships or
    spools what was read, then stops. Lines that do not match the format are counted and
    reported to the console with a sample.
    """
    import hashlib
    import signal

    from hypercare.telemetry.accesslog import FORMATS, TAIL_FORMATS
    from hypercare.telemetry.external import ExternalRoutes
    from hypercare.telemetry.shipper import INGEST_PATH, Shipper
    from hypercare.telemetry.tail import Follower, TailStats, run_tail
    from hypercare.telemetry.transport import HttpTransport

    adapter = FORMATS.get(format_)
    if adapter is None or not adapter.tail:
        raise _fail(f"--format must be one of {', '.join(TAIL_FORMATS)} (got {format_!r})")
    if not console_url or not token:
        missing = (
            "--token / HYPERCARE_NODE_TOKEN"
            if console_url
            else ("--console-url / HYPERCARE_CONSOLE_URL")
        )
        raise _fail(
            f"{missing} is not set: shipping needs the console's URL and a node token "
            "(`hypercare telemetry node-token --name NAME` makes one)"
        )
    routes = _load(config).external_routes if config is not None else []
    path = file.resolve()
    state = data_dir.resolve() / ("tail-" + hashlib.sha256(str(path).encode()).hexdigest()[:16])
    try:
        HttpTransport(console_url, INGEST_PATH, headers={})  # checks the URL, no I/O
    except ValueError as exc:
        raise _fail(str(exc)) from None
    shipper = Shipper(console_url, token, state / "spool")
    follower = Follower(path, state / "position.json", from_start=from_start)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stats = TailStats()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"hypercare tail: following {path} ({format_}), shipping to {console_url}")
        await run_tail(follower, adapter, ExternalRoutes(routes).match, shipper, stop, stats=stats)

    try:
        asyncio.run(go())
    except OSError as exc:
        raise _fail(f"cannot follow {path}: {exc}") from None
    typer.echo(
        f"hypercare tail: {stats.lines} line(s), {stats.records} record(s) shipped or spooled, "
        f"{shipper.dropped_total} dropped, {shipper.spooled_batches} batch(es) left in the spool"
    )


def main() -> None:
    app()
