"""The import contracts (pyproject.toml, ``[tool.importlinter]``) catch a broken layer.

Each case copies ``src/mdm`` into a temporary directory, adds one forbidden import to
the copy and runs ``lint-imports`` on the copy (first on ``PYTHONPATH``, the
project's contracts as its configuration): the contract that import breaks must be
reported broken. The untouched copy keeps every contract.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

PURE = "Pure packages import no DB, web or Splink code and no upper layer"
LAYERS = "Layers: edges -> services -> store -> core"
EDGES = "Edges reach the repositories and models through the services"
SQL = "Only mdm.store imports SQLAlchemy, the Postgres driver and Alembic"
SPLINK = "Only mdm.matching imports Splink and DuckDB"


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "mdm", src / "mdm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return src


def _lint(tmp_path: Path, src: Path) -> tuple[int, str, dict[str, str]]:
    """``lint-imports`` on the copy: exit code, output and each contract's verdict."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    verdicts = dict(re.findall(r"^(.+?) (KEPT|BROKEN)\b", out, flags=re.MULTILINE))
    return proc.returncode, out, verdicts


def test_the_untouched_copy_keeps_every_contract(tmp_path: Path) -> None:
    code, out, verdicts = _lint(tmp_path, _copy(tmp_path))
    assert code == 0, out
    assert verdicts == {name: "KEPT" for name in (LAYERS, PURE, EDGES, SQL, SPLINK)}, out


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("domain/__init__.py", "import sqlalchemy", PURE),
        ("standardize/text.py", "import mdm.services", PURE),
        ("survivorship/rules.py", "import splink", PURE),
        ("store/db.py", "import mdm.services", LAYERS),
        ("services/units.py", "import mdm.api", LAYERS),
        ("matching/rules.py", "import mdm.store", LAYERS),
        ("api/records.py", "import mdm.store.repositories.entities", EDGES),
        ("services/units.py", "import sqlalchemy", SQL),
        ("cli/db.py", "import alembic", SQL),
        ("api/records.py", "import psycopg", SQL),
        ("services/units.py", "import duckdb", SPLINK),
        ("store/db.py", "import splink", SPLINK),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    src = _copy(tmp_path)
    path = src / "mdm" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    code, out, verdicts = _lint(tmp_path, src)
    assert code != 0, out
    assert verdicts.get(contract) == "BROKEN", out
    assert line.removeprefix("import ") in out, out
