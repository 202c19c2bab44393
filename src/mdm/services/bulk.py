"""Helpers shared by the bulk jobs (feature passes, identity runs)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a bulk run.

    A run allocates millions of small acyclic objects (rows, dicts, tuples); every
    few thousand allocations the collector would walk all live objects again, which
    cost a third of an identity run and two thirds of a feature pass. Reference
    counting still frees everything; the collector's previous state is restored
    afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class BackgroundWriter:
    """Runs writes on one background thread, one at a time, while the caller prepares
    the next: a bulk job's Python work overlaps the database's work on the previous
    batch instead of waiting for it.

    ``submit`` first waits for the write in flight (and raises its error, before
    more work is queued), so at most one batch is held beyond the one being
    prepared: memory stays bounded. ``drain`` waits for the last one; ``close``
    (always, in a ``finally``) never leaves a thread writing behind the caller.
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.drain()
        self._pending = self._pool.submit(fn, *args)

    def drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def bulk_workers() -> int:
    """Worker processes for a large batch step: ``MDM_MATCH_WORKERS`` if set, else one
    per core, at most 4 (beyond that the one Postgres backend of the run's writes
    is the limit)."""
    from mdm.config import get_settings

    configured = get_settings().match_workers
    if configured is not None:
        return configured
    return max(1, min(os.cpu_count() or 1, 4))
