""":func:`train_from_store`: the Fellegi-Sunter model trained on the store's active
records and saved beside the rules."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mdm.exceptions import BadRequest
from mdm.matching import MatchingRules, TrainingReport, load_rules, train
from mdm.services.matching.common import duckdb_connection, file_sha256, model_path
from mdm.services.matching.features import write_features
from mdm.store.db import Engine
from mdm.store.repositories.matching import finish_run, start_run


def train_from_store(
    engine: Engine,
    entity_type: str,
    *,
    rules_dir: Path | None = None,
    rules: MatchingRules | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    save: bool = True,
) -> TrainingReport:
    """Train on the active records of ``entity_type`` and save the model.

    The active records' current standardized versions are streamed out of the store
    (server-side cursor) into feature rows, in bounded batches written to parquet in
    a temporary directory; Splink trains on DuckDB. The feature pass also brings the
    stored candidate index up to date (as a batch run does), so the run that
    follows reuses those feature rows.

    The model is written to ``<rules dir>/models/<entity>.json`` only after
    training succeeded, atomically (a reader never sees half a file).
    """
    rules = rules or load_rules(entity_type, rules_dir)
    run_id = start_run(engine, entity_type, "train", "duckdb")
    try:
        with tempfile.TemporaryDirectory(prefix="mdm-train-") as tmp:
            parquet = Path(tmp) / "features.parquet"
            feature_pass = write_features(engine, entity_type, rules, parquet, persist=True)
            if not feature_pass.record_ids:
                raise BadRequest(f"no active {entity_type} records to train on; ingest first")
            con = duckdb_connection(threads, memory_limit)
            try:
                trained = train(rules, str(parquet), con=con)
            finally:
                con.close()
        report = trained.report
        report.step_seconds = {"read_features": feature_pass.seconds, **report.step_seconds}
        digest = None
        if save:
            target = model_path(entity_type, rules_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_target = target.with_suffix(".json.tmp")
            trained.save_model(tmp_target)
            tmp_target.replace(target)
            digest = file_sha256(target)
        finish_run(
            engine,
            run_id,
            "completed",
            model_hash=digest,
            counts={
                "records": report.records,
                "pairs_per_prediction_rule": report.pairs_per_prediction_rule,
                "pairs_per_training_rule": report.pairs_per_training_rule,
                "probability_two_random_records_match": (
                    report.probability_two_random_records_match
                ),
                "warnings": report.warnings,
            },
        )
        return report
    except BaseException as exc:
        finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
