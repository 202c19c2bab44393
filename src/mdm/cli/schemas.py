"""``mdm schemas``: publish the data standards as JSON Schema files.

The files in ``schemas/`` are generated, never edited by hand: ``export`` writes
them, ``export --check`` (run in CI) fails when they differ from the models.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mdm.domain.standards import STANDARDS, render_schema, schema_drift

app = typer.Typer(help="Data standards as JSON Schema / Chuẩn dữ liệu dạng JSON Schema.")


@app.command()
def export(
    out: Path = typer.Option(Path("schemas"), "--out", help="Directory of the schema files."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 if the files differ from the models."
    ),
) -> None:
    """Write one ``<entity>.schema.json`` per standard (or check them with ``--check``)."""
    if check:
        drift = schema_drift(out)
        if drift:
            typer.echo(f"schemas out of date: {', '.join(drift)} (run `mdm schemas export`)")
            raise typer.Exit(1)
        typer.echo("schemas up to date")
        return
    out.mkdir(parents=True, exist_ok=True)
    for entity_type in sorted(STANDARDS):
        path = out / f"{entity_type}.schema.json"
        path.write_text(render_schema(entity_type), encoding="utf-8")
        typer.echo(f"wrote {path}")
