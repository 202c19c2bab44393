"""Values derived once per rules object, for the per-pair and per-record hot paths.

Rules objects are frozen pydantic models; what the hot paths need from them (key
prefixes, compiled guards) is built on first use and kept in a small cache keyed
by the object's ``id``. The entry holds the object itself, so its ``id`` cannot be
reused by another object while the entry lives.
"""

from __future__ import annotations

from collections.abc import Callable

#: Rules objects come and go (tests, reloads): a cache is emptied past this size.
MAX_ENTRIES = 64


def per_object[O, T](cache: dict[int, tuple[object, T]], obj: O, build: Callable[[O], T]) -> T:
    """``build(obj)`` once per ``obj`` (by identity), then the kept value. ``build`` is
    a plain function, so a hit creates nothing (these run per record and per pair)."""
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    value = build(obj)
    cache[id(obj)] = (obj, value)
    return value
