"""The one shape every standardizer reports problems in.

An ``error`` rejects the record; a ``warning`` keeps it and flags it. Standardizers
never raise: whatever the input, they return a value (possibly ``None``) and a list
of issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Issue:
    field: str
    code: str
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, str]:
        # (dataclasses.asdict deep-copies through a generic walk: 5x slower, and
        # ingest calls this for every warning of every row)
        return {
            "field": self.field,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }


def error(field: str, code: str, message: str) -> Issue:
    return Issue(field, code, "error", message)


def warning(field: str, code: str, message: str) -> Issue:
    return Issue(field, code, "warning", message)


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)
