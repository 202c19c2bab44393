"""Shared fixtures: one small trained citizen model per session (no database)."""

from __future__ import annotations

import duckdb
import pytest

from mdm.matching.rules import MatchingRules, Training, load_rules
from mdm.matching.training import TrainedModel, train
from tests.matching.synthetic import Generated, generate


@pytest.fixture(scope="session")
def citizen_rules() -> MatchingRules:
    rules = load_rules("citizen")
    # smaller samples keep the suite fast; the recipe is the production one
    return rules.model_copy(
        update={"training": Training(u_max_pairs=3e5, em_max_pairs=2e5, seed=42)}
    )


@pytest.fixture(scope="session")
def citizen_data() -> Generated:
    return generate(3000, seed=11, n_twins=15)


@pytest.fixture(scope="session")
def trained(citizen_rules: MatchingRules, citizen_data: Generated) -> TrainedModel:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    return train(citizen_rules, citizen_data.records, con=con)
