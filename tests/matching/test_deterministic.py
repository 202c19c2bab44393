from __future__ import annotations

import pytest

from mdm.matching.clustering import Edge, cluster
from mdm.matching.deterministic import (
    constraint_values,
    decide_pair,
    exclusive_conflict,
    guard_conflict,
)
from mdm.matching.features import build_features
from mdm.matching.rules import load_rules


def cit(uid: str, **std: object) -> dict[str, object]:
    return build_features("citizen", uid, "src", std)


PID = "001090012345"


def test_same_id_same_dob_links() -> None:
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn Văn An")
    b = cit("b", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn An")
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "link" and decision.method == "rule"


def test_partial_date_does_not_contradict() -> None:
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990", sex="male")
    b = cit("b", personal_id=PID, date_of_birth="1990-05-12", sex="male")
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "link"


def test_same_id_under_another_given_name_is_a_conflict() -> None:
    """The same ID under another given name is a relative's ID typed into a record:
    a steward decides, never an automatic link (whatever the model says)."""
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn Văn An")
    b = cit(
        "b", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn Văn Bình"
    )
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "conflict"
    assert decision.method == "rule_conflict"
    # a generation between the birth years: the max_gap constraint, also never linked
    c = cit("c", personal_id=PID, date_of_birth="1962-05-12", sex="male", full_name="Nguyễn Văn An")
    assert exclusive_conflict(rules, a, c) == "max_gap:birth_year_any"


@pytest.mark.parametrize(
    "other",
    [
        {"date_of_birth": "1985-05-12", "sex": "male"},  # more than one slip apart
        {"date_of_birth": "1991-06-12", "sex": "male"},  # a year and a month: two slips
        {"date_of_birth": "1990-05-12", "sex": "female"},  # a sex code mistyped
    ],
)
def test_same_id_with_dates_or_sexes_apart_is_evidence_not_a_veto(other: dict[str, str]) -> None:
    """One ID, one name, and a date two slips apart or another sex: the rule does not
    link it, nor forbid it; the model weighs the disagreement with the rest."""
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn Văn An")
    b = cit("b", personal_id=PID, **{"full_name": "Nguyễn Văn An", **other})
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "review"
    assert decision.method == "rule_review"
    assert exclusive_conflict(rules, a, b) is None


@pytest.mark.parametrize(
    "other",
    [
        {"date_of_birth": "1991-05-12", "full_name": "Nguyễn Văn An"},  # year one off
        {"date_of_birth": "1990-05-13", "full_name": "Nguyễn Văn An"},  # a day digit
        {"date_of_birth": "1990-12-05", "full_name": "Nguyễn Văn An"},  # day/month swapped
        {"date_of_birth": "1989-05-12", "full_name": "Nguyen An"},  # no marks, no middle
        {"date_of_birth": "1990-05-12", "full_name": "Nguyễn Văn Ana"},  # a typo
    ],
)
def test_same_id_one_clerical_slip_apart_links(other: dict[str, str]) -> None:
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990-05-12", sex="male", full_name="Nguyễn Văn An")
    b = cit("b", personal_id=PID, sex="male", **other)
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "link", decision


def test_missing_dob_is_review_not_link() -> None:
    rules = load_rules("citizen")
    decision = decide_pair(
        rules,
        cit("a", personal_id=PID, sex="male"),
        cit("b", personal_id=PID, sex="male", date_of_birth="1990"),
    )
    assert decision is not None and decision.outcome == "review"


def test_different_ids_are_exclusive() -> None:
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID)
    b = cit("b", personal_id="001090012376")  # two digits apart: another ID
    assert decide_pair(rules, a, b) is None
    assert exclusive_conflict(rules, a, b) == "personal_id"
    assert exclusive_conflict(rules, a, cit("c", date_of_birth="1990-02-03")) is None
    # a record without any birth year may not be linked on the model's word alone
    assert exclusive_conflict(rules, a, cit("c")) is None
    assert guard_conflict(rules, a, cit("c")) == "guard:no_birth_year"


@pytest.mark.parametrize(
    "typed",
    [
        "001090012346",  # one digit mistyped
        "001090012354",  # two digits transposed
        "001090021345",  # transposed in the middle
    ],
)
def test_one_id_typed_twice_is_not_two_ids(typed: str) -> None:
    """A transposition or one wrong digit keeps nothing apart: the pair's evidence
    decides (no same-key rule applies, the IDs are not equal)."""
    rules = load_rules("citizen")
    a = cit("a", personal_id=PID, date_of_birth="1990-01-02")
    b = cit("b", personal_id=typed, date_of_birth="1990-01-02")
    assert decide_pair(rules, a, b) is None
    assert exclusive_conflict(rules, a, b) is None


def test_an_id_in_doubt_keeps_nothing_apart() -> None:
    """An ID whose year digits contradict the record's own birth date (the
    standardizer's personal_id_inconsistent) is doubtful: no exclusivity."""
    rules = load_rules("citizen")
    sure = cit("a", personal_id=PID, date_of_birth="1990-01-02", sex="male")
    other = cit("b", personal_id="001090987654", date_of_birth="1990-01-02", sex="male")
    doubtful = cit("c", personal_id="001075987654", date_of_birth="1990-01-02", sex="male")
    assert sure["personal_id_doubtful"] is False and doubtful["personal_id_doubtful"] is True
    assert cit("d", personal_id=PID, sex="female")["personal_id_doubtful"] is True
    assert cit("e", date_of_birth="1990")["personal_id_doubtful"] is None
    assert exclusive_conflict(rules, sure, other) == "personal_id"
    assert exclusive_conflict(rules, sure, doubtful) is None
    # and in the batch clustering: the doubtful ID does not forbid the chain's union
    exclusive = {r["unique_id"]: constraint_values(rules, r) for r in (sure, other, doubtful)}
    assert exclusive["c"]["personal_id"] is None
    edges = [Edge("a", "c", 20.0, "model"), Edge("b", "c", 10.0, "model")]
    result = cluster(edges, exclusive=exclusive)
    # a-c joins; b-c would put two sure IDs in one cluster: refused
    assert result.clusters == [frozenset({"a", "c"})]
    assert result.refused[0][1] == "exclusive:personal_id"


def test_typo_tolerance_never_drifts_along_a_chain() -> None:
    """Each ID one edit from the next, but the ends two apart: the chain stops."""
    exclusive = {
        "A": {"personal_id": "001090012345"},
        "B": {"personal_id": "001090012346"},
        "C": {"personal_id": "001090012356"},
    }
    edges = [Edge("A", "B", 30.0, "model"), Edge("B", "C", 20.0, "model")]
    result = cluster(edges, exclusive=exclusive, typo_edits={"personal_id": 1})
    assert result.clusters == [frozenset({"A", "B"})]
    assert result.refused[0][1] == "exclusive:personal_id"
    strict = cluster(edges, exclusive=exclusive)
    assert strict.clusters == [] and len(strict.refused) == 2


def test_organization_branch_is_not_parent() -> None:
    rules = load_rules("organization")
    parent = build_features(
        "organization", "p", "s", {"tax_code": "0101234567", "name": "Công ty A"}
    )
    branch = build_features("organization", "b", "s", {"tax_code": "0101234567-001"})
    same = build_features("organization", "q", "s", {"tax_code": "0101234567"})
    assert decide_pair(rules, parent, branch) is None
    assert exclusive_conflict(rules, parent, branch) == "tax_code"
    decision = decide_pair(rules, parent, same)
    assert decision is not None and decision.outcome == "link"


def test_dossier_same_code_and_procedure() -> None:
    rules = load_rules("dossier")
    a = build_features(
        "dossier",
        "a",
        "province",
        {"dossier_code": "h01.1-250101-0001", "procedure_code": "1.0001"},
    )
    b = build_features(
        "dossier", "b", "portal", {"dossier_code": "H01.1-250101-0001", "procedure_code": "1.0001"}
    )
    c = build_features(
        "dossier", "c", "portal", {"dossier_code": "H01.1-250101-0001", "procedure_code": "2.0002"}
    )
    decision = decide_pair(rules, a, b)
    assert decision is not None and decision.outcome == "link"
    assert decide_pair(rules, a, c) is None


def test_transitive_cannot_link_is_never_violated() -> None:
    edges = [Edge("A", "B", 20.0, "model"), Edge("B", "C", 19.0, "model")]
    result = cluster(edges, cannot_link=[("A", "C")])
    assert not any({"A", "C"} <= c for c in result.clusters)
    assert len(result.refused) == 1 and result.refused[0][1] == "cannot_link"
    # order of the stronger edge wins: A-B kept
    assert frozenset({"A", "B"}) in result.clusters


def test_transitive_exclusive_keys() -> None:
    edges = [Edge("A", "B", 10.0, "model"), Edge("B", "C", 30.0, "model")]
    exclusive = {"A": {"personal_id": "1"}, "B": {"personal_id": None}, "C": {"personal_id": "2"}}
    result = cluster(edges, exclusive=exclusive)
    assert result.clusters == [frozenset({"B", "C"})]
    assert result.refused[0][1] == "exclusive:personal_id"


def test_must_links_first_and_never_override_cannot_link() -> None:
    edges = [Edge("A", "B", 50.0, "model")]
    result = cluster(edges, must_link=[("B", "C"), ("A", "D")], cannot_link=[("C", "D")])
    # B-C and A-D accepted first; A-B would join C and D: refused
    assert sorted(map(sorted, result.clusters)) == [["A", "D"], ["B", "C"]]
    assert result.refused[0][0].method == "model"


def test_cluster_is_deterministic_and_chains() -> None:
    edges = [Edge(str(i), str(i + 1), 10.0, "model") for i in range(50)]
    assert cluster(edges).clusters == cluster(list(reversed(edges))).clusters
    assert len(cluster(edges).clusters[0]) == 51
