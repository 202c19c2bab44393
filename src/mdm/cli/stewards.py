"""``mdm stewards``: accounts of the data stewards' console."""

from __future__ import annotations

import sys

import typer

from mdm.exceptions import MDMError

app = typer.Typer(help="Steward accounts / Tài khoản cán bộ.", no_args_is_help=True)


@app.command()
def create(
    username: str = typer.Option(..., "--username", help="Login name"),
    role: str = typer.Option("reviewer", "--role", help="reviewer, senior or admin"),
    display_name: str | None = typer.Option(None, "--display-name", help="Name shown"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input"
    ),
) -> None:
    """Create a steward. Without --password-stdin, asks for the password on a terminal,
    or generates one and prints it once."""
    from mdm.config import get_settings
    from mdm.services.accounts import create_steward, generate_password
    from mdm.store.db import unit_of_work
    from mdm.store.migrate import upgrade

    generated = False
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt(
            "Password (empty: generate one)",
            default="",
            hide_input=True,
            show_default=False,
            confirmation_prompt=False,
        )
        if not password:
            password, generated = generate_password(), True
        elif typer.prompt("Repeat", hide_input=True) != password:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(2)
    else:
        password, generated = generate_password(), True
    upgrade(get_settings().database_url)
    try:
        with unit_of_work() as session:
            steward = create_steward(session, username, role, password, display_name=display_name)
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"steward {steward.username} ({steward.role}) created")
    if generated:
        typer.echo(f"password (shown once): {password}")


@app.command("list")
def list_cmd() -> None:
    """List stewards."""
    from mdm.services.accounts import list_stewards
    from mdm.store.db import unit_of_work

    with unit_of_work() as session:
        for s, active in list_stewards(session):
            typer.echo(f"{s.username:<24} {s.role:<9} {'active' if active else 'inactive'}")


@app.command()
def deactivate(username: str = typer.Option(..., "--username")) -> None:
    """Deactivate a steward (ends their sessions at once)."""
    from mdm.services.accounts import set_active
    from mdm.store.db import unit_of_work

    try:
        with unit_of_work() as session:
            set_active(session, username, False, actor="system:cli")
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"steward {username} deactivated")
