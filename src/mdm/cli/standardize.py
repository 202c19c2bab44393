"""``mdm standardize``: standardize a JSON Lines file, one output line per input line.

Streams: one line in, one line out, constant memory. A line that is not a JSON
object still produces an output line (with an error issue naming the line number),
so the output always lines up with the input and nothing is silently dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import typer

from mdm.standardize.issues import error
from mdm.standardize.records import ENTITY_FIELDS, standardize_record


def _line_result(entity: str, line: str, number: int) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        issue = error("record", "invalid_json", f"line {number}: not valid JSON ({exc})")
        return {"standardized": {}, "issues": [issue.as_dict()]}
    if not isinstance(raw, dict):
        issue = error("record", "invalid_json", f"line {number}: not a JSON object")
        return {"standardized": {}, "issues": [issue.as_dict()]}
    result = standardize_record(entity, raw)
    return {"standardized": result.standardized, "issues": [i.as_dict() for i in result.issues]}


def _run(entity: str, source: TextIO, sink: TextIO) -> tuple[int, int]:
    lines = rejected = 0
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        lines += 1
        out = _line_result(entity, line, number)
        if any(i["severity"] == "error" for i in out["issues"]):
            rejected += 1
        sink.write(json.dumps(out, ensure_ascii=False, sort_keys=True))
        sink.write("\n")
    return lines, rejected


def standardize(
    file: Path = typer.Argument(..., help="JSON Lines input ('-' for standard input)."),
    entity: str = typer.Option(..., "--entity", "-e", help="citizen | organization | dossier"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default stdout)."),
) -> None:
    """Standardize raw records (keys = standard field names, values = raw strings)."""
    if entity not in ENTITY_FIELDS:
        typer.echo(f"unknown entity {entity!r}; choose {', '.join(ENTITY_FIELDS)}", err=True)
        raise typer.Exit(2)
    source: TextIO = (
        sys.stdin if str(file) == "-" else file.open(encoding="utf-8", errors="replace", newline="")
    )
    sink: TextIO = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        lines, rejected = _run(entity, source, sink)
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    typer.echo(f"{lines} records, {rejected} rejected", err=True)
