"""Standardization: raw source values to the registry's standard form.

Pure code (no database, web or Splink). Every standardizer returns ``(value, issues)``
and never raises; an ``error`` issue rejects the record, a ``warning`` flags it.
"""

from mdm.standardize.dates import standardize_date, standardize_datetime
from mdm.standardize.emails import standardize_email
from mdm.standardize.ethnicity import standardize_ethnicity
from mdm.standardize.ids import (
    personal_id_consistent,
    standardize_old_id,
    standardize_personal_id,
    standardize_tax_code,
    tax_code_check_digit,
    tax_code_valid,
)
from mdm.standardize.issues import Issue, Severity, error, has_errors, warning
from mdm.standardize.names import NameParts, parse_name, standardize_name
from mdm.standardize.nationality import standardize_nationality
from mdm.standardize.phones import standardize_phone
from mdm.standardize.records import ENTITY_FIELDS, StandardizeResult, standardize_record
from mdm.standardize.sex import standardize_sex
from mdm.standardize.text import canonical_text, fold, repair_mojibake, standardize_text

__all__ = [
    "ENTITY_FIELDS",
    "Issue",
    "NameParts",
    "Severity",
    "StandardizeResult",
    "canonical_text",
    "error",
    "fold",
    "has_errors",
    "parse_name",
    "personal_id_consistent",
    "repair_mojibake",
    "standardize_date",
    "standardize_datetime",
    "standardize_email",
    "standardize_ethnicity",
    "standardize_name",
    "standardize_nationality",
    "standardize_old_id",
    "standardize_personal_id",
    "standardize_phone",
    "standardize_record",
    "standardize_sex",
    "standardize_tax_code",
    "standardize_text",
    "tax_code_check_digit",
    "tax_code_valid",
    "warning",
]
