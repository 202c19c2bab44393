"""Matching wired to the store: training, the batch run, and one record at a time.

* :mod:`.training`: :func:`train_from_store` trains the Fellegi-Sunter model with
  Splink on DuckDB on the active records' feature rows and saves it to
  ``matching_rules/models/<entity>.json``.
* :mod:`.batch`: :func:`run_batch` scores and clusters every active record of a
  type, queues the review band and hands the partition to the identity service.
* :mod:`.online`: :func:`match_one` decides for one record (the API's path) with
  the same model, term frequencies and rules; :func:`add_record_features` keeps the
  candidate index current between batch runs; the per-process model cache.
* :mod:`.features`: the feature pass both training and the batch run start with.

The SQL lives in :mod:`mdm.store.repositories.feature_index` (the candidate index
and term frequencies), :mod:`mdm.store.repositories.candidates` (the review queue)
and :mod:`mdm.store.repositories.matching` (the run log, stewards' decisions).
"""

from mdm.services.matching.batch import BatchSummary, run_batch
from mdm.services.matching.common import ACTOR, BACKENDS, Backend, model_path
from mdm.services.matching.features import feature_signature
from mdm.services.matching.online import (
    CandidateExplanation,
    MatchDecision,
    SqlCandidateSource,
    add_record_features,
    clear_cache,
    loaded_model,
    match_one,
    remove_record_features,
)
from mdm.services.matching.training import train_from_store
from mdm.store.repositories.candidates import review_band_records

__all__ = [
    "ACTOR",
    "BACKENDS",
    "Backend",
    "BatchSummary",
    "CandidateExplanation",
    "MatchDecision",
    "SqlCandidateSource",
    "add_record_features",
    "clear_cache",
    "feature_signature",
    "loaded_model",
    "match_one",
    "model_path",
    "remove_record_features",
    "review_band_records",
    "run_batch",
    "train_from_store",
]
