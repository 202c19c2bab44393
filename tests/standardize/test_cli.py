"""``mdm standardize``: one output line per input line, never crashing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mdm.cli.main import app


def test_standardize_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        json.dumps(
            {"full_name": "NguyÔn V¨n An", "date_of_birth": "12/05/1990", "phone": "01662345678"},
            ensure_ascii=False,
        ),
        "{not json",
        json.dumps({"date_of_birth": "1990"}),
        "",
        json.dumps(["a list"]),
        json.dumps({"full_name": "Lê Thị Hòa", "sex": "Nữ"}, ensure_ascii=False),
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["standardize", "--entity", "citizen", str(src), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5  # the blank line is not a record
    assert rows[0]["standardized"] == {
        "full_name": "Nguyễn Văn An",
        "date_of_birth": "1990-05-12",
        "phone": "+84362345678",
    }
    assert rows[1]["issues"][0]["code"] == "invalid_json"
    assert "line 2" in rows[1]["issues"][0]["message"]
    assert any(i["code"] == "name_empty" for i in rows[2]["issues"])
    assert rows[3]["issues"][0]["severity"] == "error"
    assert rows[4]["standardized"]["full_name"] == "Lê Thị Hoà"


def test_standardize_stdout_and_bad_entity(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"dossier_code": "HS-1"}) + "\n", encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["standardize", "--entity", "dossier", str(src)])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout.splitlines()[0])["standardized"] == {"dossier_code": "HS-1"}
    bad = runner.invoke(app, ["standardize", "--entity", "spaceship", str(src)])
    assert bad.exit_code == 2
