"""``mdm match``: train the model, deduplicate a whole entity type."""

from __future__ import annotations

import json
import logging
from typing import Any

import typer

from mdm.exceptions import MDMError

app = typer.Typer(help="Matching / Đối sánh bản ghi.", no_args_is_help=True)

_ENTITY_HELP = "Entity type: citizen, organization or dossier"


def _setup() -> Any:
    from mdm.config import get_settings
    from mdm.store.db import get_engine
    from mdm.store.migrate import upgrade

    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("splink").setLevel(logging.WARNING)
    upgrade(settings.database_url)
    return get_engine()


@app.command("train")
def train_cmd(
    entity: str = typer.Option(..., "--entity", help=_ENTITY_HELP),
    threads: int | None = typer.Option(None, "--threads", min=1, help="DuckDB threads"),
    memory_limit: str | None = typer.Option(None, "--memory-limit", help="DuckDB, e.g. 6GB"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
) -> None:
    """Train the Fellegi-Sunter model on the ingested records and save it to
    matching_rules/models/ENTITY.json."""
    from mdm.services.matching.common import model_path
    from mdm.services.matching.training import train_from_store

    engine = _setup()
    try:
        report = train_from_store(engine, entity, threads=threads, memory_limit=memory_limit)
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
        return
    typer.echo(
        f"trained {entity} on {report.records:,} records in {report.seconds:.1f}s "
        f"-> {model_path(entity)}"
    )
    typer.echo(
        f"prior (probability two random records match): "
        f"{report.probability_two_random_records_match:.3g}"
    )
    typer.echo("\npairs per blocking rule")
    for label, pairs in (
        ("prediction", report.pairs_per_prediction_rule),
        ("training (EM)", report.pairs_per_training_rule),
    ):
        for rule, n in pairs.items():
            typer.echo(f"  {label:<14} {rule:<40} {n:>14,}")
    typer.echo("\nm and u per comparison level")
    typer.echo(f"  {'comparison':<22} {'level':<52} {'m':>10} {'u':>10} {'weight':>8}")
    for lv in report.levels:
        if lv.m_probability is None and lv.u_probability is None:
            continue  # null levels carry no weight
        typer.echo(
            f"  {lv.comparison:<22} {lv.level[:52]:<52} {_p(lv.m_probability):>10} "
            f"{_p(lv.u_probability):>10} {lv.match_weight:>8.2f}"
        )
    derived = report.thresholds
    if derived:
        typer.echo(
            f"\nthresholds for precision target {derived['precision_target']} "
            f"and review load {derived['review_load']:.1%}:"
        )
        typer.echo(
            f"  auto-link at match probability {derived['auto_link']:.4f}: "
            f"{derived['linked_pairs']:,} pairs, expected precision "
            f"{derived['expected_precision']:.5f} "
            f"({derived['expected_false_links']:.1f} expected false links)"
        )
        typer.echo(
            f"  review band from {derived['review']:.4f}: "
            f"{derived['review_share']:.2%} of the records"
        )
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in report.step_seconds.items())
    typer.echo(f"\nsteps: {steps}")


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


@app.command("run")
def run_cmd(
    entity: str = typer.Option(..., "--entity", help=_ENTITY_HELP),
    backend: str = typer.Option(
        "duckdb",
        "--backend",
        help="duckdb, or spark: Splink on Spark (the spark extra, Java 17; docs/spark.md)",
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="DuckDB threads"),
    memory_limit: str | None = typer.Option(None, "--memory-limit", help="DuckDB, e.g. 6GB"),
    spark_master: str = typer.Option(
        "local[*]",
        "--spark-master",
        envvar="MDM_SPARK_MASTER",
        help="--backend spark: local[N], spark://host:7077, yarn, k8s://https://host:443",
    ),
    spark_conf: list[str] = typer.Option(
        [],
        "--spark-conf",
        help="--backend spark: a Spark setting key=value (repeatable), "
        "e.g. spark.executor.memory=8g",
    ),
    spark_staging: str | None = typer.Option(
        None,
        "--spark-staging",
        help="--backend spark: directory for the Parquet exchanged with Spark, at the same "
        "path on the executors (required unless local; default a temporary one)",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object"),
) -> None:
    """Deduplicate every active record of ENTITY: links, review candidates, new
    entities. Idempotent: a rerun on unchanged data changes nothing."""
    from mdm.matching.spark import SparkOptions, parse_conf
    from mdm.services.matching.batch import run_batch

    try:
        spark = SparkOptions(
            master=spark_master, conf=parse_conf(spark_conf), staging_dir=spark_staging
        )
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    engine = _setup()
    if backend == "spark":
        logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        summary = run_batch(
            engine,
            entity,
            backend,
            threads=threads,
            memory_limit=memory_limit,
            spark=spark,
        )
    except MDMError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    data = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, default=str))
        return
    links = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.links_by_method.items())) or "-"
    cands = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.candidates.items())) or "-"
    typer.echo(
        "\n".join(
            [
                f"match run {summary.run_id} [{entity}, {backend}] in {summary.seconds:.1f}s",
                f"  records {summary.records:,}  features written {summary.features_written:,}"
                f"  removed {summary.features_removed:,}"
                f"  reused {summary.features_reused:,}",
                f"  scored pairs {summary.scored_pairs:,}  clusters {summary.clusters:,} "
                f"({summary.records_in_clusters:,} records)  refused links "
                f"{summary.refused_links:,}",
                f"  links by method: {links}",
                f"  review candidates: {cands}  (records in review {summary.records_in_review:,})",
                "  identity: "
                + (
                    ", ".join(
                        f"{k.replace('_', ' ')} {v:,}"
                        for k, v in summary.identity.items()
                        if isinstance(v, int) and k != "groups"
                    )
                    or "-"
                )
                + ("  (term frequencies updated)" if summary.tf_changed else ""),
                "  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.step_seconds.items()),
            ]
        )
    )
