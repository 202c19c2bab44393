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

from mdm.store.db import Session
from mdm.store.repositories import export as repo

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
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(XREF_HEADER)
    n = 0
    for system, key, cid in repo.xref_rows(session.connection(), entity_type):
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
    n = 0
    for row in repo.active_entities(session.connection(), entity_type):
        out.write(json.dumps(entity_document(row), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n
