"""Fuzzing the value standardizers and canonical IDs (issue 11).

tests/standardize/test_properties.py already proves for the scalar standardizers
that they never raise and are idempotent, and test_addresses.py the same for
addresses. Added here: every output satisfies its data standard's pattern (the
published JSON Schema's), ``standardize_name`` and ``repair_mojibake``, whole
records validating against the standard models, and canonical IDs (parse never
raises anything but ``MalformedId``; what it accepts it normalizes idempotently).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mdm.domain.canonical_id import (
    ALPHABET,
    TYPE_PREFIX,
    is_valid_canonical_id,
    new_canonical_id,
    parse_canonical_id,
)
from mdm.domain.standards import DATE_PATTERN, DATETIME_PATTERN, STANDARDS
from mdm.exceptions import MalformedId
from mdm.standardize import (
    repair_mojibake,
    standardize_date,
    standardize_datetime,
    standardize_email,
    standardize_ethnicity,
    standardize_name,
    standardize_nationality,
    standardize_old_id,
    standardize_personal_id,
    standardize_phone,
    standardize_record,
    standardize_sex,
    standardize_tax_code,
)

TODAY = date(2025, 9, 1)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VN = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
hostile = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=VN + VN.upper() + " '-.,", max_size=40),
    st.text(alphabet="0123456789 +-/.()_:TZ", max_size=30),
    st.text(alphabet="".join(chr(c) for c in range(0x00, 0x100)), max_size=40),
    st.text(alphabet="\u200b\u200d\u202e\ufeff\u0301\u0000\r\n\t 0123456789@.aZ", max_size=30),
    st.sampled_from(
        ["' OR 1=1 --", "<script>", "%", "_", "\\", "１２３４５６７８９０１２", "+84 912 345 678"]
    ),
)
# raw values from JSON/Parquet are not always text
any_value = st.one_of(
    hostile,
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)

_ENUM = {"sex": {"male", "female", "other"}}


def _pattern(entity: str, field: str) -> re.Pattern[str]:
    schema = STANDARDS[entity].model_json_schema()["properties"][field]
    for option in [schema, *schema.get("anyOf", [])]:
        if "pattern" in option:
            return re.compile(option["pattern"])
    raise AssertionError(f"{entity}.{field} has no pattern")


def _pid(v: Any) -> tuple[Any, list[Any]]:
    pid, _moved, issues = standardize_personal_id(v)
    return pid, issues


# standardizer, pattern every non-None output must match
PATTERNED: dict[str, tuple[Callable[[Any], tuple[Any, list[Any]]], re.Pattern[str]]] = {
    "personal_id": (_pid, _pattern("citizen", "personal_id")),
    "old_id": (standardize_old_id, _pattern("citizen", "old_id_number")),
    "tax_code": (standardize_tax_code, _pattern("organization", "tax_code")),
    "phone": (standardize_phone, _pattern("citizen", "phone")),
    "email": (standardize_email, _pattern("citizen", "email")),
    "nationality": (standardize_nationality, _pattern("citizen", "nationality")),
    "date": (lambda v: standardize_date(v, "d", today=TODAY), re.compile(DATE_PATTERN)),
    "birth": (
        lambda v: standardize_date(v, "d", birth=True, today=TODAY),
        re.compile(DATE_PATTERN),
    ),
    "datetime": (lambda v: standardize_datetime(v, "d", today=TODAY), re.compile(DATETIME_PATTERN)),
}


@FAST
@given(kind=st.sampled_from(sorted(PATTERNED)), value=any_value)
def test_outputs_satisfy_the_standard_patterns(kind: str, value: Any) -> None:
    fn, pattern = PATTERNED[kind]
    out, issues = fn(value)
    assert isinstance(issues, list)
    if out is not None:
        partial = kind == "datetime" and _PARTIAL.fullmatch(out)  # known, see below
        assert isinstance(out, str) and (pattern.fullmatch(out) or partial), (kind, value, out)
        again, _ = fn(out)
        assert again == out, (kind, value, out, again)


@FAST
@given(any_value)
def test_sex_and_ethnicity_are_closed_vocabularies(value: Any) -> None:
    sex, _ = standardize_sex(value)
    assert sex is None or sex in _ENUM["sex"]
    ethnicity, _ = standardize_ethnicity(value)
    if ethnicity is not None:
        assert standardize_ethnicity(ethnicity)[0] == ethnicity


@FAST
@given(any_value)
def test_standardize_name_never_raises_and_is_idempotent(value: Any) -> None:
    name, issues = standardize_name(value)
    assert isinstance(issues, list)
    if name is not None:
        assert name == name.strip() and "\x00" not in name
        assert standardize_name(name)[0] == name


@FAST
@given(hostile)
def test_repair_mojibake_never_raises_and_settles(value: str) -> None:
    fixed, how = repair_mojibake(value)
    assert isinstance(fixed, str) and (how is None or isinstance(how, str))
    assert repair_mojibake(fixed)[0] == fixed


# standardize_datetime answers a bare year or year-month ("2020", "2020-05") without
# an issue, which the published datetime pattern does not allow: reported, see
# test_partial_datetimes_match_the_published_standard.
_PARTIAL = re.compile(r"\d{4}(-(0[1-9]|1[0-2]))?")
# records.py keeps an applicant_id that is not a national identifier verbatim (the
# source's own key for the applicant), which the published pattern does not allow:
# reported, see test_applicant_key_matches_the_published_standard.
KNOWN_MISMATCHES: dict[str, set[tuple[str | int, ...]]] = {
    "dossier": {("applicant_id",), ("submitted_at",), ("decided_at",)}
}

_FIELDS = {
    entity: sorted(STANDARDS[entity].model_json_schema()["properties"])
    for entity in ("citizen", "organization", "dossier")
}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), entity=st.sampled_from(sorted(_FIELDS)))
def test_accepted_records_validate_against_their_standard(data: st.DataObject, entity: str) -> None:
    raw = data.draw(
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELDS[entity]), st.text(max_size=8)), any_value, max_size=10
        )
    )
    result = standardize_record(entity, raw, today=TODAY)
    if not result.rejected:
        try:
            STANDARDS[entity].model_validate(result.standardized)
        except ValidationError as exc:
            locs = {e["loc"] for e in exc.errors()}
            assert locs <= KNOWN_MISMATCHES.get(entity, set()), exc
        again = standardize_record(entity, result.standardized, today=TODAY)
        assert again.standardized == result.standardized


@pytest.mark.xfail(
    strict=True,
    reason="dossier.applicant_id: the standardizer keeps a source's own applicant key "
    "verbatim (records.py) but the published standard only allows national IDs",
)
def test_applicant_key_matches_the_published_standard() -> None:
    result = standardize_record("dossier", {"dossier_code": "HS-1", "applicant_id": "HN-00017"})
    assert not result.rejected
    STANDARDS["dossier"].model_validate(result.standardized)


@pytest.mark.xfail(
    strict=True,
    reason="dossier.submitted_at/decided_at: a bare year or year-month is accepted "
    "without an issue, but the published datetime pattern needs a full date",
)
def test_partial_datetimes_match_the_published_standard() -> None:
    result = standardize_record("dossier", {"dossier_code": "HS-1", "submitted_at": "2020-05"})
    assert not result.rejected
    STANDARDS["dossier"].model_validate(result.standardized)


# ---------------------------------------------------------------- canonical IDs

id_like = st.one_of(
    st.text(max_size=30),
    st.from_regex(rf"\A[PODX]-[{ALPHABET}{ALPHABET.lower()}ILOU]{{10,14}}\Z"),
    st.builds(
        lambda t, s: s(new_canonical_id(t)),
        st.sampled_from(sorted(TYPE_PREFIX)),
        st.sampled_from([str, str.lower, lambda x: f"  {x}\n", lambda x: x[:-1] + "0"]),
    ),
)


@FAST
@given(id_like)
def test_parse_canonical_id_raises_only_malformed_id(text: str) -> None:
    try:
        entity_type, normalized = parse_canonical_id(text)
    except MalformedId as exc:
        assert exc.status_code == 400
        assert not is_valid_canonical_id(text)
        return
    assert entity_type in TYPE_PREFIX and is_valid_canonical_id(text)
    assert normalized.isascii() and normalized == normalized.upper()
    assert parse_canonical_id(normalized) == (entity_type, normalized)


@FAST
@given(st.sampled_from(sorted(TYPE_PREFIX)), st.binary(max_size=40))
def test_seeded_ids_are_valid_and_deterministic(entity_type: str, seed: bytes) -> None:
    cid = new_canonical_id(entity_type, seed)
    assert parse_canonical_id(cid) == (entity_type, cid)
    assert new_canonical_id(entity_type, seed) == cid
