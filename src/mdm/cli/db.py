"""``mdm db``: the schema, through the Alembic chain only."""

from __future__ import annotations

import typer

from mdm.config import get_settings
from mdm.store import migrate

app = typer.Typer(help="Database schema / Lược đồ cơ sở dữ liệu.", no_args_is_help=True)


def _url(url: str | None) -> str:
    return url or get_settings().database_url


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    from mdm.store.db import hide_password

    return hide_password(url)


@app.command()
def upgrade(
    revision: str = typer.Argument("head"),
    url: str | None = typer.Option(None, help="Database URL (default: MDM_DATABASE_URL)"),
) -> None:
    """Migrate the database up to REVISION (default: head)."""
    target = _url(url)
    migrate.upgrade(target, revision)
    typer.echo(f"{_safe(target)}: at revision {migrate.current(target)}")
    if revision == "head":
        _load_units(target)


def _load_units(target: str) -> None:
    from mdm.services.units import load_units
    from mdm.store.db import make_engine

    engine = make_engine(target)
    try:
        version, loaded = load_units(engine)
    finally:
        engine.dispose()
    typer.echo(f"administrative units: {version} ({'loaded' if loaded else 'already loaded'})")


@app.command("load-units")
def load_units_command(url: str | None = typer.Option(None)) -> None:
    """Load the administrative units (both schemes and the crosswalk) if not loaded."""
    _load_units(_url(url))


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. 'base' or '-1'"),
    url: str | None = typer.Option(None, help="Database URL (default: MDM_DATABASE_URL)"),
) -> None:
    """Migrate the database down to REVISION."""
    target = _url(url)
    migrate.downgrade(target, revision)
    typer.echo(f"{_safe(target)}: at revision {migrate.current(target) or 'base'}")


@app.command()
def current(url: str | None = typer.Option(None)) -> None:
    """Print the database's revision."""
    target = _url(url)
    typer.echo(migrate.current(target) or "base")


@app.command()
def check(url: str | None = typer.Option(None)) -> None:
    """Check that the models and the migrated schema agree (no drift)."""
    target = _url(url)
    ok, message = migrate.check(target)
    typer.echo(message)
    raise typer.Exit(0 if ok else 1)
