"""The ``mdm`` command. Each group lives in its own module and is registered here."""

from __future__ import annotations

import typer

from mdm import __version__

app = typer.Typer(
    name="mdm",
    help="National golden-record registry / Sổ đăng ký bản ghi gốc quốc gia.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, which can hold personal data.
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the registry's version."""
    typer.echo(f"mdm {__version__}")


def _register() -> None:
    # Imported here so `mdm version` stays fast and a broken optional group
    # cannot hide the others' errors.
    from mdm.cli import audit as audit_cli
    from mdm.cli import clients as clients_cli
    from mdm.cli import db as db_cli
    from mdm.cli import demo as demo_cli
    from mdm.cli import export as export_cli
    from mdm.cli import ingest as ingest_cli
    from mdm.cli import match as match_cli
    from mdm.cli import relay as relay_cli
    from mdm.cli import resolve as resolve_cli
    from mdm.cli import schemas as schemas_cli
    from mdm.cli import serve as serve_cli
    from mdm.cli import standardize as standardize_cli
    from mdm.cli import stewards as stewards_cli
    from mdm.cli import synth as synth_cli

    app.add_typer(db_cli.app, name="db")
    app.command(name="serve")(serve_cli.serve)
    app.command(name="ingest")(ingest_cli.ingest)
    app.add_typer(match_cli.app, name="match")
    app.add_typer(schemas_cli.app, name="schemas")
    app.command(name="standardize")(standardize_cli.standardize)
    app.command(name="synth")(synth_cli.synth)
    app.command(name="resolve")(resolve_cli.resolve)
    app.add_typer(export_cli.app, name="export")
    app.command(name="relay")(relay_cli.relay)
    app.add_typer(clients_cli.app, name="clients")
    app.add_typer(audit_cli.app, name="audit")
    app.add_typer(stewards_cli.app, name="stewards")
    app.command(name="demo")(demo_cli.demo)


_register()
