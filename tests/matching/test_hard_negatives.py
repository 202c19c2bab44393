"""Twins and same-name parent/child pairs are never linked automatically.

Three layers, each of which would let a pair through without the others:

* the features: the birth year a 12-digit personal ID encodes (digit 4 century and
  sex, digits 5–6 the year) stands in for a missing date of birth;
* the ``max_gap`` constraint on that year: a generation apart is never one person,
  neither directly nor through a chain of links (batch clustering and the
  incremental path);
* the whole pipeline on generated data with planted look-alikes, including the
  cases that used to link: a child's record without a date of birth but with its
  personal ID, a parent's with only the old CMND, a phone the family shares, and a
  record without date or ID that bridges the two.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from mdm.matching.batch import BatchResult, predict_and_cluster, tf_lookup_from_arrow
from mdm.matching.clustering import Edge, cluster
from mdm.matching.deterministic import (
    decide_pair,
    exclusive_conflict,
    guard_conflict,
    worth_review,
)
from mdm.matching.features import build_features, personal_id_birth_year, street_key
from mdm.matching.incremental import IncrementalMatcher, InMemoryCandidateIndex
from mdm.matching.model import MatchModel
from mdm.matching.rules import load_rules
from mdm.matching.training import TrainedModel
from tests.matching.synthetic import Generated


def cit(uid: str, **std: object) -> dict[str, Any]:
    return build_features("citizen", uid, "src", std)


HOME = {"province_code": "01", "commune_code": "00004", "street": "Số 12, đường Lê Lợi"}


@pytest.mark.parametrize(
    ("pid", "year"),
    [
        ("001090012345", 1990),
        ("001190012345", 1990),
        ("079205012345", 2005),
        ("079312012345", 2012),
        ("00109001234", None),
        ("00A090012345", None),
        (None, None),
    ],
)
def test_personal_id_birth_year(pid: str | None, year: int | None) -> None:
    assert personal_id_birth_year(pid) == year


def test_birth_year_falls_back_to_the_personal_id() -> None:
    only_id = cit("a", personal_id="001205012345")
    assert only_id["birth_year"] is None
    assert only_id["birth_year_any"] == 2005
    assert only_id["dob_is_partial"] is True
    dated = cit("b", personal_id="001205012345", date_of_birth="2004-03-02")
    assert dated["birth_year_any"] == 2004  # the date wins over the ID
    assert dated["dob_is_partial"] is False
    assert cit("c")["birth_year_any"] is None


def test_swapped_day_and_month_is_not_a_conflicting_date() -> None:
    rules = load_rules("citizen")
    pid = "001090012345"
    a = cit("a", personal_id=pid, date_of_birth="1990-05-12", sex="male")
    swapped = cit("b", personal_id=pid, date_of_birth="1990-12-05", sex="male")
    one_digit = cit("c", personal_id=pid, date_of_birth="1990-05-13", sex="male")
    other_day = cit("e", personal_id=pid, date_of_birth="1990-05-27", sex="male")
    assert a["birth_md"] == swapped["birth_md"] == "05-12"
    decision = decide_pair(rules, a, swapped)
    assert decision is not None and decision.outcome == "link"
    # one digit of the day is a clerical slip; another day altogether is no rule
    # link: the model weighs it (no veto either)
    decision = decide_pair(rules, a, one_digit)
    assert decision is not None and decision.outcome == "link"
    decision = decide_pair(rules, a, other_day)
    assert decision is not None and decision.outcome == "review"
    assert cit("d", date_of_birth="1990-01-01")["birth_md"] is None  # placeholder


def test_given_names_that_differ_only_in_tone() -> None:
    rules = load_rules("citizen")
    hoa, hoa_grave, hoa_old_style = (
        cit(str(i), full_name=n, date_of_birth="1999-02-03")
        for i, n in enumerate(["Tạ Thị Hoa", "Tạ Thị Hòa", "Tạ Thị Hoà"])
    )
    stripped = cit("s", full_name="Ta Thi Hoa", date_of_birth="1999-02-03")
    assert hoa["full_name_fold"] == hoa_grave["full_name_fold"] == stripped["full_name_fold"]
    assert hoa["given_marked"] == "hoa" and stripped["given_marked"] is None
    assert hoa_grave["given_marked"] == hoa_old_style["given_marked"]  # tone placement
    assert guard_conflict(rules, hoa, hoa_grave) == "guard:given_names_differ_in_tone"
    assert guard_conflict(rules, hoa_grave, hoa_old_style) is None
    assert guard_conflict(rules, hoa, stripped) is None  # no marks: cannot tell


def test_street_words_clerks_add_or_drop() -> None:
    assert street_key("Số 12, đường Lê Lợi") == street_key("12 Lê Lợi") == "12 le loi"
    assert street_key("Xóm 9") == street_key("Thôn 9") == "thon 9"
    assert street_key("Phố Huế") == "pho hue"  # a street called Phố Huế keeps its name
    assert street_key("  ") is None


def test_a_generation_apart_is_never_auto_linked() -> None:
    rules = load_rules("citizen")
    parent = cit(
        "p", full_name="Nguyễn Văn An", date_of_birth="1962-04-03", old_id_number="012345678"
    )
    child_id_only = cit("c", full_name="Nguyễn Văn An", personal_id="001090012345")
    child_dated = cit("d", full_name="Nguyễn Văn An", date_of_birth="1990-07-01")
    assert exclusive_conflict(rules, parent, child_id_only) == "max_gap:birth_year_any"
    assert exclusive_conflict(rules, parent, child_dated) == "max_gap:birth_year_any"
    near = cit("n", full_name="Nguyễn Văn An", date_of_birth="1970")
    assert exclusive_conflict(rules, parent, near) is None  # 8 years: a typo, the model decides


def test_max_gap_holds_through_a_chain() -> None:
    # parent(1962) – bridge(no year) – child(1990): the stronger edge wins, the other
    # is refused; a third record a few years off the parent still joins
    edges = [
        Edge("parent", "bridge", 30.0, "model"),
        Edge("bridge", "child", 20.0, "model"),
        Edge("child", "near", 25.0, "model"),
        Edge("bridge", "typo", 10.0, "model"),
    ]
    values = {
        "parent": {"birth_year_any": 1962},
        "bridge": {"birth_year_any": None},
        "child": {"birth_year_any": 1990},
        "near": {"birth_year_any": 1991},
        "typo": {"birth_year_any": 1970},
    }
    result = cluster(edges, exclusive=values, max_gap={"birth_year_any": 14})
    assert sorted(map(sorted, result.clusters)) == [
        ["bridge", "parent", "typo"],
        ["child", "near"],
    ]
    assert [why for _, why in result.refused] == ["max_gap:birth_year_any"]


def test_a_mother_and_daughter_of_one_given_name_are_two_people() -> None:
    """One phone, one address, one given name, and the daughter's record carrying the
    mother's personal ID (so the birth year it encodes is the mother's): the
    surnames, which no clerical slip turns into one another, keep them apart."""
    rules = load_rules("citizen")
    home = {**HOME, "street": "Thôn 13"}
    mother = cit(
        "m",
        full_name="Võ Thị Mai",
        date_of_birth="1982",
        old_id_number="166781848",
        sex="female",
        phone="0700184682",
        permanent_address=home,
    )
    daughter = cit(
        "d",
        full_name="Trần Thị Mai",
        personal_id="036182699533",
        sex="female",
        phone="0700184682",
        permanent_address=home,
    )
    assert daughter["birth_year_any"] == mother["birth_year_any"] == 1982
    assert guard_conflict(rules, mother, daughter) == "guard:different_surnames"
    # nothing a slip explains: not even a question for a steward
    assert not worth_review(rules, "guard:different_surnames", mother, daughter)
    # a surname mistyped (Trần/Trân, Nguyễn/Ngguyễn) or a regional spelling is no veto
    for spelling in ("Trân Thị Mai", "Trầnn Thị Mai"):
        typed = cit("x", full_name=spelling, personal_id="036182699533")
        assert guard_conflict(rules, daughter, typed) is None
    hoang = cit("h", full_name="Hoàng An", date_of_birth="1990")
    huynh = cit("y", full_name="Huỳnh An", date_of_birth="1990")
    assert guard_conflict(rules, hoang, huynh) is None
    # the same ID under two surnames: a relative's ID typed into a record, a question
    same_id = cit("s", full_name="Võ Thị Mai", personal_id="036182699533", sex="female")
    assert guard_conflict(rules, same_id, daughter) == "guard:different_surnames"
    assert worth_review(rules, "guard:different_surnames", same_id, daughter)


def test_twins_who_differ_in_the_middle_name_are_two_people() -> None:
    """Lê Công Tuấn and Lê Quốc Tuấn: one birth date, phone and address, one given
    name. A dropped Văn/Thị, a middle name one typo off or a shared ID is no veto."""
    rules = load_rules("citizen")
    home = {**HOME, "street": "Thôn 8"}
    shared = {"date_of_birth": "1986-04-27", "sex": "male", "phone": "0831951657"}
    a = cit("a", full_name="Lê Công Tuấn", permanent_address=home, **shared)
    b = cit("b", full_name="Lê Quốc Tuấn", permanent_address=home, **shared)
    assert guard_conflict(rules, a, b) == "guard:different_middle_names"
    assert not worth_review(rules, "guard:different_middle_names", a, b)
    for other in ("Lê Tuấn", "Lê Cong Tuấn", "Lê Côngg Tuấn"):
        assert guard_conflict(rules, a, cit("o", full_name=other, **shared)) is None
    # a brother and a sister: Văn and Thị mark the sex, no slip writes one for the other
    brother = cit("v", full_name="Hồ Văn Anh", permanent_address=home, **shared)
    sister = cit("s", full_name="Hồ Thị Anh", permanent_address=home, **shared)
    assert guard_conflict(rules, brother, sister) == "guard:different_middle_names"
    thu_ha = cit("t", full_name="Nguyễn Thị Thu Hà", **shared)
    assert guard_conflict(rules, thu_ha, cit("h", full_name="Nguyễn Thu Hà", **shared)) is None
    with_id = {**shared, "personal_id": "035086721779"}
    assert (
        guard_conflict(
            rules,
            cit("i", full_name="Lê Công Tuấn", **with_id),
            cit("j", full_name="Lê Quốc Tuấn", **with_id),
        )
        is None
    )


def test_twins_named_one_letter_apart_go_to_a_steward() -> None:
    """Hoàng Thị Uyên and Hoàng Thị Duyên: one birth date, phone and address, given
    names one letter apart. As likely twins as a typo: never linked automatically,
    always reviewed; a shared ID links them, a dropped diacritic or middle name is
    no difference, and another birth date leaves the typo to the model."""
    rules = load_rules("citizen")
    home = {**HOME, "street": "Thôn 3"}
    shared = {"date_of_birth": "2020-10-06", "sex": "female", "phone": "0991846064"}
    uyen = cit("a", full_name="Hoàng Thị Uyên", permanent_address=home, **shared)
    duyen = cit("b", full_name="Hoàng Duyên", permanent_address=home, **shared)
    assert guard_conflict(rules, uyen, duyen) == "guard:twin_given_names"
    assert worth_review(rules, "guard:twin_given_names", uyen, duyen)
    for same in ("HOANG THI UYEN", "Hoàng Uyên", "Hoàngthị Uyên"):
        assert guard_conflict(rules, uyen, cit("o", full_name=same, **shared)) is None
    # a typo that makes no syllable is no second name: the model weighs it
    assert guard_conflict(rules, uyen, cit("t", full_name="Hoàng Thị Uyne", **shared)) is None
    other_day = {**shared, "date_of_birth": "2020-10-07"}
    assert guard_conflict(rules, uyen, cit("d", full_name="Hoàng Thị Duyên", **other_day)) is None
    with_id = {**shared, "personal_id": "037320485469"}
    assert (
        guard_conflict(
            rules,
            cit("i", full_name="Hoàng Thị Uyên", **with_id),
            cit("j", full_name="Hoàng Thị Duyên", **with_id),
        )
        is None
    )


def test_an_id_in_doubt_lifts_no_guard() -> None:
    """Nguyễn Thùy Linh's record carries Nguyễn Anh Bình's personal ID (a man born
    1980: the ID's sex digit contradicts her record). A shared ID lifts the given-name
    and no-birth-year guards only when it agrees with its own record."""
    rules = load_rules("citizen")
    pid = "037080568779"  # male, born 1980
    phone = "0993544449"
    owner = cit(
        "a",
        full_name="Nguyễn Anh Bình",
        personal_id=pid,
        sex="male",
        date_of_birth="1980-06-20",
        phone=phone,
    )
    linh = cit("b", full_name="Nguyễn Thùy Linh", personal_id=pid, sex="female", phone=phone)
    assert linh["personal_id_doubtful"] is True and linh["personal_id_sure"] is None
    assert owner["personal_id_sure"] == pid
    assert guard_conflict(rules, owner, linh) is not None
    assert not worth_review(rules, guard_conflict(rules, owner, linh) or "", owner, linh)
    # the same ID on a record it agrees with still lifts the guard (a dropped middle
    # name, no date on the second record)
    same = cit("c", full_name="Nguyễn Bình", personal_id=pid, sex="male", phone=phone)
    assert same["personal_id_sure"] == pid
    assert guard_conflict(rules, owner, same) is None


def test_full_birth_dates_no_slip_explains_are_two_people() -> None:
    """Sisters of one name in one household, born 2014-05-18 and 2018-01-17: no
    clerical slip writes one as the other. Two digits, a swap, a shared ID: no veto."""
    rules = load_rules("citizen")
    kw = {"full_name": "Nguyễn Thị Trinh", "phone": "0990423935", "sex": "female"}
    older = cit("a", date_of_birth="2014-05-18", **kw)
    assert guard_conflict(rules, older, cit("b", date_of_birth="2018-01-17", **kw)) == (
        "guard:different_birth_dates"
    )
    for slip in ("2014-05-19", "2015-05-18", "2014-18-05", "2016-05-19", "2014", "2014-01-01"):
        assert guard_conflict(rules, older, cit("c", date_of_birth=slip, **kw)) is None, slip
    # a shared ID that both records agree with lifts it; one the second record's own
    # date contradicts (a sister's ID typed in, or a date no slip explains) sends the
    # pair to a steward
    pid = "036314012345"  # a woman born 2014
    d = cit("d", date_of_birth="2014-05-18", personal_id=pid, **kw)
    assert guard_conflict(rules, d, cit("f", date_of_birth="2014", personal_id=pid, **kw)) is None
    e = cit("e", date_of_birth="2018-01-17", personal_id=pid, **kw)
    assert guard_conflict(rules, d, e) == "guard:different_birth_dates"
    assert worth_review(rules, "guard:different_birth_dates", d, e)


@pytest.mark.parametrize(
    ("reason", "left", "right", "queued"),
    [
        # twins: given names three letters apart are two people; two edits may be a slip
        (
            "guard:different_given_names",
            {"full_name": "Lê Văn Toàn"},
            {"full_name": "Lê Văn Khoa"},
            False,
        ),
        (
            "guard:different_given_names",
            {"full_name": "Lê Văn Toàn"},
            {"full_name": "Lê Văn Toại"},
            True,
        ),
        # a generation apart: 1962/1990 is no typo, 1965/1995 is one digit
        ("max_gap:birth_year_any", {"date_of_birth": "1962"}, {"date_of_birth": "1990"}, False),
        ("max_gap:birth_year_any", {"date_of_birth": "1965"}, {"date_of_birth": "1995"}, True),
        # two sure IDs: far apart, two people; two edits, maybe one ID typed twice
        (
            "exclusive:personal_id",
            {"personal_id": "001090012345"},
            {"personal_id": "001090987654"},
            False,
        ),
        ("personal_id", {"personal_id": "001090012345"}, {"personal_id": "001090012398"}, True),
        # a same-key conflict and a steward's cannot-link always reach a steward
        ("rule:same_personal_id", {"full_name": "An"}, {"full_name": "Bình"}, True),
        ("cannot_link", {}, {}, True),
    ],
)
def test_a_refused_pair_reaches_a_steward_only_when_a_slip_could_explain_it(
    reason: str, left: dict[str, Any], right: dict[str, Any], queued: bool
) -> None:
    rules = load_rules("citizen")
    assert worth_review(rules, reason, cit("l", **left), cit("r", **right)) is queued


# --------------------------------------------------------------- the pipeline


def _look_alikes() -> tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[str, str, str]]]:
    """Families whose look-alike records used to be linked automatically.

    Per family: a parent and a child of one name, one address and one family phone,
    the parent known only by the old CMND, the child by the personal ID without a
    date of birth, and a record with neither date nor ID; twins of one surname,
    date, address and phone, one with a personal ID, one without; twin sisters Hoa
    and Hòa (one name once folded), one with a CMND, one with only a birth year.
    """
    records: list[tuple[str, str, dict[str, Any]]] = []
    hard: list[tuple[str, str, str]] = []
    givens = ["Khoa", "Thịnh", "Quyết", "Triều", "Vỹ", "Khải", "Luân", "Phát"]
    others = ["Toàn", "Hiển", "Nhân", "Sang", "Tùng", "Đạt", "Kiên", "Lực"]
    for i, (given, other) in enumerate(zip(givens, others, strict=True)):
        name = f"Tạ Quang {given}"
        phone = f"+8491234{i:04d}"
        home = {**HOME, "street": f"Số {40 + i}, đường Trần Phú"}
        parent = {
            "full_name": name,
            "date_of_birth": f"{1958 + i}-03-0{1 + i % 9}",
            "old_id_number": f"0123{i:05d}",
            "sex": "male",
            "phone": phone,
            "permanent_address": home,
        }
        child = {
            "full_name": name,
            "personal_id": f"0010{88 + i % 10}{700000 + i:06d}",
            "sex": "male",
            "phone": phone,
            "permanent_address": home,
        }
        bridge = {"full_name": name, "sex": "male", "phone": phone, "permanent_address": home}
        twin_a = {
            "full_name": f"Tạ Quang {given}",
            "date_of_birth": f"2001-0{1 + i % 9}-1{i % 9}",
            "personal_id": f"0012{'01'}{800000 + i:06d}",
            "sex": "male",
            "phone": phone,
            "permanent_address": {**home, "street": f"Số {60 + i} Lê Duẩn"},
        }
        twin_b = {**twin_a, "full_name": f"Tạ Quang {other}"}
        del twin_b["personal_id"]
        # sisters Hoa and Hòa: one name once folded, told apart only by the tone mark
        sister_a = {
            "full_name": "Tạ Thị Hoa",
            "date_of_birth": f"1999-0{1 + i % 9}-2{i % 9}",
            "old_id_number": f"0124{i:05d}",
            "sex": "female",
            "phone": phone,
            "permanent_address": {**home, "street": f"Số {80 + i} Lê Duẩn"},
        }
        sister_b = {**sister_a, "full_name": "Tạ Thị Hòa", "date_of_birth": "1999"}
        del sister_b["old_id_number"]
        people = {
            "parent": parent,
            "child": child,
            "bridge": bridge,
            "twin_a": twin_a,
            "twin_b": twin_b,
            "sister_a": sister_a,
            "sister_b": sister_b,
        }
        ids = {k: f"hn{i}-{k}" for k in people}
        records.extend((ids[key], "hn-src", std) for key, std in people.items())
        hard.append(("parent_child", ids["parent"], ids["child"]))
        hard.append(("twins", ids["twin_a"], ids["twin_b"]))
        hard.append(("twins", ids["sister_a"], ids["sister_b"]))
    return records, hard


@pytest.fixture(scope="module")
def with_look_alikes(
    trained: TrainedModel, citizen_data: Generated
) -> tuple[BatchResult, list[tuple[str, str, str]], list[tuple[str, str, dict[str, Any]]]]:
    extra, hard = _look_alikes()
    hard += [("twins", a, b) for a, b in citizen_data.twins]
    hard += [("parent_child", a, b) for a, b in citizen_data.parent_child]
    con = duckdb.connect()
    con.execute("SET threads = 2")
    records = [*citizen_data.records, *extra]
    result = predict_and_cluster(trained.rules, trained.settings, records, con=con)
    return result, hard, records


def test_pipeline_never_auto_links_twins_or_parent_and_child(
    with_look_alikes: tuple[BatchResult, list[tuple[str, str, str]], Any],
) -> None:
    result, hard, _ = with_look_alikes
    kinds = {kind for kind, _, _ in hard}
    assert kinds == {"twins", "parent_child"}
    where = {m: i for i, c in enumerate(result.clusters) for m in c}
    linked = [(k, a, b) for k, a, b in hard if a in where and where.get(a) == where.get(b)]
    assert linked == []
    # the look-alikes are strong pairs: they must reach the stewards, not vanish
    flagged = {(c.left, c.right) for c in result.candidates}
    parent_child = [(a, b) for k, a, b in hard if k == "parent_child" and a.startswith("hn")]
    assert all((min(a, b), max(a, b)) in flagged or a not in where for a, b in parent_child), (
        "a refused parent/child link should be queued for review"
    )


def test_incremental_path_refuses_the_same_pairs(
    with_look_alikes: tuple[BatchResult, list[tuple[str, str, str]], Any],
    trained: TrainedModel,
) -> None:
    result, hard, records = with_look_alikes
    model = MatchModel.from_settings(trained.settings, trained.rules)
    features = {uid: build_features("citizen", uid, src, std) for uid, src, std in records}
    index = InMemoryCandidateIndex(trained.rules)
    index.add_many(features.values())
    matcher = IncrementalMatcher(model, tf_lookup_from_arrow(result.tf_table), index)
    for _kind, a, b in hard:
        decided = matcher.decide(features[a], features[b])
        assert decided.decision != "auto_link", (a, b, decided)
