"""Exports: cross-references and golden records, streamed (constant memory).

``xrefs`` is a format other tools depend on: a CSV with the header
``source_system,source_key,canonical_id``, one row per *active* source record of
the type, sorted by source system then key; ``canonical_id`` is empty only for a
record that no entity holds yet (before the first ``mdm match run``).

CSV files get opened in spreadsheets: a cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return would be run as a formula (``=HYPERLINK(...)``
in a source key sent by a province). Such a value is written with a leading ``'``
(the OWASP advice), which spreadsheets show but do not evaluate, and so is a value
that starts with ``'`` itself; a program reading the file strips one leading ``'``
before one of those characters or another ``'`` (:func:`unguard_cell`). Canonical
IDs and source system names never need it.
"""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from sqlalchemy import and_, select, true
from sqlalchemy.orm import Session

from mdm.store.repositories import entities as repo

XREF_HEADER = ("source_system", "source_key", "canonical_id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_GUARDED_START = (*_FORMULA_START, "'")


def guard_cell(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet evaluates as a formula (a value that
    already starts with ``'`` gets one more, so that :func:`unguard_cell` is exact)."""
    return "'" + value if value.startswith(_GUARDED_START) else value


def unguard_cell(value: str) -> str:
    """The value :func:`guard_cell` was given."""
    if value.startswith("'") and value[1:].startswith(_GUARDED_START):
        return value[1:]
    return value


def export_xrefs(session: Session, entity_type: str, out: TextIO) -> int:
    session.flush()
    r, s, lk, e = repo.records, repo.systems, repo.links, repo.entities
    stmt = (
        select(s.c.name, r.c.source_key, e.c.canonical_id)
        .select_from(r)
        .join(s, s.c.id == r.c.source_system_id)
        .outerjoin(lk, and_(lk.c.source_record_id == r.c.id, lk.c.active == true()))
        .outerjoin(e, e.c.id == lk.c.entity_id)
        .where(r.c.entity_type == entity_type, r.c.status == "active")
        .order_by(s.c.name, r.c.source_key)
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(XREF_HEADER)
    n = 0
    for system, key, cid in session.connection().execute(stmt.execution_options(yield_per=10_000)):
        writer.writerow((guard_cell(system), guard_cell(key), cid or ""))
        n += 1
    return n


def entity_document(row: Any) -> dict[str, Any]:
    return {
        "canonical_id": row.canonical_id,
        "entity_type": row.entity_type,
        "version": row.version,
        "attributes": row.attributes,
        "provenance": row.provenance,
        "updated_at": row.updated_at.isoformat(),
    }


def export_entities(session: Session, entity_type: str, out: TextIO) -> int:
    """Active golden records with provenance, one JSON object per line, by canonical ID."""
    session.flush()
    e = repo.entities
    stmt = (
        select(
            e.c.canonical_id,
            e.c.entity_type,
            e.c.version,
            e.c.attributes,
            e.c.provenance,
            e.c.updated_at,
        )
        .where(e.c.entity_type == entity_type, e.c.status == "active")
        .order_by(e.c.canonical_id)
    )
    n = 0
    for row in session.connection().execute(stmt.execution_options(yield_per=5_000)):
        out.write(json.dumps(entity_document(row), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n
