"""The `hypercare` command line."""

from __future__ import annotations

import typer

from hypercare import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hypercare command center.")


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


@app.command()
def gateway(
    config: str = typer.Option(..., "--config", "-c", help="The hypercare YAML file."),
    listen: str = typer.Option("127.0.0.1:8080", "--listen", help="HOST:PORT for the proxy."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (SO_REUSEPORT)."),
    admin_listen: str | None = typer.Option(
        None, "--admin-listen", help="HOST:PORT for /metrics, /healthz, /targets (+i per worker)."
    ),
) -> None:
    """Run the gateway data plane alone, from the gateway: section of the config file.

    SIGTERM or Ctrl-C drains and stops; SIGHUP re-reads the file and replaces the workers
    without dropping in-flight requests (an invalid file is reported and ignored).
    """
    import signal
    import threading

    from hypercare.config import load_config
    from hypercare.errors import ConfigError
    from hypercare.gateway.supervisor import start_workers

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    try:
        group = start_workers(cfg, listen, workers, admin_listen)
    except (OSError, RuntimeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"hypercare gateway: {workers} worker(s) on {group.host}:{group.port}")
    done = threading.Event()
    reload = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    while not done.wait(0.2):
        if reload.is_set():
            reload.clear()
            try:
                cfg = load_config(config)
                group.reload(cfg)
                typer.echo("hypercare gateway: configuration reloaded")
            except (ConfigError, RuntimeError) as exc:
                message = exc.message if isinstance(exc, ConfigError) else str(exc)
                typer.echo(f"error: reload refused, old configuration kept: {message}", err=True)
        if not group.alive():
            typer.echo("error: a gateway worker died", err=True)
            group.stop(5)
            raise typer.Exit(1)
    group.stop(cfg.gateway.limits.drain_timeout.total_seconds() + 5)


def main() -> None:
    app()
