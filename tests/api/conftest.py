"""A small registry per backend for the API tests.

``mdm synth`` (one province, a few hundred citizens, organizations and dossiers) is
ingested; citizens get a trained model and a batch match run (so search and
registration work), organizations and dossiers become one entity per record; two
citizen entities are merged (a redirect). API clients cover the scopes the tests
need. The app is the real ``create_app()`` bound to the test database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from mdm.api import clear_auth_cache
from mdm.app import create_app
from mdm.ingest.mapping import load_mapping
from mdm.services import matching as matching_svc
from mdm.services.audit import close_writers
from mdm.services.clients import create_client
from mdm.services.identity import apply_partition
from mdm.services.ingest import ingest_file
from mdm.services.merge import merge_entities
from mdm.store.db import make_engine
from mdm.store.models import Entity, Link, SourceRecord, SourceSystem
from mdm.synth import SynthParams
from mdm.synth import generate as generate_synth
from tests.conftest import Databases
from tests.servers import free_port

ALL_SCOPES = ["*:read", "*:search", "*:write", "*:pii"]


@dataclass
class Registry:
    url: str
    engine: Engine
    rules_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # client name -> key
    ids: dict[str, list[str]] = field(default_factory=dict)  # entity type -> active IDs
    merged: tuple[str, str] = ("", "")  # (loser, survivor)
    xref: tuple[str, str, str] = ("", "", "")  # (system, key, canonical ID) of a citizen
    std: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical ID -> std

    base_url: str = ""

    def client(self, name: str = "all", base_url: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[name]}"} if name else {}
        return httpx.Client(base_url=base_url or self.base_url, headers=headers, timeout=30)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn in a thread of this process (real HTTP, real lifespan)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def api_app(reg: Registry) -> FastAPI:
    app = create_app()
    app.state.mdm_engine = reg.engine
    app.state.mdm_rules_dir = reg.rules_dir
    return app


def rules_dir_for_tests(tmp: Path) -> Path:
    """The shipped rules with smaller training samples (as the matching tests do)."""
    repo_rules = Path(__file__).resolve().parents[2] / "matching_rules"
    for entity in ("citizen", "organization", "dossier"):
        doc = yaml.safe_load((repo_rules / f"{entity}.yaml").read_text(encoding="utf-8"))
        doc["training"] = {**doc.get("training", {}), "u_max_pairs": 1e5, "em_max_pairs": 1e5}
        (tmp / f"{entity}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return tmp


@pytest.fixture(scope="session")
def api_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-synth")
    generate_synth(
        out, SynthParams(provinces=1, citizens=400, organizations=10, dossiers=10, seed=11)
    )
    return out


@pytest.fixture(scope="session")
def trained_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rules_dir_for_tests(tmp_path_factory.mktemp("api-rules"))


def _ingest(engine: Engine, synth: Path) -> None:
    manifest = json.loads((synth / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        ingest_file(
            engine,
            load_mapping(synth / entry["mapping"]),
            synth / entry["path"],
            source_name=entry["source_system"],
            workers=1,
        )


def _singletons(session: Session, entity_type: str) -> None:
    ids = session.execute(
        select(SourceRecord.id).where(
            SourceRecord.entity_type == entity_type, SourceRecord.status == "active"
        )
    ).scalars()
    apply_partition(session, entity_type, [[int(i)] for i in ids])


def make_clients(session: Session) -> dict[str, str]:
    specs: dict[str, list[str]] = {
        "all": ALL_SCOPES,
        "reader": ["*:read"],
        "citizen-reader": ["citizen:read"],
        "citizen-pii": ["citizen:read", "citizen:pii", "citizen:search"],
        "searcher": ["citizen:search"],
        "writer": ["citizen:write"],
        "org-reader": ["organization:read", "dossier:read"],
        "none": ["events:read"],
    }
    # the source systems the tests register into with the write keys
    writes = {"all": ["api-test", "audit-test", "sec-injection"], "writer": ["api-test"]}
    return {
        name: create_client(
            session, f"test-{name}", scopes, source_systems=writes.get(name, ())
        ).key
        for name, scopes in specs.items()
    }


@pytest.fixture(scope="module")
def registry(
    backend: str,
    databases: Databases,
    api_synth: Path,
    trained_rules: Path,
) -> Iterator[Registry]:
    url = databases.fresh(backend)
    engine = make_engine(url)
    # NullPool: ingest's per-source advisory lock is a *session* lock released by
    # closing its connection; a pooled connection would keep holding it.
    ingest_engine = make_engine(url, poolclass=NullPool)
    _ingest(ingest_engine, api_synth)
    ingest_engine.dispose()
    if not matching_svc.model_path("citizen", trained_rules).exists():
        matching_svc.train_from_store(engine, "citizen", rules_dir=trained_rules, threads=1)
    matching_svc.run_batch(engine, "citizen", rules_dir=trained_rules, threads=1)
    reg = Registry(url, engine, trained_rules)
    with Session(engine) as session:
        _singletons(session, "organization")
        _singletons(session, "dossier")
        session.commit()
        active = session.execute(
            select(Entity.entity_type, Entity.canonical_id)
            .where(Entity.status == "active")
            .order_by(Entity.id)
        ).all()
        for etype, cid in active:
            reg.ids.setdefault(etype, []).append(cid)
        survivor, loser = reg.ids["citizen"][0], reg.ids["citizen"][1]
        merge_entities(session, survivor, loser, actor="steward:test", reason="test merge")
        reg.ids["citizen"].remove(loser)
        reg.merged = (loser, survivor)
        system, key, cid = session.execute(
            select(SourceSystem.name, SourceRecord.source_key, Entity.canonical_id)
            .join(SourceRecord, SourceRecord.source_system_id == SourceSystem.id)
            .join(Link, (Link.source_record_id == SourceRecord.id) & Link.active.is_(True))
            .join(Entity, Entity.id == Link.entity_id)
            .where(Entity.entity_type == "citizen", Entity.status == "active")
            .order_by(SourceRecord.id)
            .limit(1)
        ).one()
        reg.xref = (system, key, cid)
        reg.keys = make_clients(session)
        session.commit()
    clear_auth_cache()
    with serving(api_app(reg)) as base:
        reg.base_url = base
        yield reg
    close_writers()
    matching_svc.clear_cache()
    engine.dispose()


def entity_with(reg: Registry, entity_type: str, *attrs: str) -> str:
    """An active entity of the type whose golden record has all ``attrs``."""
    with reg.engine.connect() as conn:
        rows = conn.execute(
            select(Entity.canonical_id, Entity.attributes).where(
                Entity.entity_type == entity_type, Entity.status == "active"
            )
        ).all()
    for cid, attributes in rows:
        if cid in reg.merged:  # the test merge joined two different people
            continue
        if all(attributes.get(a) for a in attrs):
            return str(cid)
    raise AssertionError(f"no {entity_type} with {attrs}")
