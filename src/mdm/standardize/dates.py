"""Dates and datetimes as Vietnamese sources write them.

Output forms (strings, so partial knowledge survives): ``YYYY-MM-DD``, ``YYYY-MM``
or ``YYYY``. A date known only to the month or year stays partial: it is never
completed to the 1st of January, which would invent a precision that matching
would then trust.

Accepted input: ``dd/mm/yyyy``, ``d/m/yyyy``, ``dd-mm-yyyy``, ``dd.mm.yyyy`` (day
first, always), ``d/m/yy``, ISO ``yyyy-mm-dd`` (a time part is ignored for dates),
``yyyy/mm/dd``, ``yyyymmdd``, ``mm/yyyy``, ``yyyy-mm``, ``yyyy``, Vietnamese words
(``ngày 5 tháng 3 năm 1990``), and spreadsheet serial numbers.

* **Two-digit years** pivot at 30: ``00``-``29`` → 2000-2029, ``30``-``99`` →
  1930-1999; for a birth date a result in the future falls back to the 1900s. A
  fixed pivot (not "today") keeps standardization a pure function of its input. The
  value is kept with a ``date_two_digit_year`` warning.
* **Spreadsheet serials** (Excel 1900 date system): a 5-digit number, or any number
  with a decimal part (``33239.0``). Serial 60 is the non-existent 1900-02-29 of the
  Lotus/Excel leap-year bug (an error); serials after it are off by one, which the
  conversion corrects. 4-digit numbers are years, never serials.
* ``01/01/yyyy`` is kept but flagged ``date_weak_jan1``: systems wrote it when only
  the year was known.
* Impossible dates (``31/02/1990``) are errors. A birth date in the future is an
  error; other future dates (dossier decisions) are warnings. Birth dates before
  1900 are flagged (``date_before_1900``); years outside 1800-2200 are errors.
* Placeholders meaning "unknown" (``không rõ``, ``N/A``, ``00/00/0000``) are treated
  as missing, without issue.

Datetimes (dossier ``submitted_at``/``decided_at``): ISO 8601 with offset or ``Z``,
naive ISO, ``dd/mm/yyyy HH:MM[:SS]``. Naive values are Asia/Ho_Chi_Minh (UTC+07:00,
no DST since 1975). Output ``YYYY-MM-DDTHH:MM:SS+07:00``; a value with only a date
is returned as the date (``YYYY-MM-DD``), again without inventing a time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache

from mdm.standardize.issues import Issue, error, warning
from mdm.standardize.text import fold

__all__ = [
    "VN_TZ",
    "date_sort_key",
    "excel_serial_to_date",
    "standardize_date",
    "standardize_datetime",
]

VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
_EXCEL_EPOCH = date(1899, 12, 30)
_PIVOT = 30

_PLACEHOLDERS = frozenset(
    {"khong ro", "khong xac dinh", "kxd", "n/a", "na", "null", "none", "unknown", "-", "--", "?"}
)

_ZEROISH = frozenset("0/-. ")
_DMY = re.compile(r"^(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4}|\d{2})$")
_YMD = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_MY = re.compile(r"^(\d{1,2})\s*[/.\-]\s*(\d{4})$")
_YM = re.compile(r"^(\d{4})[-/.](\d{1,2})$")
_SERIAL = re.compile(r"^(\d{5})(?:\.\d+)?$|^(\d{1,4})\.\d+$")
_TIME_TAIL = re.compile(
    r"^(.*?)[T\s]+(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_WORDS = re.compile(r"^(?:ngay\s*(\d{1,2})\s*)?(?:thang\s*(\d{1,2})\s*)?nam\s*(\d{4})$")


def excel_serial_to_date(serial: int) -> date | None:
    """Excel 1900-system serial → date; ``None`` for 60 (the phantom 1900-02-29) or < 1."""
    if serial < 1 or serial == 60:
        return None
    if serial < 60:
        return date(1899, 12, 31) + timedelta(days=serial)
    return _EXCEL_EPOCH + timedelta(days=serial)


def date_sort_key(value: str) -> tuple[int, int, int]:
    """Order standardized (possibly partial) dates; missing parts sort first."""
    parts = [int(p) for p in value.split("-")] + [0, 0]
    return parts[0], parts[1], parts[2]


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - timedelta(days=1)).day


@lru_cache(maxsize=131072)
def _parse(raw: str, field: str, birth: bool, today: date) -> tuple[str | None, tuple[Issue, ...]]:
    text = raw.strip()
    issues: list[Issue] = []
    if set(text) <= _ZEROISH or (not text[0].isdigit() and fold(text) in _PLACEHOLDERS):
        return None, ()
    m = _TIME_TAIL.match(text)
    if m and m[1]:
        text = m[1].strip()
    text = text.rstrip(".").strip()

    def bad(code: str, msg: str) -> tuple[str | None, tuple[Issue, ...]]:
        return None, (*issues, error(field, code, msg))

    year: int
    month: int | None = None
    day: int | None = None
    two_digit = False
    if mm := _DMY.match(text):
        day, month = int(mm[1]), int(mm[2])
        two_digit = len(mm[3]) == 2
        year = int(mm[3])
    elif mm := _YMD.match(text):
        year, month, day = int(mm[1]), int(mm[2]), int(mm[3])
    elif text.isdigit() and len(text) == 8:
        y, mo, d = int(text[:4]), int(text[4:6]), int(text[6:])
        if 1800 <= y <= 2200 and 1 <= mo <= 12:
            year, month, day = y, mo, d
        else:  # ddmmyyyy
            day, month, year = int(text[:2]), int(text[2:4]), int(text[4:])
    elif text.isdigit() and len(text) == 4:
        year = int(text)
    elif mm := _MY.match(text):
        month, year = int(mm[1]), int(mm[2])
    elif mm := _YM.match(text):
        year, month = int(mm[1]), int(mm[2])
    elif mm := _SERIAL.match(text):
        serial = int(float(text))
        converted = excel_serial_to_date(serial)
        if converted is None:
            return bad("date_impossible", f"spreadsheet serial {serial} is not a real date")
        year, month, day = converted.year, converted.month, converted.day
        issues.append(warning(field, "date_from_serial", f"read spreadsheet serial {serial}"))
    elif mm := _WORDS.match(fold(text).replace(",", " ")):
        year = int(mm[3])
        month = int(mm[2]) if mm[2] else None
        day = int(mm[1]) if mm[1] else None
        if day is not None and month is None:
            return bad("date_unparseable", f"cannot read date {raw!r}")
    else:
        return bad("date_unparseable", f"cannot read date {raw!r}")

    if two_digit:
        year += 2000 if year < _PIVOT else 1900
        if birth and year > today.year:
            year -= 100
        issues.append(warning(field, "date_two_digit_year", f"two-digit year read as {year}"))
    if not 1800 <= year <= 2200:
        return bad("date_out_of_range", f"year {year} is out of range")
    if month is not None and not 1 <= month <= 12:
        return bad("date_impossible", f"month {month} does not exist")
    if day is not None and month is not None and not 1 <= day <= _days_in_month(year, month):
        return bad("date_impossible", f"{day:02d}/{month:02d}/{year} does not exist")

    if day is not None and month is not None:
        value = f"{year:04d}-{month:02d}-{day:02d}"
        when = date(year, month, day)
        if day == 1 and month == 1:
            issues.append(
                warning(field, "date_weak_jan1", "01/01 often means only the year was known")
            )
    elif month is not None:
        value = f"{year:04d}-{month:02d}"
        when = date(year, month, 1)
    else:
        value = f"{year:04d}"
        when = date(year, 1, 1)
    if when > today:
        if birth:
            return bad("date_in_future", f"birth date {value} is in the future")
        issues.append(warning(field, "date_in_future", f"date {value} is in the future"))
    if birth and year < 1900:
        issues.append(warning(field, "date_before_1900", f"birth year {year} is before 1900"))
    return value, tuple(issues)


def standardize_date(
    value: object, field: str = "date", *, birth: bool = False, today: date | None = None
) -> tuple[str | None, list[Issue]]:
    """Standardize one date; ``birth=True`` makes a future date an error.

    ``today`` is injectable for reproducible tests; it only decides "in the future".
    """
    if value is None:
        return None, []
    if type(value) is not str:
        if isinstance(value, datetime):
            value = value.date().isoformat()
        elif isinstance(value, date):
            value = value.isoformat()
        value = str(value)
    result, issues = _standardize_text(value, field, birth, today or date.today())
    return result, list(issues)


@lru_cache(maxsize=65536)
def _standardize_text(
    value: str, field: str, birth: bool, today: date
) -> tuple[str | None, tuple[Issue, ...]]:
    """``standardize_date`` of a text, memoized: a pure function of its arguments, and
    dates repeat (about 36,500 birth dates a century, whatever the number of people).
    The issues are a tuple of frozen ``Issue``: a cached result cannot be changed by a
    caller, who gets a fresh list of them."""
    raw = value.strip()
    if not raw:
        return None, ()
    if len(raw) > 64:
        return None, (error(field, "date_unparseable", "date text is too long"),)
    if len(raw) == 10:
        fast = _fast_full_date(raw, today)
        if fast is not None:
            return fast, ()
    return _parse(raw, field, birth, today)


def _fast_full_date(raw: str, today: date) -> str | None:
    """``YYYY-MM-DD`` for a plain ``dd/mm/yyyy`` (or ``-``/``.``) or ``yyyy-mm-dd`` date that
    ``_parse`` accepts without any issue; ``None`` sends every other case the long way.

    Birth dates are nearly unique per person, so the common form is read directly rather
    than through the cache; a test holds this equal to ``_parse``.
    """
    if not raw.isascii():
        return None
    if raw[2] in "/-." and raw[5] in "/-.":
        d, m, y = raw[:2], raw[3:5], raw[6:]
    elif raw[4] in "/-." and raw[7] in "/-.":
        y, m, d = raw[:4], raw[5:7], raw[8:]
    else:
        return None
    if not (d.isdigit() and m.isdigit() and y.isdigit()):
        return None
    day, month, year = int(d), int(m), int(y)
    if (
        year < 1900
        or not 1 <= month <= 12
        or day < 1
        or (day > 28 and day > _days_in_month(year, month))
        or (day == 1 and month == 1)  # weak date: flagged by _parse
        or (year, month, day) > (today.year, today.month, today.day)
    ):
        return None
    return f"{y}-{m}-{d}"


_DMY_TIME = re.compile(
    r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})[T\s,]+(\d{1,2}):(\d{2})(?::(\d{2}))?$"
)


@lru_cache(maxsize=65536)
def _parse_datetime(raw: str, field: str, today: date) -> tuple[str | None, tuple[Issue, ...]]:
    text = raw.strip()
    parsed: datetime | None = None
    if m := _DMY_TIME.match(text):
        try:
            parsed = datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]), int(m[6] or 0))
        except ValueError:
            return None, (error(field, "date_impossible", f"{raw!r} is not a real time"),)
    elif re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            return None, (error(field, "date_impossible", f"{raw!r} is not a real time"),)
    if parsed is None:
        # Only a date: standardize it as a date, never invent a time.
        value, issues = _parse(text, field, False, today)
        return value, issues
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=VN_TZ)
    local = parsed.astimezone(VN_TZ).replace(microsecond=0)
    issues_dt: list[Issue] = []
    if local.astimezone(UTC).date() > today + timedelta(days=1):
        issues_dt.append(warning(field, "date_in_future", f"{local.isoformat()} is in the future"))
    if local.year < 1945:
        return None, (error(field, "date_out_of_range", f"{local.year} is out of range"),)
    return local.isoformat(), tuple(issues_dt)


def standardize_datetime(
    value: object, field: str = "datetime", *, today: date | None = None
) -> tuple[str | None, list[Issue]]:
    """ISO 8601 with a ``+07:00`` offset (naive input is Vietnam time), or a bare date."""
    if value is None:
        return None, []
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = str(value).strip()
    if not raw or fold(raw) in _PLACEHOLDERS:
        return None, []
    if len(raw) > 64:
        return None, [error(field, "date_unparseable", "datetime text is too long")]
    result, issues = _parse_datetime(raw, field, today or date.today())
    return result, list(issues)
