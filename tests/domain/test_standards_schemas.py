"""The published JSON Schemas in ``schemas/`` must equal what the models generate."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, create_model
from typer.testing import CliRunner

from mdm.cli.main import app
from mdm.domain.standards import STANDARDS, Citizen, render_schema, schema_drift

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_published_schemas_match_models() -> None:
    assert schema_drift(SCHEMAS) == [], "run `mdm schemas export` and commit schemas/"


def test_drift_is_detected_when_a_model_changes() -> None:
    changed = create_model(
        "Citizen",
        __base__=Citizen,
        blood_type=(str | None, Field(default=None, description="Nhóm máu / Blood type")),
    )
    assert schema_drift(SCHEMAS, {**STANDARDS, "citizen": changed}) == ["citizen.schema.json"]


def test_render_is_deterministic_and_bilingual() -> None:
    text = render_schema("citizen")
    assert text == render_schema("citizen")
    assert text.endswith("}\n")
    assert '"$id": "urn:vn:mdm:standard:citizen"' in text
    assert "Số định danh cá nhân / Personal identification number (12 digits)" in text
    for model in STANDARDS.values():
        for name, info in model.model_fields.items():
            assert info.description and " / " in info.description, name


@pytest.mark.parametrize("entity", sorted(STANDARDS))
def test_cli_export_and_check(tmp_path: Path, entity: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{entity}.schema.json").read_text(encoding="utf-8") == render_schema(entity)
    assert (
        runner.invoke(app, ["schemas", "export", "--out", str(tmp_path), "--check"]).exit_code == 0
    )
    (tmp_path / f"{entity}.schema.json").write_text("{}\n", encoding="utf-8")
    failed = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path), "--check"])
    assert failed.exit_code == 1
