"""Properties: no standardizer raises on any input; standardizing is idempotent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.standardize import (
    canonical_text,
    fold,
    parse_name,
    standardize_date,
    standardize_datetime,
    standardize_email,
    standardize_ethnicity,
    standardize_nationality,
    standardize_old_id,
    standardize_personal_id,
    standardize_phone,
    standardize_record,
    standardize_sex,
    standardize_tax_code,
    standardize_text,
)

TODAY = date(2025, 9, 1)

VN_LETTERS = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
)
vn_text = st.text(alphabet=VN_LETTERS + VN_LETTERS.upper() + " '-", max_size=40)
# Mixed: arbitrary unicode, Vietnamese, digits and separators, legacy-looking bytes.
any_text = st.one_of(
    st.text(max_size=60),
    vn_text,
    st.text(alphabet="0123456789 +-/.()", max_size=20),
    st.text(alphabet="".join(chr(c) for c in range(0x20, 0x100)), max_size=40),
)


def _name(v: str) -> tuple[Any, list[Any]]:
    parts, issues = parse_name(v)
    return (parts.full if parts else None), issues


def _pid(v: str) -> tuple[Any, list[Any]]:
    pid, _moved, issues = standardize_personal_id(v)
    return pid, issues


STANDARDIZERS: dict[str, Callable[[str], tuple[Any, list[Any]]]] = {
    "name": _name,
    "text": lambda v: standardize_text(v, "f"),
    "personal_id": _pid,
    "old_id": standardize_old_id,
    "tax_code": standardize_tax_code,
    "date": lambda v: standardize_date(v, "d", today=TODAY),
    "birth": lambda v: standardize_date(v, "d", birth=True, today=TODAY),
    "datetime": lambda v: standardize_datetime(v, "d", today=TODAY),
    "phone": standardize_phone,
    "email": standardize_email,
    "sex": standardize_sex,
    "ethnicity": standardize_ethnicity,
    "nationality": standardize_nationality,
}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(STANDARDIZERS)), value=any_text)
def test_never_raises_and_idempotent(kind: str, value: str) -> None:
    fn = STANDARDIZERS[kind]
    first, _ = fn(value)
    if first is not None:
        again, issues = fn(first)
        assert again == first, (kind, value, first, again)
        assert all(i.severity == "warning" for i in issues)


@settings(max_examples=100, deadline=None)
@given(vn_text)
def test_text_helpers_idempotent(value: str) -> None:
    once = canonical_text(value)
    assert canonical_text(once) == once
    assert fold(once) == fold(value)
    assert fold(fold(value)) == fold(value)


values = st.one_of(st.none(), any_text, st.integers(), st.floats(), st.booleans())
records = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "full_name",
                "personal_id",
                "date_of_birth",
                "sex",
                "phone",
                "tax_code",
                "name",
                "dossier_code",
                "submitted_at",
                "decided_at",
                "date_of_death",
                "email",
                "permanent_address",
                "place_of_birth",
                "status",
                "legal_form",
                "applicant_id",
            ]
        ),
        st.text(max_size=10),
    ),
    values,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(entity=st.sampled_from(["citizen", "organization", "dossier", "nope"]), raw=records)
def test_records_never_raise(entity: str, raw: dict[str, Any]) -> None:
    result = standardize_record(entity, raw, today=TODAY)
    assert isinstance(result.standardized, dict)
    assert None not in result.standardized.values()
