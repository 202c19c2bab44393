"""Whole records: raw field strings in, the standard form and its issues out.

``standardize_record(entity_type, raw)`` dispatches to one function per entity type.
Keys of ``raw`` are the standard field names (``mdm.domain.standards``); values are
raw strings. The output holds only the fields that survived, under the same names.

Error-vs-warning policy (an error rejects the record, a warning keeps and flags it).
The registry rejects only what makes a record **unusable** or **certainly corrupt**;
every other problem is a warning, and the offending value is dropped from the
standardized form (the raw payload is kept in the source record, so nothing is lost):

* citizen: error when ``full_name`` is missing or has no usable name (empty, no
  letters, digits); when ``date_of_birth`` is present but unreadable, impossible
  (31/02), out of range or in the future. Warnings for everything else: malformed
  IDs, phones, e-mails, unknown sex / ethnicity / nationality, addresses that do not
  resolve, ``personal_id`` contradicting date of birth or sex
  (``personal_id_inconsistent``: which of the two is wrong is unknown), a date of
  death before the birth or in the future (the death date is dropped).
* organization: error when there is no usable ``name`` (every registered
  organization has one), and when a ``tax_code`` is present but invalid
  (wrong check digit or shape): the code is the organization's legal identity, so
  the record is certainly corrupt.
* dossier: error when ``dossier_code`` is missing (it is the dossier's key) or
  ``submitted_at`` is impossible or in the future. A bad ``decided_at``, or one
  before ``submitted_at``, is a warning. ``applicant_id`` that is not a national
  identifier is kept verbatim as the source's own key for the applicant.
* any entity: unknown keys give an ``unknown_field`` warning and are ignored; an
  unknown entity type is an error.

Never raises: any mapping of any values yields a result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from mdm.standardize import dates, ids, names, phones, text
from mdm.standardize.emails import standardize_email
from mdm.standardize.ethnicity import standardize_ethnicity
from mdm.standardize.issues import Issue, error, has_errors, warning
from mdm.standardize.nationality import standardize_nationality
from mdm.standardize.sex import standardize_sex

__all__ = ["ENTITY_FIELDS", "StandardizeResult", "standardize_record"]

ENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "citizen": (
        "personal_id", "old_id_number", "full_name", "date_of_birth", "sex",
        "place_of_birth", "hometown", "permanent_address", "current_address", "phone",
        "email", "ethnicity", "nationality", "date_of_death",
    ),
    "organization": (
        "tax_code", "name", "name_en", "short_name", "legal_form", "address",
        "legal_representative_id", "founding_date", "status",
    ),
    "dossier": (
        "dossier_code", "procedure_code", "applicant_id", "applicant_type",
        "receiving_agency", "submitted_at", "decided_at", "status", "result_number",
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StandardizeResult:
    standardized: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return has_errors(self.issues)


# --- helpers ----------------------------------------------------------------------


def _raw(value: object) -> str | None:
    """A raw value as text; ``None`` for missing or blank. Never raises."""
    if value is None:
        return None
    if type(value) is str:
        return value.strip() or None
    try:
        s = str(value)
    except Exception:
        return None
    return s.strip() or None


def _values(raw: Mapping[Any, Any]) -> dict[str, str | None]:
    """All string-keyed values as stripped text (``None`` for blank), in one pass."""
    return {
        k: (v.strip() or None) if type(v) is str else _raw(v)
        for k, v in raw.items()
        if type(k) is str
    }


# date.today() costs a few microseconds (a localtime call): ask once per day.
_today_until = 0.0
_today_value = date.min


def _today() -> date:
    global _today_until, _today_value
    now = time.time()
    if now >= _today_until:
        _today_value = date.today()
        midnight = datetime.combine(_today_value + timedelta(days=1), datetime.min.time())
        _today_until = min(midnight.timestamp(), now + 60.0)  # also follows a clock change
    return _today_value


_address_fn: Callable[..., tuple[dict[str, Any] | None, list[Issue]]] | None = None
_address_text_fn: Callable[[str, str], tuple[dict[str, Any] | None, list[Issue]]] | None = None
_address_missing = False


_PLACE_FIELDS = frozenset({"place_of_birth", "hometown"})


def _compact(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drop ``None`` members of an address dict; ``None`` if nothing is left."""
    if not address:
        return None
    out = {k: v for k, v in address.items() if v is not None}
    return out if any(k not in ("ambiguous", "candidates") for k in out) else None


def _address_value(
    raw: Mapping[Any, Any], key: str, get: Callable[[str], str | None]
) -> str | Mapping[str, Any] | None:
    """Addresses may come as text or, when re-standardizing, as the standard's dict."""
    value = raw.get(key)
    if value is None or type(value) is str:  # skip the slow ABC check on the usual case
        return get(key)
    return value if isinstance(value, Mapping) else get(key)


def _standardize_address(
    value: str | Mapping[str, Any], field_name: str
) -> tuple[Any, list[Issue]]:
    """Delegate to ``addresses.standardize_address``; degrade to clean text if absent.

    Any failure of the address engine is reported as a warning, never raised: an
    address problem must not reject a citizen.
    """
    global _address_fn, _address_text_fn, _address_missing
    if _address_fn is None and not _address_missing:
        try:
            from mdm.standardize.addresses import (
                standardize_address,
                standardize_address_compact,
            )

            _address_fn = standardize_address
            _address_text_fn = standardize_address_compact
        except ImportError:
            _address_missing = True
    if _address_fn is None:
        if type(value) is not str and isinstance(value, Mapping):
            return dict(value), []
        cleaned, found = text.standardize_text(value, field_name)
        return ({"street": cleaned} if cleaned else None), found
    if type(value) is not str and isinstance(value, Mapping):  # not hashable: no cache
        try:
            result, found = _address_fn(value, field=field_name)
            return _compact(result), list(found)
        except Exception as exc:
            return None, [warning(field_name, "address_failed", f"address engine failed: {exc!r}")]
    assert _address_text_fn is not None
    try:
        # Cached inside by the administrative tail; a fresh dict per call.
        return _address_text_fn(value, field_name)
    except Exception as exc:  # the engine is another module; contain its failures
        return None, [warning(field_name, "address_failed", f"address engine failed: {exc!r}")]


def _simple(
    out: dict[str, Any],
    issues: list[Issue],
    field_name: str,
    value: str | None,
    fn: Callable[..., tuple[Any, list[Issue]]],
) -> None:
    if value is None:
        return
    result, found = fn(value, field_name)
    issues.extend(found)
    if result is not None:
        out[field_name] = result


_CODE_RE = re.compile(r"\s+")


def _code(value: str | None) -> str | None:
    """Identifiers that are opaque strings: trimmed, internal spaces removed, upper case."""
    if value is None:
        return None
    cleaned = _CODE_RE.sub("", text.clean_whitespace(value)).upper()
    return cleaned or None


def _enum(
    out: dict[str, Any],
    issues: list[Issue],
    field_name: str,
    value: str | None,
    table: Mapping[str, str],
) -> None:
    if value is None:
        return
    key = text.fold(value).replace("-", " ").replace("_", " ")
    hit = table.get(key)
    if hit is None:
        issues.append(warning(field_name, f"{field_name}_unknown", f"unknown value {value[:40]!r}"))
    else:
        out[field_name] = hit


_KNOWN_FIELDS = {entity: frozenset(fields) for entity, fields in ENTITY_FIELDS.items()}


def _unknown_keys(entity: str, raw: Mapping[Any, Any], issues: list[Issue]) -> None:
    known = _KNOWN_FIELDS[entity]
    if known.issuperset(raw):
        return
    for key in raw:
        if key not in known:
            issues.append(warning(str(key)[:80], "unknown_field", "not a standard field; ignored"))


def _before(a: str, b: str) -> bool:
    """``a`` strictly before ``b`` at their common precision (ISO strings, maybe partial)."""
    n = min(len(a), len(b))
    return a[:n] < b[:n]


# --- citizen ----------------------------------------------------------------------


def _citizen(raw: Mapping[Any, Any], today: date) -> StandardizeResult:
    # The hot path of every ingest: one pass, the per-field helpers inlined, absent fields
    # skipped before any call. Keys and issues come out in the documented field order.
    out: dict[str, Any] = {}
    issues: list[Issue] = []
    get = _values(raw).get

    parts, found = names.parse_name(get("full_name"))
    if found:
        issues += found
    if parts is not None:
        out["full_name"] = parts.full

    pid, moved, found = ids.standardize_personal_id(get("personal_id"))
    if found:
        issues += found
    if pid:
        out["personal_id"] = pid
    old_raw = get("old_id_number")
    if old_raw is not None:
        old, found = ids.standardize_old_id(old_raw)
        if found:
            issues += found
        if old:
            out["old_id_number"] = old
        elif moved:
            out["old_id_number"] = moved
    elif moved:
        out["old_id_number"] = moved

    dob_raw = get("date_of_birth")
    if dob_raw is not None:
        dob, found = dates.standardize_date(dob_raw, "date_of_birth", birth=True, today=today)
        if found:
            issues += found
        if dob:
            out["date_of_birth"] = dob
    else:
        dob = None
    value = get("sex")
    if value is not None:
        sex, found = standardize_sex(value, "sex")
        if found:
            issues += found
        if sex is not None:
            out["sex"] = sex

    dod_raw = get("date_of_death")
    if dod_raw is not None:
        dod, found = dates.standardize_date(dod_raw, "date_of_death", today=today)
        # An unusable death date never rejects the person: downgrade to warnings.
        found = [Issue(i.field, i.code, "warning", i.message) for i in found]
        if dod and _before(today.isoformat(), dod):
            dod = None  # already flagged date_in_future by the date standardizer
        if dod and dob and _before(dod, dob):
            found.append(warning("date_of_death", "date_of_death_before_birth", "dropped"))
            dod = None
        issues.extend(found)
        if dod:
            out["date_of_death"] = dod

    if pid and not ids.personal_id_consistent(pid, out.get("date_of_birth"), out.get("sex")):
        issues.append(
            warning(
                "personal_id",
                "personal_id_inconsistent",
                "personal ID's sex/birth-year digits disagree with sex or date of birth",
            )
        )

    for key in ("place_of_birth", "hometown", "permanent_address", "current_address"):
        if raw.get(key) is None:  # absent or null: nothing to read (the usual case)
            continue
        address = _address_value(raw, key, get)
        if address is not None:
            addr, found = _standardize_address(address, key)
            if addr and key in _PLACE_FIELDS and addr.get("province_code"):
                # Places of birth and hometowns are usually written at province level.
                found = [i for i in found if i.code != "address_unresolved"]
            if found:
                issues += found
            if addr:
                out[key] = addr
    for key, fn in _CITIZEN_SIMPLE:
        value = get(key)
        if value is not None:
            result, found = fn(value, key)
            if found:
                issues += found
            if result is not None:
                out[key] = result
    _unknown_keys("citizen", raw, issues)
    return StandardizeResult(out, issues)


_CITIZEN_SIMPLE: tuple[tuple[str, Callable[[Any, str], tuple[Any, list[Issue]]]], ...] = (
    ("phone", phones.standardize_phone),
    ("email", standardize_email),
    ("ethnicity", standardize_ethnicity),
    ("nationality", standardize_nationality),
)


# --- organization -----------------------------------------------------------------

LEGAL_FORMS: dict[str, str] = {
    "cong ty tnhh mot thanh vien": "llc_single_member",
    "cong ty tnhh 1 thanh vien": "llc_single_member",
    "tnhh mtv": "llc_single_member",
    "cong ty tnhh hai thanh vien tro len": "llc_multi_member",
    "cong ty tnhh 2 thanh vien tro len": "llc_multi_member",
    "cong ty tnhh": "llc_multi_member",
    "tnhh": "llc_multi_member",
    "cong ty co phan": "joint_stock",
    "co phan": "joint_stock",
    "ctcp": "joint_stock",
    "cong ty hop danh": "partnership",
    "doanh nghiep tu nhan": "private_enterprise",
    "dntn": "private_enterprise",
    "hop tac xa": "cooperative",
    "htx": "cooperative",
    "ho kinh doanh": "household_business",
    "doanh nghiep nha nuoc": "state_owned",
    "chi nhanh": "branch",
    "van phong dai dien": "representative_office",
    "dia diem kinh doanh": "business_location",
    "don vi su nghiep cong lap": "public_service_unit",
    "co quan nha nuoc": "state_agency",
    "to chuc khac": "other",
}
ORG_STATUSES: dict[str, str] = {
    "dang hoat dong": "active",
    "hoat dong": "active",
    "active": "active",
    "tam ngung kinh doanh": "suspended",
    "tam ngung hoat dong": "suspended",
    "tam ngung": "suspended",
    "suspended": "suspended",
    "dang lam thu tuc giai the": "dissolving",
    "dang giai the": "dissolving",
    "da giai the": "dissolved",
    "giai the": "dissolved",
    "dissolved": "dissolved",
    "pha san": "bankrupt",
    "bankrupt": "bankrupt",
    "ngung hoat dong nhung chua hoan thanh thu tuc dong mst": "closing",
    "ngung hoat dong va da dong mst": "closed",
    "da dong mst": "closed",
    "closed": "closed",
    "bi thu hoi giay chung nhan": "revoked",
    "revoked": "revoked",
}
for _v in set(LEGAL_FORMS.values()):
    LEGAL_FORMS.setdefault(_v.replace("_", " "), _v)


def _organization(raw: Mapping[Any, Any], today: date) -> StandardizeResult:
    out: dict[str, Any] = {}
    issues: list[Issue] = []
    get = _values(raw).get

    tax_raw = get("tax_code")
    tax, found = ids.standardize_tax_code(tax_raw)
    # The enterprise code is the organization's legal identity: one that is present
    # but invalid (wrong check digit or shape) is certainly corrupt, and keeping the
    # record would create a phantom organization. Reject it.
    issues.extend(
        Issue(i.field, i.code, "error", i.message) if tax_raw and not tax else i for i in found
    )
    if tax:
        out["tax_code"] = tax
    for key in ("name", "name_en", "short_name"):
        value, found = text.standardize_text(get(key), key)
        issues.extend(found)
        if value:
            out[key] = value
    _enum(out, issues, "legal_form", get("legal_form"), LEGAL_FORMS)
    _enum(out, issues, "status", get("status"), ORG_STATUSES)
    addr_raw = _address_value(raw, "address", get)
    if addr_raw is not None:
        addr, found = _standardize_address(addr_raw, "address")
        issues.extend(found)
        if addr:
            out["address"] = addr
    rep_raw = get("legal_representative_id")
    if rep_raw is not None:
        rep, moved, found = ids.standardize_personal_id(rep_raw)
        issues.extend(
            Issue("legal_representative_id", i.code, i.severity, i.message) for i in found
        )
        if rep or moved:
            out["legal_representative_id"] = rep or moved
    founded, found = dates.standardize_date(get("founding_date"), "founding_date", today=today)
    issues.extend(Issue(i.field, i.code, "warning", i.message) for i in found)
    if founded:
        out["founding_date"] = founded
    if "name" not in out:
        # Every registered organization has a name; a row without one is corrupt even
        # when its tax code is valid.
        issues.append(error("name", "name_missing", "the organization has no usable name"))
    _unknown_keys("organization", raw, issues)
    return StandardizeResult(out, issues)


# --- dossier ----------------------------------------------------------------------

DOSSIER_STATUSES: dict[str, str] = {
    "moi tiep nhan": "received", "tiep nhan": "received", "da tiep nhan": "received",
    "received": "received", "cho tiep nhan": "submitted", "submitted": "submitted",
    "da nop": "submitted", "dang xu ly": "processing", "processing": "processing",
    "cho bo sung": "supplement_requested", "yeu cau bo sung": "supplement_requested",
    "supplement requested": "supplement_requested",
    "da giai quyet": "resolved", "hoan thanh": "resolved", "resolved": "resolved",
    "da tra ket qua": "returned", "returned": "returned", "done": "returned",
    "tu choi": "rejected", "khong giai quyet": "rejected", "rejected": "rejected",
    "da huy": "cancelled", "huy": "cancelled", "rut ho so": "cancelled",
    "cancelled": "cancelled", "qua han": "overdue", "overdue": "overdue",
}  # fmt: skip
APPLICANT_TYPES: dict[str, str] = {
    "citizen": "citizen", "cong dan": "citizen", "ca nhan": "citizen", "individual": "citizen",
    "organization": "organization", "to chuc": "organization", "doanh nghiep": "organization",
    "enterprise": "organization",
}  # fmt: skip


def _dossier(raw: Mapping[Any, Any], today: date) -> StandardizeResult:
    out: dict[str, Any] = {}
    issues: list[Issue] = []
    get = _values(raw).get

    code = _code(get("dossier_code"))
    if code is None:
        issues.append(error("dossier_code", "dossier_code_missing", "dossier code is required"))
    else:
        out["dossier_code"] = code
    for key in ("procedure_code", "result_number"):
        value = _code(get(key)) if key == "procedure_code" else get(key)
        if value:
            out[key] = text.clean_whitespace(value)
    agency, found = text.standardize_text(get("receiving_agency"), "receiving_agency")
    issues.extend(found)
    if agency:
        out["receiving_agency"] = agency
    _enum(out, issues, "applicant_type", get("applicant_type"), APPLICANT_TYPES)
    _enum(out, issues, "status", get("status"), DOSSIER_STATUSES)

    applicant = get("applicant_id")
    if applicant is not None:
        # A national identifier (12- or 9-digit personal ID, tax code) is standardized
        # as such; anything else is the source system's own key for the applicant
        # (legacy one-stop systems refer to their own citizen/organization records),
        # kept verbatim so the reference is not lost.
        digits = re.sub(r"[\s.\-]", "", applicant)
        kind = out.get("applicant_type")
        if digits.isdigit() and (kind == "organization" or len(digits) in (10, 13)):
            value, found = ids.standardize_tax_code(applicant)
        elif digits.isdigit() and len(digits) in (9, 12):
            value, moved, found = ids.standardize_personal_id(applicant)
            value = value or moved
        else:
            value, found = text.clean_whitespace(applicant) or None, []
        issues.extend(Issue("applicant_id", i.code, i.severity, i.message) for i in found)
        if value:
            out["applicant_id"] = value

    for key in ("submitted_at", "decided_at"):
        value, found = dates.standardize_datetime(get(key), key, today=today)
        # The submission date is part of what a dossier is; an impossible or future
        # one means a corrupt row. A bad decision date only loses that date.
        if key == "submitted_at":
            issues.extend(found)
        else:
            issues.extend(Issue(i.field, i.code, "warning", i.message) for i in found)
        if value:
            out[key] = value
    sub, dec = out.get("submitted_at"), out.get("decided_at")
    if sub and dec and dec[:10] < sub[:10]:
        issues.append(
            warning("decided_at", "decided_before_submitted", "decision precedes submission")
        )
    _unknown_keys("dossier", raw, issues)
    return StandardizeResult(out, issues)


_DISPATCH: dict[str, Callable[[Mapping[Any, Any], date], StandardizeResult]] = {
    "citizen": _citizen,
    "organization": _organization,
    "dossier": _dossier,
}


def standardize_record(
    entity_type: str, raw: Mapping[str, str | None], *, today: date | None = None
) -> StandardizeResult:
    """Standardize one record of ``entity_type`` (``citizen``/``organization``/``dossier``).

    ``today`` (default: the current date) only decides which dates are "in the future".
    """
    fn = _DISPATCH.get(entity_type)
    if fn is None:
        return StandardizeResult({}, [error("entity_type", "unknown_entity", repr(entity_type))])
    if type(raw) is not dict and not isinstance(raw, Mapping):  # (the ABC check is slow)
        return StandardizeResult({}, [error("record", "not_a_mapping", "record is not an object")])
    return fn(raw, today or _today())
