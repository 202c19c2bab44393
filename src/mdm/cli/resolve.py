"""``mdm resolve``: golden records from links, survivorship rules and overrides."""

from __future__ import annotations

import json

import typer

from mdm.exceptions import MDMError

_TYPES = ("citizen", "organization", "dossier")


def resolve(
    entity: list[str] = typer.Option(
        [], "--entity", "-e", help="Entity type(s) to resolve (default: all three)."
    ),
    all_: bool = typer.Option(
        False, "--all", help="Recompute every golden record (after a rules change)."
    ),
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="Recompute every golden record and compare with the store (read-only); "
        "exit 1 on any difference (DESIGN.md invariant 6).",
    ),
) -> None:
    """Resolve golden records (run after `mdm match run`).

    Without options: recompute the entities whose linked source records changed since
    their last version, writing a version and an event for each one that changes.
    """
    from mdm.services import resolve as svc
    from mdm.store.db import unit_of_work

    types = entity or list(_TYPES)
    bad = [t for t in types if t not in _TYPES]
    if bad:
        raise typer.BadParameter(f"unknown entity type(s) {bad}; expected {list(_TYPES)}")
    failed = False
    try:
        for entity_type in types:
            with unit_of_work() as session:
                if rebuild:
                    report = svc.rebuild(session, entity_type)
                    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
                    failed |= not report.ok
                    continue
                summary = (
                    svc.resolve_all(session, entity_type)
                    if all_
                    else svc.resolve_pending(session, entity_type)
                )
                typer.echo(
                    f"{entity_type}: {summary.versions} golden records changed, "
                    f"{summary.unchanged} unchanged, {summary.events} events"
                )
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    if failed:
        raise typer.Exit(1)
