from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mdm.exceptions import ConfigError
from mdm.matching.rules import load_rules, load_rules_file, parse_rules


def _citizen() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "matching_rules" / "citizen.yaml").read_text()
    )
    return data


@pytest.mark.parametrize("entity", ["citizen", "organization", "dossier"])
def test_shipped_rules_load(entity: str) -> None:
    rules = load_rules(entity)
    assert rules.entity_type == entity
    assert rules.thresholds.review_weight < rules.thresholds.auto_link_weight
    assert rules.splink_settings()["comparisons"]


def test_survivorship_section_is_preserved() -> None:
    data = _citizen()
    data["survivorship"] = {"full_name": {"strategy": "most_trusted"}}
    assert parse_rules(data).survivorship == {"full_name": {"strategy": "most_trusted"}}


def test_unknown_top_level_section_is_rejected() -> None:
    data = _citizen() | {"mystery": {}}
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown top-level section.*mystery"):
        parse_rules(data, "x.yaml")


def test_error_names_file_and_key(tmp_path: Path) -> None:
    data = _citizen()
    data["comparisons"][2]["levels"][1]["when"] = [{"jaro_winkler": "full_name_fold"}]
    path = tmp_path / "citizen.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ConfigError) as err:
        load_rules_file(path)
    assert str(path) in str(err.value)
    assert "comparisons[2].levels[1].when[0]" in str(err.value)
    assert "min" in str(err.value)


def test_unknown_column_is_named() -> None:
    data = _citizen()
    data["blocking"]["prediction"].append(["no_such_column"])
    with pytest.raises(ConfigError, match=r"blocking\.prediction\[\d+\]: unknown feature column"):
        parse_rules(data, "citizen.yaml")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("thresholds", "review"), 0.999, "below auto_link"),
        (("thresholds", "auto_link"), 1.5, "probability"),
        (("prior", "recall"), 0, "greater than 0"),
    ],
)
def test_invalid_values(path: tuple[str, str], value: float, message: str) -> None:
    data = _citizen()
    data[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=message):
        parse_rules(data, "citizen.yaml")


def test_level_shape_errors() -> None:
    data = _citizen()
    data["comparisons"][0]["levels"] = data["comparisons"][0]["levels"][:-1]  # no else
    with pytest.raises(ConfigError, match="last level must be 'else: true'"):
        parse_rules(data)
    data = _citizen()
    data["comparisons"][0]["levels"][1]["when"].append({"exact": "sex", "cross": ["a", "b"]})
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_rules(data)


def test_weight_unit() -> None:
    data = _citizen()
    data["thresholds"] = {"unit": "weight", "auto_link": 10, "review": 2}
    rules = parse_rules(data)
    assert rules.thresholds.auto_link_weight == 10
