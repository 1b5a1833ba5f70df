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


def main() -> None:
    app()
