"""The registry's data standards: the standardized form of each entity type.

These models describe what ``mdm.standardize.standardize_record`` produces, not what
sources send. They are the single source of the published JSON Schemas in
``schemas/`` (``mdm schemas export``; a test fails when the files drift). Field
names are a contract other tools depend on: renaming one is a breaking change.

Conventions:
* Dates are strings ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``: a partially known date
  stays partial, never completed to 1 January.
* Datetimes are ISO 8601 with the ``+07:00`` offset, or a bare date when no time
  was given.
* Identifiers are digit strings with patterns (leading zeros matter).
* Phones are E.164; e-mails lower-case; nationality ISO 3166-1 alpha-2.
* Addresses are resolved to the 2025 units (2-digit province, 5-digit commune
  codes) and keep the pre-2025 units they were written with; a code is meaningless
  without its scheme, hence the separate ``legacy_*`` fields.
* Text is NFC with the new-style tone placement (``Hoà``, ``Thuỷ``).

Enumerations (documented choices):
* ``LegalForm`` follows the forms of the Law on Enterprises 2020 plus the other
  registrable units met in tax data (branch, representative office, business
  location, cooperative, household business, public bodies).
* ``OrganizationStatus`` follows the tax authority's status list (active,
  suspended, dissolving / dissolved, bankrupt, closing / closed, revoked).
* ``DossierStatus`` follows the one-stop-shop lifecycle (submitted, received,
  processing, supplement requested, resolved, returned, rejected, cancelled,
  overdue).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ENTITY_TYPES",
    "STANDARDS",
    "Address",
    "AddressCandidate",
    "ApplicantType",
    "Citizen",
    "Dossier",
    "DossierStatus",
    "LegalForm",
    "Organization",
    "OrganizationStatus",
    "Sex",
    "json_schema",
    "render_schema",
    "schema_drift",
]

DATE_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$"
DATETIME_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\+07:00)?$"
)

PartialDate = Annotated[str, Field(pattern=DATE_PATTERN)]


class _Standard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


class Sex(StrEnum):
    male = "male"
    female = "female"


class LegalForm(StrEnum):
    llc_single_member = "llc_single_member"
    llc_multi_member = "llc_multi_member"
    joint_stock = "joint_stock"
    partnership = "partnership"
    private_enterprise = "private_enterprise"
    cooperative = "cooperative"
    household_business = "household_business"
    state_owned = "state_owned"
    branch = "branch"
    representative_office = "representative_office"
    business_location = "business_location"
    public_service_unit = "public_service_unit"
    state_agency = "state_agency"
    other = "other"


class OrganizationStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    dissolving = "dissolving"
    dissolved = "dissolved"
    bankrupt = "bankrupt"
    closing = "closing"
    closed = "closed"
    revoked = "revoked"


class ApplicantType(StrEnum):
    citizen = "citizen"
    organization = "organization"


class DossierStatus(StrEnum):
    submitted = "submitted"
    received = "received"
    processing = "processing"
    supplement_requested = "supplement_requested"
    resolved = "resolved"
    returned = "returned"
    rejected = "rejected"
    cancelled = "cancelled"
    overdue = "overdue"


class AddressCandidate(_Standard):
    """One possible 2025 commune of an address whose former commune was split."""

    commune_code: str = Field(
        pattern=r"^\d{5}$", description="Mã xã/phường 2025 / 2025 commune code (5 digits)"
    )
    commune_name: str | None = Field(
        default=None, description="Tên xã/phường 2025 / 2025 commune name"
    )


class Address(_Standard):
    """An address resolved to the 2025 units, with the pre-2025 units as written."""

    province_code: str | None = Field(
        default=None,
        pattern=r"^\d{2}$",
        description="Mã tỉnh/thành phố 2025 / 2025 province code (2 digits, Decision 19/2025)",
    )
    province_name: str | None = Field(
        default=None, description="Tên tỉnh/thành phố 2025 / 2025 province name"
    )
    commune_code: str | None = Field(
        default=None,
        pattern=r"^\d{5}$",
        description="Mã xã/phường/đặc khu 2025 / 2025 commune code (5 digits)",
    )
    commune_name: str | None = Field(
        default=None, description="Tên xã/phường/đặc khu 2025 / 2025 commune name"
    )
    street: str | None = Field(
        default=None,
        description="Số nhà, đường, thôn/ấp/tổ dân phố / House number, street, hamlet",
    )
    legacy_province_code: str | None = Field(
        default=None,
        pattern=r"^\d{2}$",
        description="Mã tỉnh trước 2025 / Pre-2025 province code (2 digits)",
    )
    legacy_province_name: str | None = Field(
        default=None, description="Tên tỉnh trước 2025 / Pre-2025 province name"
    )
    legacy_district_code: str | None = Field(
        default=None,
        pattern=r"^\d{3}$",
        description="Mã quận/huyện trước 2025 / Pre-2025 district code (3 digits)",
    )
    legacy_district_name: str | None = Field(
        default=None, description="Tên quận/huyện trước 2025 / Pre-2025 district name"
    )
    legacy_commune_code: str | None = Field(
        default=None,
        pattern=r"^\d{5}$",
        description="Mã xã/phường trước 2025 / Pre-2025 commune code (5 digits)",
    )
    legacy_commune_name: str | None = Field(
        default=None, description="Tên xã/phường trước 2025 / Pre-2025 commune name"
    )
    scheme_written: str | None = Field(
        default=None,
        pattern=r"^(pre2025|2025)$",
        description="Địa chỉ được ghi theo đơn vị hành chính nào / Scheme the source used",
    )
    ambiguous: bool = Field(
        default=False,
        description=(
            "Xã cũ bị chia, không xác định được xã mới / Former commune was split and the "
            "new commune cannot be decided"
        ),
    )
    candidates: list[AddressCandidate] = Field(
        default_factory=list,
        description="Các xã 2025 có thể / Possible 2025 communes when ambiguous",
    )


class Citizen(_Standard):
    """Công dân / A citizen (natural person)."""

    personal_id: str | None = Field(
        default=None,
        pattern=r"^\d{12}$",
        description="Số định danh cá nhân / Personal identification number (12 digits)",
    )
    old_id_number: str | None = Field(
        default=None,
        pattern=r"^(\d{9}|\d{12})$",
        description="Số CMND cũ / Old identity card number (9 or 12 digits)",
    )
    full_name: str = Field(
        min_length=1,
        description="Họ và tên / Full name (surname first; NFC, new-style tones, title case)",
    )
    date_of_birth: PartialDate | None = Field(
        default=None,
        description="Ngày sinh / Date of birth (YYYY, YYYY-MM or YYYY-MM-DD)",
    )
    sex: Sex | None = Field(default=None, description="Giới tính / Sex")
    place_of_birth: Address | None = Field(
        default=None, description="Nơi sinh / Place of birth (often province level)"
    )
    hometown: Address | None = Field(
        default=None, description="Quê quán / Hometown (place of family origin)"
    )
    permanent_address: Address | None = Field(
        default=None, description="Nơi thường trú / Permanent residence"
    )
    current_address: Address | None = Field(
        default=None, description="Nơi ở hiện tại / Current residence"
    )
    phone: str | None = Field(
        default=None,
        pattern=r"^\+[1-9]\d{6,14}$",
        description="Số điện thoại / Phone number (E.164, +84…)",
    )
    email: str | None = Field(
        default=None,
        pattern=r"^[^@\sA-Z]+@[^@\sA-Z]+\.[a-z]{2,63}$",
        description="Thư điện tử / E-mail address (lower case)",
    )
    ethnicity: str | None = Field(
        default=None,
        description="Dân tộc / Ethnic group (one of the 54 official groups, canonical name)",
    )
    nationality: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Quốc tịch / Nationality (ISO 3166-1 alpha-2, e.g. VN)",
    )
    date_of_death: PartialDate | None = Field(
        default=None, description="Ngày mất / Date of death (YYYY, YYYY-MM or YYYY-MM-DD)"
    )


class Organization(_Standard):
    """Tổ chức / An organization (enterprise, branch, cooperative, agency...)."""

    tax_code: str | None = Field(
        default=None,
        pattern=r"^(\d{10}(-\d{3})?|\d{12})$",
        description=(
            "Mã số thuế / mã số doanh nghiệp / Tax code = enterprise code (10 digits with check "
            "digit, -NNN for dependent units; 12 digits for individuals from 2025)"
        ),
    )
    name: str | None = Field(
        default=None, min_length=1, description="Tên tiếng Việt / Vietnamese name"
    )
    name_en: str | None = Field(
        default=None, description="Tên tiếng nước ngoài / Name in a foreign language"
    )
    short_name: str | None = Field(default=None, description="Tên viết tắt / Abbreviated name")
    legal_form: LegalForm | None = Field(default=None, description="Loại hình pháp lý / Legal form")
    address: Address | None = Field(default=None, description="Địa chỉ trụ sở / Head office")
    legal_representative_id: str | None = Field(
        default=None,
        pattern=r"^(\d{9}|\d{12})$",
        description=(
            "Số định danh của người đại diện theo pháp luật / Legal representative's "
            "personal ID (12 digits) or old ID card (9 digits)"
        ),
    )
    founding_date: PartialDate | None = Field(
        default=None, description="Ngày thành lập / Founding date (YYYY[-MM[-DD]])"
    )
    status: OrganizationStatus | None = Field(
        default=None, description="Tình trạng hoạt động / Operating status"
    )


class Dossier(_Standard):
    """Hồ sơ thủ tục hành chính / An administrative procedure dossier."""

    dossier_code: str = Field(
        min_length=1,
        pattern=r"^\S+$",
        description="Mã hồ sơ / Dossier code (upper case, no spaces)",
    )
    procedure_code: str | None = Field(
        default=None,
        description="Mã thủ tục hành chính (CSDL quốc gia) / National procedure catalogue code",
    )
    applicant_id: str | None = Field(
        default=None,
        pattern=r"^(\d{9}|\d{12}|\d{10}(-\d{3})?)$",
        description=(
            "Định danh người nộp / Applicant's identifier (personal ID, old ID card or tax code)"
        ),
    )
    applicant_type: ApplicantType | None = Field(
        default=None, description="Loại người nộp / Applicant type"
    )
    receiving_agency: str | None = Field(
        default=None, description="Cơ quan tiếp nhận / Receiving agency"
    )
    submitted_at: str | None = Field(
        default=None,
        pattern=DATETIME_PATTERN,
        description="Thời điểm nộp / Submitted at (ISO 8601, +07:00; or a date)",
    )
    decided_at: str | None = Field(
        default=None,
        pattern=DATETIME_PATTERN,
        description="Thời điểm có kết quả / Decided at (ISO 8601, +07:00; or a date)",
    )
    status: DossierStatus | None = Field(
        default=None, description="Trạng thái hồ sơ / Dossier status"
    )
    result_number: str | None = Field(
        default=None, description="Số văn bản kết quả / Result document number"
    )


STANDARDS: dict[str, type[BaseModel]] = {
    "citizen": Citizen,
    "organization": Organization,
    "dossier": Dossier,
}

#: The entity types the registry holds (the keys of :data:`STANDARDS`).
ENTITY_TYPES = ("citizen", "organization", "dossier")

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(entity_type: str, model: type[BaseModel] | None = None) -> dict[str, object]:
    """The published JSON Schema of one standard (``model`` overrides the registry's)."""
    model = model or STANDARDS[entity_type]
    schema: dict[str, object] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:vn:mdm:standard:{entity_type}",
    }
    schema.update(model.model_json_schema(mode="serialization"))
    return schema


def render_schema(entity_type: str, model: type[BaseModel] | None = None) -> str:
    """Deterministic text of a schema file: sorted keys, UTF-8 as is, trailing newline."""
    return (
        json.dumps(json_schema(entity_type, model), ensure_ascii=False, indent=2, sort_keys=True)
        + "\n"
    )


def schema_drift(directory: Path, models: Mapping[str, type[BaseModel]] | None = None) -> list[str]:
    """Names of the schema files in ``directory`` that differ from the models (or are missing)."""
    models = models or STANDARDS
    drift = []
    for entity_type, model in sorted(models.items()):
        path = directory / f"{entity_type}.schema.json"
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != render_schema(entity_type, model):
            drift.append(path.name)
    return drift
