"""Helpers shared by the bulk jobs (feature passes, identity runs)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
