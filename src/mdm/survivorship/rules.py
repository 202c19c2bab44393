"""Survivorship rules as data: the ``survivorship:`` section of ``matching_rules/E.yaml``.

For every attribute an ordered chain of strategies; the first strategy that leaves a
single value decides (see :mod:`mdm.survivorship.engine`). Attributes without their
own entry use ``default``. A steward override always wins, whether or not the chain
names ``steward_override`` (when it does, it must come first, so the file never
suggests otherwise).

Pure: reads YAML and validates it, imports no database, web or Splink code (the
matching loader keeps this section verbatim; this module owns its meaning).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mdm.domain.standards import STANDARDS
from mdm.exceptions import ConfigError

Strategy = Literal[
    "steward_override",
    "valid_over_flagged",
    "source_trust",
    "most_recent",
    "most_frequent",
    "most_complete",
]
STRATEGIES: Final[tuple[str, ...]] = (
    "steward_override",
    "valid_over_flagged",
    "source_trust",
    "most_recent",
    "most_frequent",
    "most_complete",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeRule(_Strict):
    """How one attribute's golden value is chosen among its linked records' values."""

    strategies: tuple[Strategy, ...] = Field(min_length=1)
    #: Issue codes (from standardization) that make a record's value of this attribute
    #: "flagged": ``valid_over_flagged`` prefers values from records without them.
    flagged_by: tuple[str, ...] = ()
    #: Flag (never silently resolve) two valid values that genuinely disagree.
    conflict: bool = False

    @field_validator("strategies")
    @classmethod
    def _well_ordered(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"a strategy is listed twice: {list(v)}")
        if "steward_override" in v and v[0] != "steward_override":
            raise ValueError("steward_override always wins: list it first or not at all")
        return v


class SurvivorshipRules(_Strict):
    entity_type: str
    default: AttributeRule
    attributes: dict[str, AttributeRule] = Field(default_factory=dict)

    def rule_for(self, attribute: str) -> AttributeRule:
        return self.attributes.get(attribute, self.default)


DEFAULT_RULE = AttributeRule(
    strategies=("steward_override", "source_trust", "most_frequent", "most_recent")
)


def parse_survivorship(entity_type: str, section: Any, where: str = "<rules>") -> SurvivorshipRules:
    """Validate a ``survivorship`` section (``{}`` or missing: the default chain for all)."""
    if entity_type not in STANDARDS:
        raise ConfigError(f"{where}: unknown entity type {entity_type!r}")
    section = section or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: survivorship must be a mapping")
    data = {"entity_type": entity_type, "default": DEFAULT_RULE, **section}
    try:
        rules = SurvivorshipRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"survivorship.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
    known = set(STANDARDS[entity_type].model_fields)
    unknown = sorted(set(rules.attributes) - known)
    if unknown:
        raise ConfigError(
            f"{where}: survivorship.attributes names unknown {entity_type} field(s) {unknown}"
        )
    return rules


def _rules_dir(rules_dir: str | Path | None) -> Path:
    if rules_dir is not None:
        return Path(rules_dir)
    from mdm.config import get_settings

    configured = get_settings().matching_rules_dir
    if configured.is_dir():
        return configured
    return Path(__file__).resolve().parents[3] / "matching_rules"


def load_survivorship(entity_type: str, rules_dir: str | Path | None = None) -> SurvivorshipRules:
    """The survivorship rules of ``entity_type`` from ``<rules_dir>/<entity_type>.yaml``."""
    path = _rules_dir(rules_dir) / f"{entity_type}.yaml"
    return _load_cached(str(path.resolve()), entity_type)


@lru_cache(maxsize=16)
def _load_cached(path: str, entity_type: str) -> SurvivorshipRules:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read survivorship rules ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a mapping")
    return parse_survivorship(entity_type, doc.get("survivorship"), path)
