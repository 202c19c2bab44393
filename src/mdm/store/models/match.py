"""What the matcher keeps in the store between runs.

The incremental path (one record at a time, from the API) must find candidates and
score them with exactly what the last batch run used, without Splink: the feature
row of every active record (``match_features``), its blocking keys in an indexed
table (``blocking_keys``: one indexed lookup per request finds every record that
shares a key) and the term frequencies of the last batch (``term_frequencies``).
``match_runs`` records each training and batch run: the unit of audit and the
version the incremental scorer's cache is keyed on.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, JsonText, UTCDateTime, utcnow

#: Separates the entity type from the key in the hashed text (Postgres text cannot
#: hold NUL; no key contains the unit separator).
KEY_HASH_SEPARATOR = "\x1f"


def blocking_key_hash(entity_type: str, key: str) -> int:
    """The 64-bit signed integer a blocking key is stored as: the first 8 bytes of
    ``md5(entity_type || U+001F || key)`` (UTF-8), big-endian. Postgres computes the
    same value as ``('x' || substr(md5(entity_type || chr(31) || key), 1, 16))
    ::bit(64)::bigint`` (migration 0011 converted the stored keys with it).

    A collision of two different keys (about one chance in 10^7 among ten million
    distinct keys) only adds candidates, which the scorer then scores: never a
    missed candidate, never a link by itself."""
    return _hash_text(f"{entity_type}{KEY_HASH_SEPARATOR}{key}")


def blocking_key_hashes(entity_type: str, keys: Iterable[str]) -> list[int]:
    """The distinct hashes of a record's keys, in the keys' order (a feature pass
    hashes about seven keys per record: the prefix is formatted once)."""
    prefix = f"{entity_type}{KEY_HASH_SEPARATOR}"
    return list(dict.fromkeys([_hash_text(prefix + k) for k in keys]))


_first_8_signed = struct.Struct(">q").unpack_from


def _hash_text(text: str) -> int:
    """The first 8 bytes of the text's md5, as a signed big-endian integer."""
    return int(_first_8_signed(hashlib.md5(text.encode(), usedforsecurity=False).digest())[0])


class BlockingKey(Base):
    """``(entity type, key) → source record``: the incremental path's candidate index.

    A key names its blocking rule's columns and values (see
    :func:`mdm.matching.blocking_keys`); two records share a key exactly when the
    batch blocking would pair them. It is stored as a 64-bit hash
    (:func:`blocking_key_hash`): at a million records the index holds about seven
    million keys, and text keys cost twice the bytes and about twice the COPY time
    (``scripts/bench_blocking_keys.py``: 1078 against 590 MB, 47.4 against 25.2 s).
    The primary key ``(key_hash, source_record_id)`` is the index the candidate
    query uses (an index-only scan). The entity type is part of the hashed text, so
    it need not lead the key: as a text first column it made every comparison of an
    insertion slower (migration 0014); the candidate query checks the type on the
    feature row it reads anyway.
    """

    __tablename__ = "blocking_keys"
    __table_args__ = (Index(None, "source_record_id"),)

    entity_type: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # no foreign key: derived rows, checked by the run's tests (migration 0010)
    source_record_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)


class MatchFeatures(Base):
    """The feature row the matcher computed from a record's current version.

    ``content_hash`` covers the features and the blocking keys, so a batch run
    rewrites only the records whose features or keys changed (reruns are no-ops).
    """

    __tablename__ = "match_features"
    __table_args__ = (Index(None, "entity_type"),)

    source_record_id: Mapped[int] = mapped_column(
        BigId, primary_key=True, autoincrement=False
    )  # see BlockingKey
    entity_type: Mapped[str] = mapped_column(String(20))
    record_version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    #: :func:`mdm.services.matching.feature_signature` of the code and rules that
    #: computed the row; a current row is reused by the next pass, not recomputed
    signature: Mapped[str | None] = mapped_column(String(32))
    features: Mapped[dict[str, Any]] = mapped_column(JsonText)  # read whole: json text


class TermFrequency(Base):
    """Term frequencies of the last batch run, so both paths weigh ``Nguyễn`` alike."""

    __tablename__ = "term_frequencies"

    entity_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    tf: Mapped[float] = mapped_column(Float)


class MatchRun(Base):
    """One ``mdm match train`` or ``mdm match run``."""

    __tablename__ = "match_runs"
    __table_args__ = (
        CheckConstraint("kind IN ('train', 'run')", name="kind"),
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status"),
        Index(None, "entity_type", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    backend: Mapped[str] = mapped_column(String(20), default="duckdb")
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # sha256 of the model file used (run) or written (train)
    model_hash: Mapped[str | None] = mapped_column(String(64))
    # sha256 of the term-frequency table the run left in the store
    tf_hash: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
