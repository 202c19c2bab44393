"""Survivorship is pure: tested without a database."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from mdm.exceptions import ConfigError
from mdm.survivorship import (
    RecordInput,
    build_golden,
    canonical_json,
    completeness,
    load_survivorship,
    parse_survivorship,
)

RULES = load_survivorship("citizen")


def rec(
    ref: str, day: int = 1, trust: float = 0.5, codes: tuple[str, ...] = (), **values: object
) -> RecordInput:
    return RecordInput(
        ref=ref,
        values=values,
        trust={"default": trust},
        observed_at=datetime(2025, 1, day, tzinfo=UTC),
        issue_codes=frozenset(codes),
    )


def test_unanimous_values_and_provenance() -> None:
    g = build_golden(
        [rec("a/1", full_name="Nguyễn Văn An"), rec("b/2", full_name="Nguyễn Văn An")], RULES
    )
    assert g.attributes == {"full_name": "Nguyễn Văn An"}
    assert g.provenance["full_name"] == {
        "rule": "unanimous",
        "source_records": ["a/1", "b/2"],
        "conflict": False,
    }


def test_source_trust_decides_names() -> None:
    g = build_golden(
        [
            rec("a/1", trust=0.4, full_name="Nguyen Van An"),
            rec("p/1", trust=0.9, full_name="Nguyễn Văn An"),
        ],
        RULES,
    )
    assert g.attributes["full_name"] == "Nguyễn Văn An"
    assert g.provenance["full_name"]["rule"] == "source_trust"
    assert g.provenance["full_name"]["source_records"] == ["p/1"]


def test_most_recent_uses_stored_time_for_phone() -> None:
    g = build_golden([rec("a/1", day=1, phone="+84901"), rec("b/1", day=9, phone="+84902")], RULES)
    assert g.attributes["phone"] == "+84902"
    assert g.provenance["phone"]["rule"] == "most_recent"


def test_valid_personal_id_beats_flagged_one() -> None:
    good = rec("a/1", trust=0.3, personal_id="001090000001", date_of_birth="1990-05-12")
    bad = rec("p/1", trust=1.0, codes=("personal_id_inconsistent",), personal_id="001190000001")
    g = build_golden([good, bad], RULES)
    assert g.attributes["personal_id"] == "001090000001"
    assert g.provenance["personal_id"]["rule"] == "valid_over_flagged"
    assert g.provenance["personal_id"]["conflict"] is False  # the other one is flagged


def test_two_valid_dates_of_birth_are_a_conflict_not_silently_resolved() -> None:
    g = build_golden(
        [rec("a/1", date_of_birth="1990-05-12"), rec("b/1", date_of_birth="1990-12-05")], RULES
    )
    p = g.provenance["date_of_birth"]
    assert p["conflict"] is True
    assert [c["value"] for c in p["candidates"]] == ["1990-05-12", "1990-12-05"]
    assert set(g.conflicts) == {"date_of_birth"}


def test_partial_date_agrees_with_full_date_and_the_full_one_wins() -> None:
    g = build_golden(
        [rec("a/1", date_of_birth="1990"), rec("b/1", date_of_birth="1990-05-12")], RULES
    )
    assert g.attributes["date_of_birth"] == "1990-05-12"
    assert g.provenance["date_of_birth"] == {
        "rule": "most_complete",
        "source_records": ["b/1"],
        "conflict": False,
    }


def test_override_always_wins() -> None:
    g = build_golden(
        [rec("a/1", trust=1.0, full_name="A")], RULES, {"full_name": "B", "email": "x@y.vn"}
    )
    assert g.attributes == {"full_name": "B", "email": "x@y.vn"}
    assert g.provenance["full_name"]["rule"] == "steward_override"


def test_tie_break_is_deterministic() -> None:
    g = build_golden([rec("a/1", ethnicity="Thái"), rec("b/1", ethnicity="Kinh")], RULES)
    assert g.attributes["ethnicity"] == "Kinh"  # canonical JSON sorts first
    assert g.provenance["ethnicity"]["rule"] == "tie_break"


def test_order_of_inputs_does_not_matter() -> None:
    rs = [
        rec(
            f"s{i}/{i}",
            day=1 + i % 5,
            trust=0.1 * (i % 4),
            full_name=f"N {i % 3}",
            phone=f"+849{i % 2}",
        )
        for i in range(12)
    ]
    first = build_golden(rs, RULES)
    for seed in range(5):
        shuffled = rs[:]
        random.Random(seed).shuffle(shuffled)
        assert build_golden(shuffled, RULES) == first


def test_completeness() -> None:
    assert completeness("1990-05-12") > completeness("1990-05") > completeness("1990")
    assert completeness({"province_code": "01", "commune_code": "00004"}) == 2
    assert completeness({"province_code": "01", "ambiguous": False, "candidates": []}) == 1


@pytest.mark.parametrize(
    "section, message",
    [
        ({"default": {"strategies": ["most_recent", "steward_override"]}}, "first"),
        ({"default": {"strategies": ["psychic"]}}, "strategies"),
        ({"attributes": {"shoe_size": {"strategies": ["most_recent"]}}}, "shoe_size"),
        ({"default": {"strategies": ["most_recent", "most_recent"]}}, "twice"),
    ],
)
def test_invalid_rules_are_refused(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_survivorship("citizen", section)


def test_shipped_rules_load_for_every_type() -> None:
    for entity_type in ("citizen", "organization", "dossier"):
        rules = load_survivorship(entity_type)
        assert rules.default.strategies


def test_single_record_fast_path_is_exactly_the_general_rules() -> None:
    """Entities with one record skip candidate building; the result must not differ
    (invariant 6: ``rebuild`` recomputes through whichever path applies)."""
    from mdm.survivorship.engine import _general

    rng = random.Random(11)
    values: list[object] = ["", None, [], {}, "Nguyễn Văn An", "1990", "1990-05-12", 0, False]
    values += [{"province_code": "01", "street": ""}, ["a", "b"], 3.5, {"x": {}}]
    attrs = ["full_name", "date_of_birth", "sex", "personal_id", "permanent_address", "phone"]
    for i in range(300):
        std = {a: rng.choice(values) for a in rng.sample(attrs, rng.randrange(0, len(attrs)))}
        codes = ("personal_id_inconsistent",) if i % 3 == 0 else ()
        r = rec(f"s{i % 4}/{i}", day=1 + i % 20, codes=codes, **std)
        fast, slow = build_golden([r], RULES), _general([r], RULES, {})
        assert fast == slow
        assert canonical_json(fast.provenance) == canonical_json(slow.provenance)
        assert list(fast.attributes) == list(slow.attributes)
