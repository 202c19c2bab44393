"""``mdm demo``: the whole registry on a laptop, in one command.

On a fresh SQLite file: synthetic exports of a few merging provinces (``mdm synth``),
ingest by manifest, train and run matching for every entity type, resolve golden
records, create a demo steward (senior) and an API client, then serve the API and
the stewards' console and print where and how to log in. Calls the same service
functions as the individual commands; nothing is shelled out.

The demo keeps its own copy of the matching rules (and so its own trained models)
under its working directory, so it never overwrites models trained by hand.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import typer

from mdm.exceptions import MDMError

_TYPES = ("citizen", "organization", "dossier")


def _step(label: str, started: float) -> None:
    typer.echo(f"[{time.monotonic() - started:6.1f}s] {label}")


def demo(
    database_url: str | None = typer.Option(
        None, "--database-url", help="Where to build the demo (default: sqlite:///DIR/demo.db)"
    ),
    workdir: Path = typer.Option(Path("var/demo"), "--dir", help="Working directory"),
    provinces: int = typer.Option(3, "--provinces", min=1, help="Former provinces to simulate"),
    citizens: int = typer.Option(1000, "--citizens", min=10, help="Citizens per province"),
    seed: int = typer.Option(7, "--seed", help="Synthetic data seed"),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind"),
    port: int = typer.Option(8000, "--port", help="Port"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve when built"),
) -> None:
    """Build a demo registry from synthetic data and serve the API and the console."""
    started = time.monotonic()
    workdir = workdir.resolve()
    db_file = workdir / "demo.db"
    url = database_url or f"sqlite:///{db_file}"
    if database_url is None:
        workdir.mkdir(parents=True, exist_ok=True)
        for leftover in workdir.glob("demo.db*"):
            leftover.unlink()
    synth_dir = workdir / "synth"
    rules_dir = workdir / "matching_rules"
    from mdm.matching import rules as rules_module

    shipped = rules_module.default_rules_dir().resolve()
    if shipped == rules_dir.resolve() or not (shipped / "citizen.yaml").exists():
        shipped = Path(rules_module.__file__).resolve().parents[3] / "matching_rules"
    shutil.rmtree(synth_dir, ignore_errors=True)
    shutil.rmtree(rules_dir, ignore_errors=True)
    rules_dir.mkdir(parents=True)
    for f in shipped.glob("*.yaml"):
        shutil.copy(f, rules_dir / f.name)
    os.environ["MDM_DATABASE_URL"] = url
    os.environ["MDM_MATCHING_RULES_DIR"] = str(rules_dir)
    os.environ["MDM_DATA_DIR"] = str(workdir)

    from mdm.config import get_settings
    from mdm.store.db import get_engine, reset_engine

    get_settings.cache_clear()
    reset_engine()
    try:
        creds = _build(url, synth_dir, rules_dir, provinces, citizens, seed, started)
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    get_engine().dispose()
    reset_engine()
    base = f"http://{host}:{port}"
    lines = [
        "",
        "mdm demo is ready / Bản trình diễn đã sẵn sàng",
        f"  console  {base}/steward/   steward: {creds['steward']}  password: {creds['password']}",
        f"  API      {base}/docs        key: {creds['api_key']}",
        f"           curl -H 'Authorization: Bearer {creds['api_key']}' -H 'X-Purpose: demo' "
        f"{base}/v1/entities/{creds['example_id']}",
        f"           (the key registers records under source system {DEMO_SOURCE_SYSTEM!r} only)",
        f"  entity   {base}/steward/entity/{creds['example_id']}",
        f"  database {url}",
    ]
    typer.echo("\n".join(lines))
    if not serve:
        _step("built (not serving: --no-serve)", started)
        return
    _serve(host, port, started)


def _build(
    url: str,
    synth_dir: Path,
    rules_dir: Path,
    provinces: int,
    citizens: int,
    seed: int,
    started: float,
) -> dict[str, str]:
    import logging

    from mdm.cli.ingest import _manifest_jobs
    from mdm.ingest.mapping import load_mapping
    from mdm.services import resolve as resolve_svc
    from mdm.services.accounts import create_steward, generate_password
    from mdm.services.ingest import ingest_file
    from mdm.services.matching.batch import run_batch
    from mdm.services.matching.training import train_from_store
    from mdm.services.units import load_units
    from mdm.store.db import get_engine, unit_of_work
    from mdm.store.migrate import upgrade
    from mdm.synth import SynthParams, generate

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Splink's EM notes on a small synthetic sample are expected, not actionable here.
    logging.getLogger("splink").setLevel(logging.ERROR)

    upgrade(url)
    engine = get_engine()
    load_units(engine)
    _step("schema migrated, administrative units loaded", started)

    manifest = generate(synth_dir, SynthParams(provinces=provinces, citizens=citizens, seed=seed))
    s = manifest["summary"]
    _step(
        f"synth: {s['files']} files, {s['rows']:,} rows, {s['distinct_people']:,} people", started
    )

    read = rejected = 0
    for job in _manifest_jobs(synth_dir / "manifest.json"):
        summary = ingest_file(
            engine,
            load_mapping(job["mapping"]),
            Path(job["path"]),
            source_name=job["source"],
            encoding=job["encoding"],
            report_dir=synth_dir.parent / "ingest",
        )
        read += summary.read
        rejected += summary.rejected
    _step(f"ingest: {read:,} rows read, {rejected:,} rejected (with reasons)", started)

    for entity_type in _TYPES:
        report = train_from_store(engine, entity_type, rules_dir=rules_dir)
        batch = run_batch(engine, entity_type, rules_dir=rules_dir)
        pending = batch.candidates.get("pending", 0)
        _step(
            f"match {entity_type}: trained on {report.records:,} records, "
            f"{batch.clusters:,} clusters, {pending:,} pairs for review",
            started,
        )
    for entity_type in _TYPES:
        with unit_of_work() as session:
            resolve_svc.resolve_pending(session, entity_type)
    _step("resolve: golden records up to date", started)

    password = generate_password()
    with unit_of_work() as session:
        create_steward(session, "demo", "senior", password, display_name="Cán bộ trình diễn (demo)")
    api_key = _api_client()
    _step("demo steward and API client created", started)
    return {
        "steward": "demo",
        "password": password,
        "api_key": api_key,
        "example_id": _example_id(),
    }


def _example_id() -> str:
    """A citizen whose golden record joins several sources: a good first lookup."""
    from mdm.services.history import most_linked
    from mdm.store.db import unit_of_work

    with unit_of_work() as session:
        found = most_linked(session, "citizen")
    return str(found or "")


DEMO_SOURCE_SYSTEM = "demo-agency"  # the one source system the demo's API key may write


def _api_client() -> str:
    try:
        from mdm.services.clients import create_client
    except ImportError:  # the API's client management is not installed
        return "(no API clients in this build)"
    from mdm.store.db import unit_of_work

    with unit_of_work() as session:
        created = create_client(
            session,
            "demo",
            [
                "*:read",
                "*:search",
                "*:write",
                "*:pii",
                "events:read",
                "subscriptions:manage",
            ],
            # registrations through the API come from an agency system of its own,
            # never under the synthetic sources' names
            source_systems=[DEMO_SOURCE_SYSTEM],
        )
    return created.key


def _serve(host: str, port: int, started: float) -> None:
    import httpx
    import uvicorn

    from mdm.http_server import uvicorn_options

    config = uvicorn.Config(
        "mdm.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(),
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not server.should_exit:
            try:
                if httpx.get(f"http://{host}:{port}/steward/login", timeout=1).status_code == 200:
                    _step(
                        f"serving the console at http://{host}:{port}/steward/ (Ctrl+C stops)",
                        started,
                    )
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
