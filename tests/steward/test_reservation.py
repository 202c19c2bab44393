"""Reservations under real concurrency: stewards taking candidates at the same
moment, each in a transaction of their own, never get the same one (both backends)."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from mdm.services import review
from mdm.store.db import make_engine
from tests.steward.seed import seed


def test_concurrent_takers_get_distinct_candidates(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        data = seed(s)
        s.commit()
    takers = 8
    barrier = threading.Barrier(takers)
    results: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def take(actor: str) -> None:
        try:
            with Session(engine) as s:
                barrier.wait()
                results[actor] = review.take_next(s, actor)
                s.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(f"steward:t{i}",)) for i in range(takers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    engine.dispose()
    assert not errors, errors
    taken = [c for c in results.values() if c is not None]
    assert len(taken) == len(set(taken)) == len(data.candidates)  # 4 candidates, 8 takers
    assert sorted(taken) == sorted(data.candidates.values())
