"""Structure counts for ``src/mdm``: where the SQL lives, and how big things are.

An AST walk over every ``.py`` file under ``src/mdm`` (no imports of the package),
printing:

(a) SQL statement builders outside ``src/mdm/store``, total and per module. A
    builder is a call to ``select``, ``insert``, ``update``, ``delete`` or ``text``
    that resolves to SQLAlchemy through the module's own imports:

    - a bare name imported from ``sqlalchemy`` or a ``sqlalchemy.*`` module,
      whatever its local alias (``pg_insert``, ``sqlite_insert``, ``sa_text``...);
    - an attribute of a module alias bound to ``sqlalchemy`` or one of its
      submodules (``sa.select``, ``postgresql.insert``...);
    - the ``Table`` methods ``.select()/.insert()/.update()/.delete()`` called on
      ``X.__table__`` or on a name bound to ``cast(Table, X.__table__)`` or
      ``X.__table__``.

    Each call counts once (``select(...).where(...)`` is one builder). Separately,
    driver-level SQL: ``exec_driver_sql(...)`` calls and ``execute``/
    ``executemany``/``copy`` calls on a DB-API cursor (a receiver named ``cur``
    or ``cursor``) or with a string literal as first argument.
(b) the largest module by lines (all of ``src/mdm``);
(c) the longest function or method (qualified name and lines, decorators
    excluded), and the number of functions over 120 lines;
(d) the number of ``cast(Table, X.__table__)`` aliases (``typing.cast`` under any
    local name, assigned to a name or attribute), total and per file.

Usage: .venv/bin/python scripts/structure_counts.py [--json] [--root src/mdm]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

BUILDERS = {"select", "insert", "update", "delete", "text"}
TABLE_METHODS = {"select", "insert", "update", "delete"}
CURSOR_NAMES = {"cur", "cursor"}
LONG_FUNCTION = 120


def _is_table_attr(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "__table__"


def _is_cast_table(node: ast.expr, cast_names: set[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in cast_names
        and len(node.args) == 2
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "Table"
        and _is_table_attr(node.args[1])
    )


class _Module:
    def __init__(self, tree: ast.Module) -> None:
        self.names: dict[str, str] = {}  # local name -> sqlalchemy object name
        self.modules: set[str] = set()  # local names bound to sqlalchemy modules
        self.tables: set[str] = set()  # names bound to a Table
        self.casts = 0
        cast_names = {
            a.asname or a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "typing"
            for a in node.names
            if a.name == "cast"
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "sqlalchemy" or a.name.startswith("sqlalchemy."):
                        self.modules.add(a.asname or a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "sqlalchemy" or node.module.startswith("sqlalchemy."):
                    for a in node.names:
                        local = a.asname or a.name
                        if node.module == "sqlalchemy.dialects" or a.name in {
                            "postgresql",
                            "sqlite",
                        }:
                            self.modules.add(local)
                        else:
                            self.names[local] = a.name
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                value = node.value
                if value is None:
                    continue
                if _is_cast_table(value, cast_names):
                    self.casts += 1
                if _is_cast_table(value, cast_names) or _is_table_attr(value):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            self.tables.add(t.id)
                        elif isinstance(t, ast.Attribute):
                            self.tables.add(t.attr)

    def is_builder(self, call: ast.Call) -> bool:
        f = call.func
        if isinstance(f, ast.Name):
            return self.names.get(f.id) in BUILDERS
        if not isinstance(f, ast.Attribute):
            return False
        base = f.value
        if f.attr in BUILDERS and isinstance(base, ast.Name) and base.id in self.modules:
            return True
        if f.attr in TABLE_METHODS:
            if _is_table_attr(base):
                return True
            if isinstance(base, ast.Name) and base.id in self.tables:
                return True
            if isinstance(base, ast.Attribute) and base.attr in self.tables:
                return True
        return False

    @staticmethod
    def is_driver_sql(call: ast.Call) -> bool:
        f = call.func
        if not isinstance(f, ast.Attribute):
            return False
        if f.attr == "exec_driver_sql":
            return True
        if f.attr not in {"execute", "executemany", "copy"}:
            return False
        if isinstance(f.value, ast.Name) and f.value.id in CURSOR_NAMES:
            return True
        first = call.args[0] if call.args else None
        return isinstance(first, ast.JoinedStr) or (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        )


def _functions(tree: ast.Module) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                out.append((name, end - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def measure(root: Path) -> dict[str, Any]:
    builders: Counter[str] = Counter()
    driver: Counter[str] = Counter()
    casts: Counter[str] = Counter()
    lines: dict[str, int] = {}
    functions: list[tuple[str, int]] = []
    base = root.parent.parent if root.parent.name == "src" else root.parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(base).as_posix()
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=rel)
        lines[rel] = len(source.splitlines())
        mod = _Module(tree)
        if mod.casts:
            casts[rel] = mod.casts
        module = rel.removeprefix("src/mdm/").removesuffix(".py").replace("/", ".")
        functions += [(f"{module}:{n}", k) for n, k in _functions(tree)]
        if rel.startswith("src/mdm/store/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                if mod.is_builder(node):
                    builders[rel] += 1
                elif mod.is_driver_sql(node):
                    driver[rel] += 1
    largest = max(lines.items(), key=lambda kv: kv[1])
    longest = max(functions, key=lambda f: f[1])
    by_package: Counter[str] = Counter()
    for rel, n in builders.items():
        by_package[rel.removeprefix("src/mdm/").split("/")[0]] += n
    return {
        "builders_outside_store": sum(builders.values()),
        "builders_by_package": dict(by_package.most_common()),
        "builders_by_module": dict(builders.most_common()),
        "driver_sql_outside_store": sum(driver.values()),
        "driver_sql_by_module": dict(driver.most_common()),
        "largest_module": {"path": largest[0], "lines": largest[1]},
        "longest_function": {"name": longest[0], "lines": longest[1]},
        "functions_over_120_lines": sum(1 for _, k in functions if k > LONG_FUNCTION),
        "functions_over_120": sorted(
            ({"name": n, "lines": k} for n, k in functions if k > LONG_FUNCTION),
            key=lambda f: -int(f["lines"]),
        ),
        "cast_table_aliases": sum(casts.values()),
        "cast_table_aliases_by_file": dict(casts.most_common()),
    }


def render(m: dict[str, Any]) -> str:
    out = [f"(a) SQL statement builders outside src/mdm/store: {m['builders_outside_store']}"]
    out += [f"      {pkg:<40} {n:>4}" for pkg, n in m["builders_by_package"].items()]
    out.append("    per module:")
    out += [f"      {mod:<40} {n:>4}" for mod, n in m["builders_by_module"].items()]
    out.append(f"    driver-level SQL calls outside src/mdm/store: {m['driver_sql_outside_store']}")
    out += [f"      {mod:<40} {n:>4}" for mod, n in m["driver_sql_by_module"].items()]
    lm = m["largest_module"]
    out.append(f"(b) largest module: {lm['path']} ({lm['lines']} lines)")
    lf = m["longest_function"]
    out.append(f"(c) longest function: {lf['name']} ({lf['lines']} lines)")
    out.append(f"    functions over {LONG_FUNCTION} lines: {m['functions_over_120_lines']}")
    out += [f"      {f['name']:<60} {f['lines']:>4}" for f in m["functions_over_120"]]
    out.append(f"(d) cast(Table, X.__table__) aliases: {m['cast_table_aliases']}")
    out += [f"      {p:<40} {n:>4}" for p, n in m["cast_table_aliases_by_file"].items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).parent.parent / "src/mdm")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    m = measure(args.root.resolve())
    print(json.dumps(m, indent=2) if args.json else render(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
