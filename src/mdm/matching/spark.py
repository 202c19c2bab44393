"""Batch scoring on Spark: the same model, run by Splink's ``SparkAPI``.

``mdm match run --backend spark`` changes one thing in the batch path: which engine
generates the blocked pairs and scores them. Everything else (the trained model's
m/u and prior, the blocking rules, the comparisons, the term-frequency tables, the
thresholds, the guards, the deterministic rules, the constrained clustering and the
store writes) is the code the DuckDB backend runs. :func:`spark_predictions`:

1. the feature rows and the term-frequency tables, computed once by DuckDB with
   Splink's formula, are written as Parquet to a staging directory;
2. Spark reads them, and Splink's Spark backend predicts with the trained settings
   translated to Spark SQL (:func:`spark_settings`: identical m/u and levels, only
   quoting and function names differ), keeping pairs at or above the review weight;
3. the kept pairs (ids, match weight and probability, per-comparison weights) are
   written back as Parquet, which the batch path reads into DuckDB.

String similarities must be DuckDB's to the last bit, or a pair sitting on a
threshold would change level: Spark's ``levenshtein`` and the
``damerau_levenshtein`` of Splink's jar are (checked on 90,000 name and date
pairs), but the jar's Jaro and Jaro-Winkler count transpositions differently (397
of those pairs fall on the two sides of 0.94, 471 of 0.85), so Jaro and Jaro-Winkler run
as Python UDFs on rapidfuzz, which returns DuckDB's values (as in the incremental
scorer). Executors therefore need Python with ``rapidfuzz`` only if a rules file
uses ``jaro``/``jaro_winkler`` (the citizen rules do), and Splink's jar always
(shipped with the ``spark.jars`` setting from the driver, nothing to install).

The staging directory must be one path that the driver and every executor see (a
shared mount: NFS, EFS, Lustre) unless Spark runs in local mode, where a temporary
directory is used. See docs/spark.md.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdm.exceptions import ConfigError
from mdm.matching.linker import THRESHOLDS_KEY
from mdm.matching.rules import SPARK_JARO, SPARK_JARO_WINKLER, MatchingRules

log = logging.getLogger(__name__)

SPARK_MASTER_ENV = "MDM_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
#: Spark settings for a local session unless the caller sets them (a cluster's are
#: the cluster's business): modest driver memory, no web UI, few shuffle partitions.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.driver.memory": "2g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
}


class SparkUnavailable(ConfigError):
    """pyspark is not installed, or no Java runtime was found, or Spark did not start."""

    code = "spark_unavailable"


@dataclass(frozen=True)
class SparkOptions:
    """Where and how to run: ``--spark-master``, ``--spark-conf``, ``--spark-staging``."""

    master: str = DEFAULT_MASTER
    conf: Mapping[str, str] = field(default_factory=dict)
    #: directory shared by the driver and the executors (local mode: a temporary one)
    staging_dir: str | None = None
    app_name: str = "mdm-match"

    @property
    def local(self) -> bool:
        return self.master == "local" or self.master.startswith("local[")


def default_master() -> str:
    return os.environ.get(SPARK_MASTER_ENV) or DEFAULT_MASTER


def parse_conf(items: Iterable[str]) -> dict[str, str]:
    """``["spark.executor.memory=8g", ...]`` → a dict; refuses items without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--spark-conf {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def check_staging(options: SparkOptions) -> None:
    """A cluster needs a staging directory its executors see at the same path."""
    if not options.local and not options.staging_dir:
        raise ConfigError(
            f"--spark-master {options.master}: give --spark-staging DIR, a directory "
            "mounted at the same path on this machine and on every executor (see docs/spark.md)"
        )
    if options.staging_dir and not Path(options.staging_dir).is_dir():
        raise ConfigError(f"--spark-staging {options.staging_dir}: not a directory")


def require_spark() -> None:
    """Fail early and clearly when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            "the spark backend needs pyspark: pip install 'mdm[spark]' (or use --backend duckdb)"
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home) / "bin" / "java" if java_home else None
    if not (java is not None and java.exists()) and shutil.which("java") is None:
        raise SparkUnavailable(
            "the spark backend needs a Java runtime (17 or later): install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )


def similarity_jar() -> str:
    """Splink's jar of Spark SQL similarity functions for the installed Spark."""
    from splink.backends.spark import similarity_jar_location

    return str(similarity_jar_location())


def start_session(options: SparkOptions) -> Any:
    """A SparkSession for ``options`` with Splink's jar on the classpath.

    In local mode the Python workers are this interpreter (they run the rapidfuzz
    UDFs), and :data:`LOCAL_DEFAULTS` apply unless ``options.conf`` overrides them.
    """
    require_spark()
    from pyspark.sql import SparkSession

    conf: dict[str, str] = {}
    if options.local:
        conf.update(LOCAL_DEFAULTS)
        # the Python workers must be this interpreter (same minor version, rapidfuzz);
        # pyspark takes the workers' executable from the driver's environment
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf.update(options.conf)
    jars = [similarity_jar(), *(j for j in conf.get("spark.jars", "").split(",") if j)]
    conf["spark.jars"] = ",".join(dict.fromkeys(jars))
    builder = SparkSession.builder.master(options.master).appName(options.app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # JAVA_GATEWAY_EXITED, unreachable master, bad conf
        raise SparkUnavailable(f"Spark did not start on {options.master}: {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


def register_functions(spark: Any) -> None:
    """The SQL functions the translated comparison levels call (see module docstring)."""
    from pyspark.sql.types import DoubleType

    try:
        spark.udf.registerJavaFunction(
            "damerau_levenshtein", "uk.gov.moj.dash.linkage.LevDamerauDistance", DoubleType()
        )
    except Exception as exc:
        raise SparkUnavailable(
            f"Splink's similarity jar is not on the Spark classpath (spark.jars): {exc}"
        ) from exc
    spark.udf.register(SPARK_JARO_WINKLER, _jaro_winkler, DoubleType())
    spark.udf.register(SPARK_JARO, _jaro, DoubleType())


def _jaro_winkler(a: str | None, b: str | None) -> float | None:
    from rapidfuzz.distance import JaroWinkler

    if a is None or b is None:
        return None
    return 0.0 if not a or not b else float(JaroWinkler.similarity(a, b))  # DuckDB: empty → 0


def _jaro(a: str | None, b: str | None) -> float | None:
    from rapidfuzz.distance import Jaro

    if a is None or b is None:
        return None
    return 0.0 if not a or not b else float(Jaro.similarity(a, b))


def spark_settings(rules: MatchingRules, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The trained settings with every SQL fragment in Spark SQL, nothing else changed.

    Comparison levels: the saved SQL must be the rules file's (the model refuses to
    load otherwise), so each level's condition is replaced by the same level
    generated for Spark; m, u and the TF settings stay as trained. Blocking rules
    are transpiled from the saved ones (plain equalities) with sqlglot.
    """
    import sqlglot

    out = copy.deepcopy({k: v for k, v in settings.items() if k != THRESHOLDS_KEY})
    out["sql_dialect"] = "spark"
    by_name = {c.name: c for c in rules.comparisons}
    for comp in out["comparisons"]:
        levels = by_name[comp["output_column_name"]].levels
        saved = comp["comparison_levels"]
        if len(levels) != len(saved):
            raise ConfigError(f"comparison {comp['output_column_name']!r} differs; retrain")
        for level, stored in zip(levels, saved, strict=True):
            if stored.get("sql_condition") != level.sql():
                raise ConfigError(
                    f"comparison {comp['output_column_name']!r}: the saved SQL differs "
                    "from the rules file; retrain"
                )
            stored["sql_condition"] = level.sql("spark")
    blocking = []
    for rule in out.get("blocking_rules_to_generate_predictions", []):
        sql = rule["blocking_rule"] if isinstance(rule, dict) else str(rule)
        spark_sql = sqlglot.transpile(sql, read="duckdb", write="spark")[0]
        blocking.append({"blocking_rule": spark_sql, "sql_dialect": "spark"})
    out["blocking_rules_to_generate_predictions"] = blocking
    return out


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def spark_predictions(
    spark: Any,
    rules: MatchingRules,
    settings: Mapping[str, Any],
    features: Path,
    tf_tables: Mapping[str, Path],
    threshold_match_weight: float,
    out_dir: Path,
) -> Path:
    """Predict with Splink on Spark; returns the directory of Parquet files holding
    ``unique_id_l, unique_id_r, match_weight, match_probability, mw_<c>[, mw_tf_adj_<c>]``
    for every blocked pair at or above ``threshold_match_weight``."""
    from splink import Linker
    from splink.backends.spark import SparkAPI

    register_functions(spark)
    checkpoints = out_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    spark.sparkContext.setCheckpointDir(_uri(checkpoints))
    db_api = SparkAPI(  # type: ignore[no-untyped-call]
        spark_session=spark, break_lineage_method="parquet", register_udfs_automatically=False
    )
    frame = spark.read.parquet(_uri(features))
    linker = Linker(db_api.register(frame), spark_settings(rules, settings), log_level=None)
    for column, path in tf_tables.items():
        lookup = db_api.register(spark.read.parquet(_uri(path)))
        linker.table_management.register_term_frequency_lookup(lookup, column)
    predictions = linker.inference.predict(
        threshold_match_weight=threshold_match_weight, warning_mode="never"
    )
    tf_comps = {c.name for c in rules.comparisons if any(lv.tf for lv in c.levels)}
    columns = ["unique_id_l", "unique_id_r", "match_weight", "match_probability"]
    for comp in rules.comparisons:
        columns.append(f"mw_{comp.name}")
        if comp.name in tf_comps:
            columns.append(f"mw_tf_adj_{comp.name}")
    target = out_dir / "predictions"
    spark.table(predictions.physical_name).select(*columns).write.mode("overwrite").parquet(
        _uri(target)
    )
    predictions.drop_table_from_database_and_remove_from_cache()
    return target
