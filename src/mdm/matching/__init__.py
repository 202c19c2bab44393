"""Matching: the only package that imports Splink.

Batch: :func:`train` a model from the rules file, :func:`predict_and_cluster` a
whole registry. Incremental: :class:`IncrementalMatcher` scores one record against
candidates fetched by :func:`blocking_keys`, with the same weights as Splink.
"""

from mdm.matching.batch import BatchResult, Candidate, predict_and_cluster, tf_lookup_from_arrow
from mdm.matching.clustering import ClusterResult, Edge, cluster
from mdm.matching.deterministic import (
    RuleDecision,
    decide_pair,
    exclusive_conflict,
    guard_conflict,
    worth_review,
)
from mdm.matching.features import FEATURE_COLUMNS, build_features, fold_text
from mdm.matching.incremental import (
    CandidateSource,
    IncrementalMatcher,
    IncrementalScorer,
    InMemoryCandidateIndex,
    PairScore,
    ScoredCandidate,
    blocking_keys,
)
from mdm.matching.model import MatchModel
from mdm.matching.rules import MatchingRules, load_rules, load_rules_file
from mdm.matching.tables import arrow_schema, load_features, rows_to_arrow
from mdm.matching.training import TrainedModel, TrainingReport, train

__all__ = [
    "FEATURE_COLUMNS",
    "BatchResult",
    "Candidate",
    "CandidateSource",
    "ClusterResult",
    "Edge",
    "InMemoryCandidateIndex",
    "IncrementalMatcher",
    "IncrementalScorer",
    "MatchModel",
    "MatchingRules",
    "PairScore",
    "RuleDecision",
    "ScoredCandidate",
    "TrainedModel",
    "TrainingReport",
    "arrow_schema",
    "blocking_keys",
    "build_features",
    "cluster",
    "decide_pair",
    "exclusive_conflict",
    "fold_text",
    "guard_conflict",
    "load_features",
    "load_rules",
    "load_rules_file",
    "predict_and_cluster",
    "rows_to_arrow",
    "tf_lookup_from_arrow",
    "train",
    "worth_review",
]
