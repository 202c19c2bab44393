"""The ingest workers' per-row path, without a database: what a worker process is
left with after its start, and that memoized standardizers answer what they did
uncached."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdm.ingest.mapping import parse_mapping
from mdm.services import ingest


@pytest.fixture
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _ctx() -> ingest._Context:
    return ingest._Context(1, 1, "citizen", "f.csv", False, copy_format=True)


def test_worker_start_leaves_the_collector_off(restore_gc: None) -> None:
    """A worker runs with the cyclic collector off for its whole life (it unpickles and
    builds as many objects between chunks as within them) and freezes what it holds."""
    gc.enable()
    mapping = parse_mapping(
        {"entity_type": "citizen", "source_key": "id", "fields": {"full_name": "name"}}
    )
    ingest._init_worker_process(mapping.model, Path("m.yaml"), _ctx())
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0
