"""Survivorship: which value of the linked records becomes the golden value, and why.

Pure (no database, web or Splink): :func:`build_golden` is a function of the linked
records, the rules (``matching_rules/E.yaml`` ``survivorship:``) and steward overrides.
"""

from mdm.domain.canonical_json import canonical_json
from mdm.survivorship.engine import (
    GoldenRecord,
    RecordInput,
    build_golden,
    changed_attributes,
    completeness,
)
from mdm.survivorship.rules import (
    STRATEGIES,
    AttributeRule,
    SurvivorshipRules,
    load_survivorship,
    parse_survivorship,
)

__all__ = [
    "STRATEGIES",
    "AttributeRule",
    "GoldenRecord",
    "RecordInput",
    "SurvivorshipRules",
    "build_golden",
    "canonical_json",
    "changed_attributes",
    "completeness",
    "load_survivorship",
    "parse_survivorship",
]
