"""``mdm ingest``: migrate legacy provincial files into the registry."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import typer

from mdm.exceptions import MDMError

log = logging.getLogger("mdm.ingest")


def _resolve_mapping(value: str, base: Path) -> Path:
    candidate = Path(value)
    if candidate.is_absolute() and candidate.exists():
        return candidate
    for root in (base, Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / candidate).exists():
            return root / candidate
    from mdm.store.migrate import migrations_dir

    shipped = migrations_dir().parent / "schemas" / "mappings" / candidate.name
    if shipped.exists():
        return shipped
    raise typer.BadParameter(f"mapping file {value!r} not found (looked beside {base})")


def _manifest_jobs(manifest: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{manifest}: not a readable manifest ({exc})") from None
    files = doc.get("files") if isinstance(doc, dict) else doc
    if not isinstance(files, list) or not files:
        raise typer.BadParameter(f"{manifest}: no 'files' listed")
    base = manifest.resolve().parent
    jobs = []
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or "path" not in entry or "mapping" not in entry:
            raise typer.BadParameter(f"{manifest}: files[{i}] needs 'path' and 'mapping'")
        path = Path(entry["path"])
        jobs.append(
            {
                "path": path if path.is_absolute() else base / path,
                "mapping": _resolve_mapping(str(entry["mapping"]), base),
                "source": entry.get("source_system"),
                "encoding": entry.get("encoding"),
            }
        )
    return jobs


class _Reporter:
    """A progress bar with rate and ETA on a terminal; plain log lines otherwise."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and not quiet
        self.started = time.monotonic()
        self.last_line = 0.0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Reporter:
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9} rows/s"),
                TextColumn("rejects {task.fields[rejected]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=None, rate="-", rejected=0)
        return self

    def __call__(self, done: int, total: int, rejected: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        if self._progress is not None:
            self._progress.update(
                self._task, completed=done, total=total, rate=f"{rate:,.0f}", rejected=rejected
            )
        elif not self.quiet and time.monotonic() - self.last_line >= 5:
            self.last_line = time.monotonic()
            eta = (total - done) / rate if rate > 0 else 0
            typer.echo(
                f"{self.label}: {done:,} rows ({rate:,.0f} rows/s, rejects {rejected:,}, "
                f"ETA {eta:,.0f}s)",
                err=True,
            )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def ingest(
    paths: list[Path] = typer.Argument(None, help="Input files (CSV, JSON Lines, Parquet)"),
    source: str | None = typer.Option(None, "--source", help="Source system name"),
    mapping: Path | None = typer.Option(None, "--mapping", help="Source mapping YAML"),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Ingest every file a manifest lists"
    ),
    encoding: str | None = typer.Option(None, "--encoding", help="Force the CSV encoding"),
    full_snapshot: bool = typer.Option(
        False, "--full-snapshot", help="Withdraw the source's records missing from the file"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object"),
    report_dir: Path | None = typer.Option(
        None, "--report-dir", help="Where summaries and rejects files go (default: var/ingest)"
    ),
    chunk_rows: int = typer.Option(5000, "--chunk-rows", min=1, help="Rows per transaction"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Standardizing processes (default: by file size and CPUs)"
    ),
) -> None:
    """Ingest legacy files: every row becomes a source record or a reject with reasons.

    Idempotent (the same file twice adds nothing) and resumable (run the same
    command again after a crash).
    """
    from mdm.config import get_settings
    from mdm.ingest.mapping import load_mapping
    from mdm.services.ingest import abandon_run, completed_summary, ingest_file
    from mdm.store.db import get_engine
    from mdm.store.migrate import upgrade

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if manifest is not None:
        if paths or mapping is not None:
            raise typer.BadParameter("give either --manifest or --mapping with files, not both")
        jobs = _manifest_jobs(manifest)
    else:
        if mapping is None or not paths:
            raise typer.BadParameter("give --mapping FILE and at least one PATH (or --manifest)")
        jobs = [
            {"path": p, "mapping": mapping, "source": source, "encoding": encoding} for p in paths
        ]

    upgrade(settings.database_url)
    engine = get_engine()
    out_dir = report_dir or settings.data_dir / "ingest"
    started = time.monotonic()
    summaries: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    planned = _open_runs(engine, jobs, source, full_snapshot) if len(jobs) > 1 else {}
    for i, job in enumerate(jobs):
        plan = planned.get(i)
        try:
            loaded = load_mapping(job["mapping"])
            if plan is not None and plan.done:  # finished before a crash: not read again
                summary = completed_summary(
                    engine,
                    loaded,
                    Path(job["path"]),
                    plan.run_id,
                    source_name=source or job["source"] or loaded.source_system or "",
                    encoding=encoding or job["encoding"],
                    report_dir=out_dir,
                )
            else:
                with _Reporter(Path(job["path"]).name, quiet=as_json) as reporter:
                    summary = ingest_file(
                        engine,
                        loaded,
                        Path(job["path"]),
                        source_name=source or job["source"],
                        encoding=encoding or job["encoding"],
                        full_snapshot=full_snapshot,
                        report_dir=out_dir,
                        chunk_rows=chunk_rows,
                        progress=reporter,
                        workers=workers,
                    )
        except MDMError as exc:
            if plan is not None and not plan.done:
                abandon_run(engine, plan.run_id, str(exc.detail))
            failures.append({"file": str(job["path"]), "error": str(exc.detail)})
            if not as_json:
                typer.echo(f"error: {exc.detail}", err=True)
            continue
        summaries.append(summary.as_dict())
        if not as_json:
            _print_summary(summary.as_dict())

    total: dict[str, Any] = {
        k: 0 for k in ("read", "new", "changed", "unchanged", "rejected", "withdrawn")
    }
    reasons: dict[str, int] = {}
    for s in summaries:
        for k in total:
            total[k] += s[k]
        for code, n in s["rejected_by_reason"].items():
            reasons[code] = reasons.get(code, 0) + n
    total["rejected_by_reason"] = dict(sorted(reasons.items()))
    total["seconds"] = round(time.monotonic() - started, 3)
    if as_json:
        typer.echo(
            json.dumps({**total, "files": summaries, "failed": failures}, ensure_ascii=False)
        )
    elif len(jobs) > 1:
        typer.echo("")
        _print_summary({"file": f"total ({len(summaries)} files)", **total})
    if failures:
        raise typer.Exit(1)


def _open_runs(
    engine: Any, jobs: list[dict[str, Any]], source: str | None, full_snapshot: bool
) -> dict[int, Any]:
    """The runs of a command of several files, opened together so that the same
    command run again after a crash resumes it instead of reading finished files again
    (:func:`mdm.services.ingest.open_runs`). Files that cannot be opened are left out
    (they fail in the loop, with their message)."""
    from mdm.ingest.mapping import load_mapping
    from mdm.services.ingest import open_runs

    ready: list[tuple[int, Any, Path, str]] = []
    for i, job in enumerate(jobs):
        path = Path(job["path"])
        try:
            loaded = load_mapping(job["mapping"])
        except MDMError:
            continue
        name = source or job["source"] or loaded.source_system
        if name and path.is_file():
            ready.append((i, loaded, path, name))
    runs = open_runs(engine, [(m, p, n) for _i, m, p, n in ready], full_snapshot=full_snapshot)
    return {i: run for (i, *_rest), run in zip(ready, runs, strict=True)}


def _print_summary(s: dict[str, Any]) -> None:
    reasons = ", ".join(f"{k}: {v}" for k, v in s.get("rejected_by_reason", {}).items()) or "-"
    lines = [
        f"{s['file']}"
        + (f"  [{s['source_system']} / {s['entity_type']}]" if "source_system" in s else ""),
        f"  read {s['read']:,}  new {s['new']:,}  changed {s['changed']:,}  "
        f"unchanged {s['unchanged']:,}  rejected {s['rejected']:,}  withdrawn {s['withdrawn']:,}  "
        f"in {s['seconds']:.1f}s",
        f"  rejected by reason: {reasons}",
    ]
    if s.get("resumed_from_row"):
        lines.append(f"  resumed after row {s['resumed_from_row']:,}")
    if s.get("rejects_file"):
        lines.append(f"  rejects: {s['rejects_file']}")
    typer.echo("\n".join(lines))
