"""What the matching service's parts share: where a model lives and how it is
loaded, the backends, the DuckDB connection they compute in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from mdm.exceptions import BadRequest, ConfigError
from mdm.matching import MatchingRules, MatchModel
from mdm.matching.rules import default_rules_dir

Backend = Literal["duckdb", "spark"]
BACKENDS: tuple[str, ...] = ("duckdb", "spark")
ACTOR = "system:match"
#: which accepted edge or candidate wins when several put a record somewhere
METHOD_RANK = {"steward": 3, "rule": 2, "model": 1}


def model_path(entity_type: str, rules_dir: Path | None = None) -> Path:
    return (rules_dir or default_rules_dir()) / "models" / f"{entity_type}.json"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise BadRequest(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def no_model(path: Path, entity_type: str) -> ConfigError:
    return ConfigError(
        f"{path}: no trained model for {entity_type!r}; "
        f"run `mdm match train --entity {entity_type}` first"
    )


def load_model(rules: MatchingRules, rules_dir: Path | None) -> tuple[MatchModel, Path]:
    path = model_path(rules.entity_type, rules_dir)
    if not path.exists():
        raise no_model(path, rules.entity_type)
    return MatchModel.load(path, rules), path


def duckdb_connection(threads: int | None, memory_limit: str | None) -> Any:
    from mdm.matching.tables import connect

    return connect(threads, memory_limit)
