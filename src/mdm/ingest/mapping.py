"""Source mappings: how one source layout's columns become the standard raw fields.

A mapping is data (a YAML file a steward can review in a diff, see
``docs/mappings.md``); this module validates it once on load and compiles it into
a list of small closures so that :meth:`Mapping.apply`, which runs once per row on
millions of rows, does no parsing, no dictionary building beyond its result and no
validation.

What a mapping does *not* do: it does not standardize. It only gathers, joins,
decodes code lists, pre-parses dates in the layout's known format and fills
defaults; every value it cannot handle is passed through raw, so that the
standardizer sees it and reports it (nothing is silently dropped here).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mdm.exceptions import ConfigError

EntityType = Literal["citizen", "organization", "dossier"]
FileFormat = Literal["csv", "jsonl", "parquet"]

#: The standard field names per entity type. Kept here (not imported from the
#: standardizers) so a mapping can be validated without loading unit data.
STANDARD_FIELDS: dict[str, frozenset[str]] = {
    "citizen": frozenset(
        {
            "personal_id",
            "old_id_number",
            "full_name",
            "date_of_birth",
            "sex",
            "place_of_birth",
            "hometown",
            "permanent_address",
            "current_address",
            "phone",
            "email",
            "ethnicity",
            "nationality",
            "date_of_death",
        }
    ),
    "organization": frozenset(
        {
            "tax_code",
            "name",
            "name_en",
            "short_name",
            "legal_form",
            "address",
            "legal_representative_id",
            "founding_date",
            "status",
        }
    ),
    "dossier": frozenset(
        {
            "dossier_code",
            "procedure_code",
            "applicant_id",
            "applicant_type",
            "receiving_agency",
            "submitted_at",
            "decided_at",
            "status",
            "result_number",
        }
    ),
}

#: Separator between the values of a multi-column source key.
KEY_SEPARATOR = "|"

_Strict = ConfigDict(extra="forbid", frozen=True)
NonEmpty = Annotated[str, Field(min_length=1)]


class FieldSpec(BaseModel):
    """One standard field's recipe. A bare column name in YAML means ``{column: name}``."""

    model_config = _Strict

    column: NonEmpty | None = None
    columns: list[NonEmpty] | None = Field(default=None, min_length=1)
    join: str = " "
    date_format: list[NonEmpty] | None = None
    codes: dict[str, str] | None = None
    default: str | None = None

    @field_validator("date_format", mode="before")
    @classmethod
    def _one_or_many_formats(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_strings(cls, v: Any) -> Any:
        # YAML reads `1: male` with an integer key; the file holds text, so compare text.
        if isinstance(v, dict):
            return {str(k): (None if val is None else str(val)) for k, val in v.items()}
        return v

    @field_validator("default", mode="before")
    @classmethod
    def _default_as_string(cls, v: Any) -> Any:
        return v if v is None or isinstance(v, str) else str(v)

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if self.column is not None and self.columns is not None:
            raise ValueError("give either 'column' or 'columns', not both")
        if self.column is None and self.columns is None and self.default is None:
            raise ValueError("needs 'column', 'columns' or 'default'")
        if self.date_format is not None and self.codes is not None:
            raise ValueError("'date_format' and 'codes' cannot be combined")
        return self

    @property
    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return list(self.columns or [])


class CsvOptions(BaseModel):
    """Dialect hints for CSV readers; names follow :mod:`csv`."""

    model_config = _Strict

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    header: bool = True
    skip_rows: int = Field(default=0, ge=0)


class MappingModel(BaseModel):
    """The YAML document, validated. See ``docs/mappings.md`` for the format."""

    model_config = _Strict

    source_system: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    entity_type: EntityType
    description: str | None = None
    format: FileFormat = "csv"
    encoding: str | None = None
    csv: CsvOptions = CsvOptions()
    source_key: list[NonEmpty] = Field(min_length=1)
    null_values: list[str] = []
    fields: dict[str, FieldSpec] = Field(min_length=1)
    trust: dict[str, float] = {}

    @field_validator("source_key", mode="before")
    @classmethod
    def _key_one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("fields", mode="before")
    @classmethod
    def _bare_column(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"column": s} if isinstance(s, str) else s) for k, s in v.items()}
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        if v is not None:
            import codecs

            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @model_validator(mode="after")
    def _fields_for_entity(self) -> MappingModel:
        allowed = STANDARD_FIELDS[self.entity_type]
        unknown = sorted(set(self.fields) - allowed)
        if unknown:
            raise ValueError(
                f"fields: unknown standard field(s) {unknown} for entity type "
                f"{self.entity_type!r}; allowed: {sorted(allowed)}"
            )
        for name, value in self.trust.items():
            if name != "default" and name not in allowed:
                raise ValueError(
                    f"trust.{name}: not a standard field of entity type {self.entity_type!r}"
                )
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ValueError(f"trust.{name}: {value} is outside 0..1")
        return self


# ---------------------------------------------------------------------------
# Value coercion: what a reader may hand us (csv: str; jsonl: str/int/float/bool/
# None; parquet: also date, datetime, Decimal) becomes ``str | None``.


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
        return s or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        # 1975.0 from a numeric spreadsheet column means the integer 1975.
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    s = str(value).strip()
    return s or None


Getter = Callable[[MappingABC[str, Any]], str | None]


def _make_getter(column: str, nulls: frozenset[str]) -> Getter:
    if nulls:

        def get(row: MappingABC[str, Any]) -> str | None:
            v = _to_text(row.get(column))
            return None if v is None or v in nulls else v

    else:

        def get(row: MappingABC[str, Any]) -> str | None:
            return _to_text(row.get(column))

    return get


def _compile_field(spec: FieldSpec, nulls: frozenset[str]) -> Getter:
    cols = spec.source_columns
    base: Getter
    if not cols:
        const = spec.default

        def base(row: MappingABC[str, Any]) -> str | None:
            return const

        return base
    if len(cols) == 1:
        base = _make_getter(cols[0], nulls)
    else:
        getters = [_make_getter(c, nulls) for c in cols]
        sep = spec.join

        def base(row: MappingABC[str, Any]) -> str | None:
            parts = [p for g in getters if (p := g(row)) is not None]
            return sep.join(parts) if parts else None

    stage = base
    if spec.date_format is not None:
        stage = _with_dates(stage, cols, spec.date_format)
    elif spec.codes is not None:
        stage = _with_codes(stage, spec.codes)
    if spec.default is not None:
        stage = _with_default(stage, spec.default)
    return stage


# Day-month-year formats parsed by splitting instead of strptime (10x cheaper, and
# dates are in most rows of a migration). Only for plain ASCII digits of the shape the
# format implies; anything else goes to strptime, so results never differ.
_SPLIT_FORMATS: dict[str, tuple[str, tuple[int, int, int]]] = {
    # format: (separator, positions of year, month, day)
    "%d/%m/%Y": ("/", (2, 1, 0)),
    "%d-%m-%Y": ("-", (2, 1, 0)),
    "%d.%m.%Y": (".", (2, 1, 0)),
    "%Y-%m-%d": ("-", (0, 1, 2)),
    "%Y/%m/%d": ("/", (0, 1, 2)),
}

_NOT_PARSED = object()


def _split_date(value: str, fmt: str) -> object:
    """The ISO date, None when the calendar refuses it, or _NOT_PARSED for strptime."""
    shape = _SPLIT_FORMATS.get(fmt)
    if shape is None or not value.isascii():
        return _NOT_PARSED
    sep, (yi, mi, di) = shape
    parts = value.split(sep)
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return _NOT_PARSED
    y, m, d = parts[yi], parts[mi], parts[di]
    if len(y) != 4 or not 1 <= len(m) <= 2 or not 1 <= len(d) <= 2:
        return _NOT_PARSED
    try:
        return dt.date(int(y), int(m), int(d)).isoformat()
    except ValueError:
        return None


#: distinct date texts remembered per date field of a mapping (a text and its result
#: take about 150 bytes: at most ~10 MiB a field)
DATE_CACHE_SIZE = 65536


def _date_text_parser(formats: list[str]) -> Callable[[str], str]:
    """Text to the ISO date (or datetime) of the first of ``formats`` that reads it; the
    text itself when none does (the standardizer then reports what is wrong).

    A pure function of the text, memoized: a field of dates holds a few tens of
    thousands of distinct values (about 36,500 birth dates a century) across millions
    of rows. Results are strings, so a cached one cannot be changed by a caller.
    """
    fmts = tuple(formats)
    strptime = dt.datetime.strptime

    @lru_cache(maxsize=DATE_CACHE_SIZE)
    def parse(v: str) -> str:
        for fmt in fmts:
            fast = _split_date(v, fmt)
            if fast is None:
                continue
            if fast is not _NOT_PARSED:
                return cast(str, fast)
            try:
                parsed = strptime(v, fmt)
            except ValueError:
                continue
            # A format without a time part yields midnight: report a date.
            if parsed.time() == dt.time(0) and "%H" not in fmt:
                return parsed.date().isoformat()
            return parsed.isoformat()
        return v

    return parse


def _with_dates(inner: Getter, cols: list[str], formats: list[str]) -> Getter:
    single = cols[0] if len(cols) == 1 else None
    parse = _date_text_parser(formats)

    def get(row: MappingABC[str, Any]) -> str | None:
        if single is not None:
            native = row.get(single)
            if isinstance(native, dt.date):  # parquet/arrow already typed it
                return native.isoformat()
        v = inner(row)
        if v is None:
            return None
        return parse(v)

    return get


def _with_codes(inner: Getter, codes: dict[str, str]) -> Getter:
    exact = dict(codes)
    folded = {k.strip().casefold(): v for k, v in codes.items()}

    def get(row: MappingABC[str, Any]) -> str | None:
        v = inner(row)
        if v is None:
            return None
        hit = exact.get(v)
        if hit is None:
            hit = folded.get(v.casefold())
        return v if hit is None else hit  # unknown code: keep raw for the standardizer

    return get


def _with_default(inner: Getter, default: str) -> Getter:
    def get(row: MappingABC[str, Any]) -> str | None:
        v = inner(row)
        return default if v is None else v

    return get


class Mapping:
    """A validated, compiled source mapping.

    ``apply`` is pure and thread-safe; build a ``Mapping`` once per file, not per row.
    """

    __slots__ = ("_key_getters", "_nulls", "_plan", "model", "path")

    def __init__(self, model: MappingModel, path: Path | None = None) -> None:
        self.model = model
        self.path = path
        nulls = frozenset(model.null_values)
        self._nulls = nulls
        self._key_getters = [_make_getter(c, nulls) for c in model.source_key]
        # (field, column, None) for a plain one-column field, read inline by ``apply``
        # (most fields: a call per field per row was a third of the mapping's cost);
        # (field, None, getter) for joins, dates, codes and defaults. (``apply`` reads
        # the column without typing.cast: a function call per field per row.)
        self._plan: list[tuple[str, str | None, Getter | None]] = [
            (name, spec.source_columns[0], None)
            if len(spec.source_columns) == 1
            and spec.date_format is None
            and spec.codes is None
            and spec.default is None
            else (name, None, _compile_field(spec, nulls))
            for name, spec in model.fields.items()
        ]

    @property
    def entity_type(self) -> str:
        return self.model.entity_type

    @property
    def source_system(self) -> str | None:
        return self.model.source_system

    def trust_for(self, field: str) -> float | None:
        """Trust of this source for ``field``: the field's own, else ``default``, else None."""
        trust = self.model.trust
        return trust.get(field, trust.get("default"))

    def required_columns(self) -> list[str]:
        """Every column this mapping reads, key columns first, in file-spec order, no repeats."""
        seen: dict[str, None] = dict.fromkeys(self.model.source_key)
        for spec in self.model.fields.values():
            seen.update(dict.fromkeys(spec.source_columns))
        return list(seen)

    def apply(self, row: MappingABC[str, Any]) -> tuple[str | None, dict[str, str | None]]:
        """Map one source row to ``(source_key, raw standard fields)``.

        The key is the key columns' values joined with ``|``; it is ``None`` when any
        key column is blank, because a partial key cannot identify a record (the
        caller should reject the row). Every mapped field is present in the result,
        ``None`` when blank. Missing columns read as blank: check
        :meth:`required_columns` against the file header once, up front.
        """
        parts = [g(row) for g in self._key_getters]
        key: str | None
        if len(parts) == 1:
            key = parts[0]
        elif any(p is None for p in parts):
            key = None
        else:
            key = KEY_SEPARATOR.join(p for p in parts if p is not None)
        nulls = self._nulls
        out: dict[str, str | None] = {}
        for name, column, get in self._plan:
            if get is not None:
                out[name] = get(row)
                continue
            v = row.get(column)  # type: ignore[arg-type]
            if type(v) is str:
                v = v.strip()
                out[name] = v if v and v not in nulls else None
            else:
                t = _to_text(v)
                out[name] = None if t is None or t in nulls else t
        return key, out


def _format_error(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid mapping"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_mapping(data: Any, *, origin: str | Path = "<mapping>") -> Mapping:
    """Validate an already-parsed mapping document (for tests and API callers)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: a mapping must be a YAML mapping (key: value), not {type(data).__name__}"
        )
    try:
        model = MappingModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(origin, exc)) from None
    return Mapping(model, Path(origin) if not isinstance(origin, Path) else origin)


def load_mapping(path: str | Path) -> Mapping:
    """Load and validate a mapping file; every problem is a :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read mapping: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise ConfigError(f"{p}: not valid YAML: nested too deeply") from None
    return parse_mapping(data, origin=p)
