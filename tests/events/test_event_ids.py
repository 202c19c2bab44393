"""Event IDs: random version-4 UUIDs, made in bulk for a batch of events."""

from __future__ import annotations

import uuid

from mdm.events.outbox import new_event_ids


def test_event_ids_are_distinct_version_4_uuids_in_their_canonical_text() -> None:
    ids = new_event_ids(20_000)
    assert len(ids) == 20_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower case, dashes where uuid puts them


def test_event_ids_use_every_random_digit() -> None:
    """The 122 random bits are random: each free hex position takes many values
    (a slicing mistake would pin some position to a constant)."""
    ids = [i.replace("-", "") for i in new_event_ids(2_000)]
    for position in range(32):
        seen = {i[position] for i in ids}
        if position == 12:
            assert seen == {"4"}
        elif position == 16:
            assert seen == set("89ab")
        else:
            assert len(seen) == 16, position


def test_no_events_no_ids() -> None:
    assert new_event_ids(0) == []
