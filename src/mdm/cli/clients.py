"""``mdm clients``: API keys for agency systems (create, list, bind, revoke)."""

from __future__ import annotations

import json

import typer

from mdm.exceptions import MDMError

app = typer.Typer(help="API clients: keys, scopes and rate limits.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="The agency system's name (unique)"),
    scopes: str = typer.Option(
        ...,
        "--scopes",
        help="Comma-separated, e.g. citizen:read,citizen:search,*:read "
        "(types citizen|organization|dossier|*; actions read|search|write|pii)",
    ),
    rate_limit: int = typer.Option(6000, "--rate-limit", help="Requests per minute"),
    source_systems: str = typer.Option(
        "",
        "--source-systems",
        help="Comma-separated source systems the key may write records under; required "
        "with a write scope (a write to any other system is refused)",
    ),
) -> None:
    """Create a client and print its key. The key is shown this once only."""
    from mdm.services.clients import create_client
    from mdm.store.db import unit_of_work

    try:
        with unit_of_work() as session:
            made = create_client(
                session,
                name,
                scopes.split(","),
                rate_limit_per_minute=rate_limit,
                source_systems=source_systems.split(","),
            )
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(made.key)
    writes = (
        f", writing source systems {sorted(made.client.source_systems)}"
        if made.client.source_systems
        else ""
    )
    typer.echo(
        f"client {made.client.name!r} created with scopes {sorted(made.client.scopes)}"
        f"{writes}; store the key now: it is shown only once",
        err=True,
    )


@app.command("list")
def list_() -> None:
    """List clients (never their keys), one JSON object a line."""
    from mdm.services.clients import list_clients
    from mdm.store.db import unit_of_work

    with unit_of_work() as session:
        for c in list_clients(session):
            typer.echo(
                json.dumps(
                    {
                        "name": c.name,
                        "key_prefix": c.key_prefix,
                        "scopes": sorted(c.scopes),
                        "rate_limit_per_minute": c.rate_limit_per_minute,
                        "source_systems": sorted(c.source_systems),
                        "created_at": c.created_at.isoformat(),
                        "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                    },
                    ensure_ascii=False,
                )
            )


@app.command("bind")
def bind(
    name: str = typer.Argument(..., help="The client's name"),
    source_systems: str = typer.Option(
        ...,
        "--source-systems",
        help="Comma-separated source systems the key may write: replaces its binding",
    ),
) -> None:
    """Set the source systems a write key may write (running servers apply it within
    30 s: their cache)."""
    from mdm.services.clients import bind_client
    from mdm.store.db import unit_of_work

    try:
        with unit_of_work() as session:
            c = bind_client(session, name, source_systems.split(","))
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"client {c.name!r} may write source systems {sorted(c.source_systems)}")


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The client's name")) -> None:
    """Revoke a client's key (running servers refuse it within 30 s: their cache)."""
    from mdm.services.clients import revoke_client
    from mdm.store.db import unit_of_work

    try:
        with unit_of_work() as session:
            c = revoke_client(session, name)
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    assert c.revoked_at is not None
    typer.echo(f"client {c.name!r} revoked at {c.revoked_at.isoformat()}")
