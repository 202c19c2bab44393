"""``mdm serve``: the API (and, later, the stewards' console) under uvicorn."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind"),
    port: int = typer.Option(8000, help="Port"),
    workers: int = typer.Option(1, help="Worker processes"),
    migrate: bool = typer.Option(True, help="Upgrade the schema to head first"),
) -> None:
    """Serve the registry over HTTP."""
    import uvicorn

    from mdm.config import get_settings

    if migrate:
        from mdm.store.migrate import upgrade

        upgrade(get_settings().database_url)
    uvicorn.run(
        "mdm.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,  # access logs would put personal IDs from URLs into logs
    )
