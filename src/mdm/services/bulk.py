"""Helpers shared by the bulk jobs (feature passes, identity runs)."""

from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
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


class OrderedProcessPool:
    """Worker processes (``forkserver``, like ingest's) whose results come back in
    submission order, at most ``workers + 1`` tasks in flight (memory stays bounded
    whatever the number of tasks). Each task carries a tag handed back with its
    result. Leaving the ``with`` block cancels what has not started and waits for
    the rest: no worker keeps running behind the caller."""

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]):
        import multiprocessing

        self._workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=initializer,
            initargs=initargs,
        )
        self._pending: deque[tuple[Any, Future[Any]]] = deque()

    def __enter__(self) -> OrderedProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for _tag, fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True)

    def submit(self, fn: Callable[[Any], Any], arg: Any, tag: Any = None) -> list[tuple[Any, Any]]:
        """Queue ``fn(arg)``; returns the ``(tag, result)`` pairs now due, oldest first."""
        self._pending.append((tag, self._pool.submit(fn, arg)))
        due = []
        while len(self._pending) > self._workers:
            t, fut = self._pending.popleft()
            due.append((t, fut.result()))
        return due

    def finish(self) -> list[tuple[Any, Any]]:
        """The remaining ``(tag, result)`` pairs, in order."""
        out = [(t, fut.result()) for t, fut in self._pending]
        self._pending.clear()
        return out
