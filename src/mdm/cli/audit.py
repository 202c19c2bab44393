"""``mdm audit verify``: recompute the audit trail's hash chain."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("verify")
def verify() -> None:
    """Recompute the hash chain; exit 1 and name the first broken row if any."""
    from mdm.services.audit import verify_chain
    from mdm.store.db import get_engine

    with get_engine().connect() as conn:
        report = verify_chain(conn)
    typer.echo(
        json.dumps(
            {
                "rows": report.rows,
                "ok": report.ok,
                "first_broken_id": report.first_broken_id,
                "reason": report.reason,
            }
        )
    )
    if not report.ok:
        raise typer.Exit(1)
