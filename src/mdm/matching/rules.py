"""Matching rules as data: ``matching_rules/<entity_type>.yaml``, validated on load.

The file is the one place a steward reads to know how records are matched: the
blocking rules, the comparisons and their levels, the deterministic rules, the
thresholds. Code turns it into a Splink settings dictionary (batch path) and into
Python level evaluators (incremental path); both are generated from the *same*
small vocabulary of level predicates so the two paths agree exactly:

======================  =============================================  ==============
predicate               SQL (DuckDB)                                   Python
======================  =============================================  ==============
``exact: c``            ``c_l = c_r``                                  ``==``
``cross: [a, b]``       ``a_l = b_r``                                  ``==``
``jaro_winkler: c``     ``jaro_winkler_similarity(c_l, c_r) >= min``   rapidfuzz
``jaro: c``             ``jaro_similarity(c_l, c_r) >= min``           rapidfuzz
``levenshtein: c``      ``levenshtein(c_l, c_r) <= max``               rapidfuzz
``damerau_levenshtein`` ``damerau_levenshtein(c_l, c_r) <= max``       rapidfuzz
``abs_diff: c``         ``abs(c_l - c_r) <= max``                      ``abs``
``either_true: c``      ``(c_l OR c_r)``                               ``or``
======================  =============================================  ==============

On Spark (``mdm match run --backend spark``) the same levels are written in Spark
SQL (backquoted identifiers; Jaro and Jaro-Winkler through rapidfuzz UDFs that
:mod:`mdm.matching.spark` registers, Damerau-Levenshtein from Splink's jar): see
``sql(dialect="spark")``.

A level's predicates are ANDed. Null levels (``is_null: [cols]``) test
``c_l IS NULL OR c_r IS NULL`` for any listed column. Arbitrary SQL is deliberately
not accepted: it could not be reproduced by the incremental scorer.

The same predicates express the deterministic ``guards`` (pair-level vetoes on an
automatic link, e.g. twins' given names), whose SQL the batch path runs in DuckDB
and whose Python the incremental path runs; ``max_gap`` bounds how far apart a
numeric column may be inside one automatic cluster (birth years: parent and child).

Thresholds (``thresholds.unit``) are match probabilities (0–1, exclusive) or match
weights (log2 Bayes factors, prior included); both are converted to weights for
comparisons, since the weight is what Splink filters on.

Unknown top-level sections are rejected, except those in
:data:`PRESERVED_SECTIONS` (``survivorship``), which are kept verbatim for the
issue that will define them.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mdm.exceptions import ConfigError
from mdm.matching.features import ENTITY_TYPES, FEATURE_COLUMNS

PRESERVED_SECTIONS: Final[frozenset[str]] = frozenset({"survivorship"})

_STRING_OPS: Final[tuple[str, ...]] = ("jaro_winkler", "jaro", "levenshtein", "damerau_levenshtein")
_OPS: Final[tuple[str, ...]] = ("exact", "cross", *_STRING_OPS, "abs_diff", "either_true")
_NEEDS_MIN: Final[frozenset[str]] = frozenset({"jaro_winkler", "jaro"})
_NEEDS_MAX: Final[frozenset[str]] = frozenset({"levenshtein", "damerau_levenshtein", "abs_diff"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


SqlDialect = Literal["duckdb", "spark"]
_QUOTE: dict[str, str] = {"duckdb": '"', "spark": "`"}
#: Spark has no Jaro(-Winkler) of DuckDB's: Splink's jar computes other values (it
#: counts transpositions differently), so mdm.matching.spark registers rapidfuzz's
#: (DuckDB's values) under these names; Splink's jar supplies damerau_levenshtein.
SPARK_JARO_WINKLER = "mdm_jaro_winkler_similarity"
SPARK_JARO = "mdm_jaro_similarity"
_FUNCTIONS: dict[str, dict[str, str]] = {
    "duckdb": {
        "jaro_winkler": "jaro_winkler_similarity",
        "jaro": "jaro_similarity",
        "levenshtein": "levenshtein",
        "damerau_levenshtein": "damerau_levenshtein",
    },
    "spark": {
        "jaro_winkler": SPARK_JARO_WINKLER,
        "jaro": SPARK_JARO,
        "levenshtein": "levenshtein",
        "damerau_levenshtein": "damerau_levenshtein",
    },
}


class Predicate(_Strict):
    """One condition on a pair; exactly one operator key is set."""

    exact: str | None = None
    cross: tuple[str, str] | None = None
    jaro_winkler: str | None = None
    jaro: str | None = None
    levenshtein: str | None = None
    damerau_levenshtein: str | None = None
    abs_diff: str | None = None
    either_true: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Predicate:
        ops = [op for op in _OPS if getattr(self, op) is not None]
        if len(ops) != 1:
            raise ValueError(f"exactly one of {', '.join(_OPS)} must be set, got {ops or 'none'}")
        op = ops[0]
        if op in _NEEDS_MIN and (self.min is None or not 0 < self.min <= 1):
            raise ValueError(f"{op} needs 'min' in (0, 1]")
        if op in _NEEDS_MAX and (self.max is None or self.max < 0):
            raise ValueError(f"{op} needs 'max' >= 0")
        if op not in _NEEDS_MIN and self.min is not None:
            raise ValueError(f"'min' is not used by {op}")
        if op not in _NEEDS_MAX and self.max is not None:
            raise ValueError(f"'max' is not used by {op}")
        return self

    @property
    def op(self) -> str:
        return next(op for op in _OPS if getattr(self, op) is not None)

    @property
    def columns(self) -> tuple[str, ...]:
        value = getattr(self, self.op)
        return tuple(value) if isinstance(value, tuple) else (value,)

    def sql(self, dialect: SqlDialect = "duckdb") -> str:
        op, cols = self.op, self.columns
        q = _QUOTE[dialect]
        c = cols[0]
        if op == "exact":
            return f"{q}{c}_l{q} = {q}{c}_r{q}"
        if op == "cross":
            return f"{q}{cols[0]}_l{q} = {q}{cols[1]}_r{q}"
        if op in ("jaro_winkler", "jaro", "levenshtein", "damerau_levenshtein"):
            fn = _FUNCTIONS[dialect][op]
            if op in ("jaro_winkler", "jaro"):
                return f"{fn}({q}{c}_l{q}, {q}{c}_r{q}) >= {self.min!r}"
            return f"{fn}({q}{c}_l{q}, {q}{c}_r{q}) <= {_int_or_float(self.max)}"
        if op == "abs_diff":
            return f"abs({q}{c}_l{q} - {q}{c}_r{q}) <= {_int_or_float(self.max)}"
        return f"({q}{c}_l{q} OR {q}{c}_r{q})"  # either_true


def _int_or_float(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if float(value).is_integer() else repr(value)


class TermFrequency(_Strict):
    """Term-frequency adjustment: common values (``Nguyễn``) weigh less than rare ones."""

    column: str
    weight: float = Field(default=1.0, ge=0, le=1)
    minimum_u: float = Field(default=0.0, ge=0, le=1)


class Level(_Strict):
    label: str | None = None
    is_null: list[str] | None = None
    when: list[Predicate] | None = None
    else_: bool | None = Field(default=None, alias="else")
    tf: TermFrequency | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Level:
        kinds = [k for k in ("is_null", "when", "else_") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a level has exactly one of 'is_null', 'when' or 'else: true'")
        if self.is_null is not None and not self.is_null:
            raise ValueError("'is_null' needs at least one column")
        if self.when is not None and not self.when:
            raise ValueError("'when' needs at least one predicate")
        if self.tf is not None and not self.when:
            raise ValueError("'tf' is only allowed on a 'when' level")
        return self

    @property
    def kind(self) -> Literal["null", "when", "else"]:
        if self.is_null:
            return "null"
        return "when" if self.when else "else"

    @property
    def columns(self) -> tuple[str, ...]:
        if self.is_null:
            return tuple(self.is_null)
        cols: list[str] = []
        for pred in self.when or []:
            cols.extend(pred.columns)
        if self.tf:
            cols.append(self.tf.column)
        return tuple(cols)

    def sql(self, dialect: SqlDialect = "duckdb") -> str:
        q = _QUOTE[dialect]
        if self.is_null:
            return " OR ".join(f"{q}{c}_l{q} IS NULL OR {q}{c}_r{q} IS NULL" for c in self.is_null)
        if self.when:
            return " AND ".join(p.sql(dialect) for p in self.when)
        return "ELSE"

    def display_label(self) -> str:
        if self.label:
            return self.label
        if self.is_null:
            return "null"
        return "else" if not self.when else " and ".join(p.sql() for p in self.when)


class Comparison(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str | None = None
    levels: list[Level] = Field(min_length=2)

    @model_validator(mode="after")
    def _shape(self) -> Comparison:
        if self.levels[-1].kind != "else":
            raise ValueError("the last level must be 'else: true'")
        for i, level in enumerate(self.levels):
            if level.kind == "else" and i != len(self.levels) - 1:
                raise ValueError(f"levels[{i}]: 'else' must be the last level")
            if level.kind == "null" and i != 0:
                raise ValueError(f"levels[{i}]: a null level must be the first level")
        return self


class Thresholds(_Strict):
    unit: Literal["probability", "weight"] = "probability"
    #: at or above: linked automatically. With ``precision_target``, the floor of
    #: the threshold training derives (see :mod:`mdm.matching.thresholds`)
    auto_link: float
    #: lower edge of the review band (with ``precision_target``: its floor)
    review: float
    #: the share of automatic links that must be right; training derives the
    #: auto-link threshold that meets it on its own data and saves it in the model
    precision_target: float | None = Field(default=None, gt=0.5, lt=1)
    #: the share of records a run may queue for stewards (sizes the review band)
    review_load: float = Field(default=0.02, gt=0, lt=1)
    #: candidate pairs training scores to derive them: above it, a uniform sample of
    #: that many (every candidate pair kept with the same chance, whole or not at all)
    derive_max_pairs: int = Field(default=2_000_000, ge=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.unit == "probability":
            for key in ("auto_link", "review"):
                if not 0 < getattr(self, key) < 1:
                    raise ValueError(f"{key} must be a probability in (0, 1)")
        if self.review >= self.auto_link:
            raise ValueError("review (lower edge of the review band) must be below auto_link")
        if self.precision_target is not None and self.unit != "probability":
            raise ValueError("precision_target needs unit: probability")
        return self

    @property
    def auto_link_weight(self) -> float:
        return self._as_weight(self.auto_link)

    @property
    def review_weight(self) -> float:
        return self._as_weight(self.review)

    def _as_weight(self, value: float) -> float:
        return value if self.unit == "weight" else math.log2(value / (1 - value))


class Blocking(_Strict):
    """Equality blocking rules, each a list of feature columns that must all be equal.

    Equality-only rules are what the store can index: the incremental path turns
    each rule into a blocking key (see :func:`mdm.matching.incremental.blocking_keys`).
    """

    training: list[list[str]] = Field(min_length=1)
    prediction: list[list[str]] = Field(min_length=1)


class Prior(_Strict):
    """The prior is estimated from near-certain deterministic rules and their recall."""

    deterministic_rules: list[list[str]] = Field(min_length=1)
    recall: float = Field(gt=0, le=1)


class Training(_Strict):
    u_max_pairs: float = Field(default=5e6, gt=0)
    em_max_pairs: float | None = Field(default=2e6, gt=0)
    seed: int = 42
    em_convergence: float = Field(default=1e-4, gt=0)
    max_iterations: int = Field(default=25, gt=0)
    #: Smallest m any level keeps: how often a true match may fall in a level the
    #: training data says it (almost) never does. A clerical slip happens in any
    #: field of any registry; no single disagreement may weigh more against a link
    #: than log2(m_floor / u).
    m_floor: float = Field(default=1e-3, gt=0, lt=1)
    #: Smallest u any level keeps; default one in ``u_max_pairs`` (what random
    #: sampling can tell apart from zero).
    u_floor: float | None = Field(default=None, gt=0, lt=1)

    @property
    def u_floor_value(self) -> float:
        return self.u_floor if self.u_floor is not None else 1.0 / self.u_max_pairs


class SameKeyRule(_Strict):
    """Records sharing ``key`` are the same thing if ``agree`` columns agree.

    Outcome per pair: any ``agree``/``agree_when_known`` column known on both sides
    and different → ``review`` (and the pair may never be auto-linked); all
    ``agree`` columns known and equal → ``link``; otherwise ``review``.
    """

    name: str
    key: list[str] = Field(min_length=1)
    agree: list[str] = Field(default_factory=list)
    agree_when_known: list[str] = Field(default_factory=list)
    #: disagreements one clerical slip explains (a birth year one off, a digit of the
    #: date, day and month swapped) are no conflict
    slips: Slips | None = None
    #: must hold when their columns are known on both sides, else the pair conflicts
    #: (the same ID on two people: a relative's ID typed into a record)
    require_when_known: list[Predicate] = Field(default_factory=list)
    #: what an ``agree`` column that differs beyond ``slips`` makes of the pair:
    #: ``conflict`` (review, never linked automatically) or ``review`` (no link by
    #: the rule; the model weighs the pair on its evidence, and may link it)
    on_disagreement: Literal["conflict", "review"] = "conflict"

    @property
    def columns(self) -> list[str]:
        """Every feature column the rule reads."""
        cols = [*self.key, *self.agree, *self.agree_when_known]
        if self.slips is not None:
            cols += [
                *self.slips.columns,
                *(c for g in self.slips.when_any for p in g for c in p.columns),
            ]
        cols += [c for p in self.require_when_known for c in p.columns]
        return list(dict.fromkeys(cols))


class Slips(_Strict):
    """Disagreements on ``columns`` are forgiven when every predicate of any one group
    of ``when_any`` holds."""

    columns: list[str] = Field(min_length=1)
    when_any: list[list[Predicate]] = Field(min_length=1)


class MaxGap(_Strict):
    """Numeric values further apart than ``max`` forbid an automatic link, even
    through a chain of links: a cluster's values span at most ``max``."""

    column: str
    max: float = Field(ge=0)
    #: Queue the refused pair for a steward only when one of these holds (a
    #: clerical slip could explain the disagreement); none listed: always queue.
    review_when: list[Predicate] = Field(default_factory=list)


class Guard(_Strict):
    """A pair whose ``known`` columns are known on both sides may not be linked
    automatically unless one of the ``unless`` predicates holds (NULL: does not hold).

    Twins share surname, birth date, address and often a family phone: only the
    given name tells them apart, so given names further apart than a typo forbid an
    automatic link unless an identifier says it is one person.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str | None = None
    #: the guard applies when every listed column is known on both sides ...
    known: list[str] = Field(default_factory=list)
    #: ... or when any listed column is unknown on either side
    unknown: list[str] = Field(default_factory=list)
    #: ... and every one of these predicates holds (NULL: does not hold) ...
    when: list[Predicate] = Field(default_factory=list)
    #: ... and none of these does
    unless: list[Predicate] = Field(default_factory=list)

    #: Queue the refused pair for a steward only when one of these holds (a
    #: clerical slip could explain the disagreement); none listed: always queue.
    review_when: list[Predicate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_condition(self) -> Guard:
        if bool(self.known) == bool(self.unknown):
            raise ValueError("a guard has exactly one of 'known' or 'unknown'")
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        preds = [*self.when, *self.unless, *self.review_when]
        cols = [*self.known, *self.unknown, *(c for p in preds for c in p.columns)]
        return tuple(dict.fromkeys(cols))

    def sql(self) -> str:
        """TRUE when the guard forbids the pair (columns ``<c>_l`` / ``<c>_r``)."""
        if self.known:
            applies = " AND ".join(
                f'"{c}_l" IS NOT NULL AND "{c}_r" IS NOT NULL' for c in self.known
            )
        else:
            applies = (
                "(" + " OR ".join(f'"{c}_l" IS NULL OR "{c}_r" IS NULL' for c in self.unknown) + ")"
            )
        if self.when:
            applies += "".join(f" AND coalesce({p.sql()}, FALSE)" for p in self.when)
        if not self.unless:
            return f"({applies})"
        unless = " OR ".join(f"coalesce({p.sql()}, FALSE)" for p in self.unless)
        return f"({applies} AND NOT ({unless}))"


class ExclusiveKey(_Strict):
    """A column whose two different values forbid an automatic link, even through a
    chain of links (two valid personal IDs are two people).

    Written as a bare column name, or as a mapping that relaxes it for the slips
    real registries are full of:

    * ``typo_edits``: two values at most this many edits apart (Damerau-Levenshtein:
      one mistyped or two transposed digits) are one value typed twice, not two;
      the pair is then judged on its evidence like any other;
    * ``unless_flagged``: a boolean feature column; a record where it is true holds
      a value already in doubt (an ID whose birth-year or sex digit contradicts the
      record's own date or sex), which keeps nothing apart.
    """

    column: str
    typo_edits: int = Field(default=0, ge=0, le=2)
    unless_flagged: str | None = None
    #: Queue the refused pair for a steward only when one of these holds (a
    #: clerical slip could explain the disagreement); none listed: always queue.
    review_when: list[Predicate] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _bare_column(cls, data: object) -> object:
        return {"column": data} if isinstance(data, str) else data

    @property
    def columns(self) -> list[str]:
        return [
            self.column,
            *([self.unless_flagged] if self.unless_flagged else []),
            *(c for p in self.review_when for c in p.columns),
        ]


class Deterministic(_Strict):
    same_key: list[SameKeyRule] = Field(default_factory=list)
    #: Columns whose different non-null values forbid an automatic link, even
    #: through a chain of links (see :class:`ExclusiveKey`).
    exclusive: list[ExclusiveKey] = Field(default_factory=list)
    #: e.g. birth years a generation apart (parent and child of one name and address)
    max_gap: list[MaxGap] = Field(default_factory=list)
    #: pairs that may never be linked automatically (checked pair by pair)
    guards: list[Guard] = Field(default_factory=list)

    def review_when(self, reason: str) -> list[Predicate]:
        """The ``review_when`` predicates of the constraint that gave ``reason``
        (``guard:<name>``, ``exclusive:<column>`` or ``<column>``, ``max_gap:<column>``);
        empty for any other reason (a same-key conflict, a steward's cannot-link)."""
        kind, _, name = reason.partition(":")
        if not name:
            kind, name = "exclusive", kind
        if kind == "guard":
            return next((g.review_when for g in self.guards if g.name == name), [])
        if kind == "exclusive":
            return next((k.review_when for k in self.exclusive if k.column == name), [])
        if kind == "max_gap":
            return next((g.review_when for g in self.max_gap if g.column == name), [])
        return []

    @property
    def review_columns(self) -> list[str]:
        """Every column a ``review_when`` predicate reads."""
        preds = [
            *(p for g in self.guards for p in g.review_when),
            *(p for k in self.exclusive for p in k.review_when),
            *(p for g in self.max_gap for p in g.review_when),
        ]
        return list(dict.fromkeys(c for p in preds for c in p.columns))

    @property
    def constrained_columns(self) -> list[str]:
        """Every column the clustering needs per record to enforce the constraints."""
        return list(
            dict.fromkeys(
                [
                    *(key.column for key in self.exclusive),
                    *(key.unless_flagged for key in self.exclusive if key.unless_flagged),
                    *(g.column for g in self.max_gap),
                ]
            )
        )


class MatchingRules(_Strict):
    entity_type: Literal["citizen", "organization", "dossier"]
    version: int = Field(ge=1)
    description: str | None = None
    thresholds: Thresholds
    blocking: Blocking
    prior: Prior
    training: Training = Training()
    comparisons: list[Comparison] = Field(min_length=1)
    deterministic: Deterministic = Deterministic()
    survivorship: dict[str, Any] | None = None
    source_path: str | None = Field(default=None, exclude=True)

    @cached_property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(FEATURE_COLUMNS[self.entity_type])

    @cached_property
    def tf_columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for comp in self.comparisons:
            for level in comp.levels:
                if level.tf:
                    seen[level.tf.column] = None
        return tuple(seen)

    def splink_settings(self) -> dict[str, Any]:
        """The Splink settings dictionary (untrained) generated from these rules."""
        return {
            "link_type": "dedupe_only",
            "unique_id_column_name": "unique_id",
            "probability_two_random_records_match": 1e-4,
            "em_convergence": self.training.em_convergence,
            "max_iterations": self.training.max_iterations,
            "retain_matching_columns": False,
            "retain_intermediate_calculation_columns": True,
            "blocking_rules_to_generate_predictions": [
                {"blocking_rule": blocking_rule_sql(cols)} for cols in self.blocking.prediction
            ],
            "comparisons": [_comparison_settings(c) for c in self.comparisons],
        }


def blocking_rule_sql(columns: list[str]) -> str:
    return " AND ".join(f'l."{c}" = r."{c}"' for c in columns)


def _comparison_settings(comp: Comparison) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    for level in comp.levels:
        entry: dict[str, Any] = {
            "sql_condition": level.sql(),
            "label_for_charts": level.display_label(),
        }
        if level.kind == "null":
            entry["is_null_level"] = True
        if level.tf:
            entry["tf_adjustment_column"] = level.tf.column
            entry["tf_adjustment_weight"] = level.tf.weight
            entry["tf_minimum_u_value"] = level.tf.minimum_u
            # the TF base is always this level's own u: simpler to reproduce than
            # Splink's search for an exact-match level on the same column
            entry["disable_tf_exact_match_detection"] = True
        levels.append(entry)
    return {
        "output_column_name": comp.name,
        "comparison_description": comp.description or comp.name,
        "comparison_levels": levels,
    }


# ------------------------------------------------------------------------- loading


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _check_columns(rules: MatchingRules, where: str) -> None:
    known = set(rules.feature_columns)
    problems: list[str] = []

    def check(cols: list[str] | tuple[str, ...], key: str) -> None:
        for col in cols:
            if col not in known:
                problems.append(f"{key}: unknown feature column {col!r}")

    for i, cols in enumerate(rules.blocking.training):
        check(cols, f"blocking.training[{i}]")
    for i, cols in enumerate(rules.blocking.prediction):
        check(cols, f"blocking.prediction[{i}]")
    for i, cols in enumerate(rules.prior.deterministic_rules):
        check(cols, f"prior.deterministic_rules[{i}]")
    names: set[str] = set()
    for i, comp in enumerate(rules.comparisons):
        if comp.name in names:
            problems.append(f"comparisons[{i}].name: duplicate comparison {comp.name!r}")
        names.add(comp.name)
        for j, level in enumerate(comp.levels):
            check(level.columns, f"comparisons[{i}].levels[{j}]")
    for i, rule in enumerate(rules.deterministic.same_key):
        check(rule.columns, f"deterministic.same_key[{i}]")
    types = FEATURE_COLUMNS[rules.entity_type]
    for i, key in enumerate(rules.deterministic.exclusive):
        check(key.columns, f"deterministic.exclusive[{i}]")
        flag = key.unless_flagged
        if flag is not None and flag in types and types[flag] != "BOOLEAN":
            problems.append(f"deterministic.exclusive[{i}]: column {flag!r} is not boolean")
    for i, guard in enumerate(rules.deterministic.guards):
        check(guard.columns, f"deterministic.guards[{i}]")
    for i, gap in enumerate(rules.deterministic.max_gap):
        check(
            [gap.column, *(c for p in gap.review_when for c in p.columns)],
            f"deterministic.max_gap[{i}]",
        )
        if gap.column in types and types[gap.column] != "INTEGER":
            problems.append(f"deterministic.max_gap[{i}]: column {gap.column!r} is not numeric")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def parse_rules(data: object, where: str = "<rules>") -> MatchingRules:
    """Validate an already-parsed YAML document; errors name ``where`` and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    allowed = set(MatchingRules.model_fields) - {"source_path"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level section(s) {unknown}; allowed: {sorted(allowed)}"
        )
    try:
        rules = MatchingRules.model_validate({**data, "source_path": where})
    except ValidationError as exc:
        details = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{where}: {details}") from exc
    _check_columns(rules, where)
    return rules


def load_rules_file(path: str | Path) -> MatchingRules:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read matching rules ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise ConfigError(f"{path}: invalid YAML (nested too deeply)") from None
    return parse_rules(data, str(path))


def default_rules_dir() -> Path:
    """``MDM_MATCHING_RULES_DIR`` if it exists, else the repository's ``matching_rules``."""
    from mdm.config import get_settings

    configured = get_settings().matching_rules_dir
    if configured.is_dir():
        return configured
    return Path(__file__).resolve().parents[3] / "matching_rules"


def load_rules(entity_type: str, rules_dir: str | Path | None = None) -> MatchingRules:
    if entity_type not in ENTITY_TYPES:
        raise ConfigError(f"unknown entity type {entity_type!r}; expected one of {ENTITY_TYPES}")
    directory = Path(rules_dir) if rules_dir is not None else default_rules_dir()
    rules = load_rules_file(directory / f"{entity_type}.yaml")
    if rules.entity_type != entity_type:
        raise ConfigError(
            f"{directory / f'{entity_type}.yaml'}: entity_type is {rules.entity_type!r}, "
            f"expected {entity_type!r}"
        )
    return rules
