"""Event IDs: time-ordered version-7 UUIDs, made in bulk for a batch of events."""

from __future__ import annotations

import time
import uuid

import pytest

from mdm.events.outbox import new_event_ids


def test_event_ids_are_distinct_version_7_uuids_in_their_canonical_text() -> None:
    ids = new_event_ids(20_000)
    assert len(ids) == 20_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower case, dashes where uuid puts them


def test_event_ids_carry_the_time_and_sort_in_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_event_ids(20_000)
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids)  # one batch: appended at the index's right edge
    stamps = {int(i.replace("-", "")[:12], 16) for i in ids}
    assert len(stamps) == 1
    assert before <= stamps.pop() <= after
    later = new_event_ids(1)[0]
    time.sleep(0.002)
    assert new_event_ids(1)[0] > later


def test_event_ids_use_every_random_digit() -> None:
    """The last 48 bits are random: each of their hex positions takes many values
    (a slicing mistake would pin one to a constant), and two calls in one
    millisecond still give distinct IDs."""
    ids = [i.replace("-", "") for i in new_event_ids(2_000)]
    for position in range(20, 32):
        assert len({i[position] for i in ids}) == 16, position
    assert {i[12] for i in ids} == {"7"}
    assert {i[16] for i in ids} <= set("89ab")
    both = new_event_ids(500) + new_event_ids(500)
    assert len(set(both)) == 1_000


def test_no_events_no_ids() -> None:
    assert new_event_ids(0) == []


def test_a_batch_has_room_for_its_counter() -> None:
    with pytest.raises(ValueError, match="at most"):
        new_event_ids(1 << 26)
