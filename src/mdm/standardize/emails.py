"""E-mail addresses: trimmed, lower-cased, checked for a plausible shape.

Lower-casing the local part is technically lossy (RFC 5321 lets it be case
sensitive) but no Vietnamese provider treats it so, and matching needs one form.
An invalid address is dropped with a warning; it never rejects a record.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mdm.standardize.issues import Issue, warning

__all__ = ["standardize_email"]

_EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


@lru_cache(maxsize=65536)
def _email(raw: str, field: str) -> tuple[str | None, tuple[Issue, ...]]:
    text = raw.strip().strip("<>").strip().lower()
    if text.startswith("mailto:"):
        text = text[7:]
    text = text.replace(" ", "")
    if len(text) <= 254 and _EMAIL_RE.match(text):
        return text, ()
    return None, (warning(field, "email_invalid", "not a valid e-mail address"),)


def standardize_email(value: object, field: str = "email") -> tuple[str | None, list[Issue]]:
    if value is None:
        return None, []
    raw = str(value)
    if not raw.strip():
        return None, []
    if len(raw) > 320:
        return None, [warning(field, "email_invalid", "e-mail text is too long")]
    result, issues = _email(raw, field)
    return result, list(issues)
