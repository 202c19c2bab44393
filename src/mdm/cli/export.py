"""``mdm export``: cross-references and golden records to files."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Export cross-references and golden records.", no_args_is_help=True)

_TYPES = ("citizen", "organization", "dossier")


def _check(entity: str) -> str:
    if entity not in _TYPES:
        raise typer.BadParameter(f"unknown entity type {entity!r}; expected {list(_TYPES)}")
    return entity


@app.command()
def xrefs(
    entity: str = typer.Option(..., "--entity", "-e", help="Entity type."),
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
) -> None:
    """Every active source record as source_system,source_key,canonical_id."""
    from mdm.services.export import export_xrefs
    from mdm.store.db import unit_of_work

    with unit_of_work() as session, out.open("w", encoding="utf-8", newline="") as fh:
        n = export_xrefs(session, _check(entity), fh)
    typer.echo(f"{n} cross-references -> {out}")


@app.command()
def entities(
    entity: str = typer.Option(..., "--entity", "-e", help="Entity type."),
    out: Path = typer.Option(..., "--out", help="JSON Lines file to write."),
) -> None:
    """Active golden records with provenance, one JSON object per line."""
    from mdm.services.export import export_entities
    from mdm.store.db import unit_of_work

    with unit_of_work() as session, out.open("w", encoding="utf-8") as fh:
        n = export_entities(session, _check(entity), fh)
    typer.echo(f"{n} golden records -> {out}")
