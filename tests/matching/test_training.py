"""What training does with levels EM never saw (the production recipe, on the
session's small synthetic citizens: ``conftest.trained``)."""

from __future__ import annotations

import itertools
import math

import pytest

from mdm.matching.training import (
    UNOBSERVED_M,
    LevelEstimate,
    LevelParameters,
    TrainedModel,
    honest_levels,
)


def _m(trained: TrainedModel, comparison: str, level: str) -> float | None:
    (found,) = [
        lv.m_probability
        for lv in trained.report.levels
        if lv.comparison == comparison and lv.level == level
    ]
    return found


def _level(trained: TrainedModel, comparison: str, level: str) -> LevelParameters:
    (found,) = [
        lv for lv in trained.report.levels if lv.comparison == comparison and lv.level == level
    ]
    return found


def test_a_level_no_session_saw_gets_the_prior_not_minus_twenty_bits(
    trained: TrainedModel,
) -> None:
    # The sessions blocked on an identifier hold one person's records: none of them
    # has a date one digit off (the generator makes no such typo). That says matches
    # are rare there, not that they never are: the level gets the prior m (the floor),
    # so it weighs log2(m_floor / u), about neutral for a level random pairs rarely
    # reach, instead of Splink's starting m (+3 bits) or 1e-6 (-10 bits and worse)
    floor = trained.rules.training.m_floor
    unseen = [w for w in trained.report.warnings if "seen in no EM session" in w]
    assert any("'one edit in the full date' of dob" in w for w in unseen)
    level = _level(trained, "dob", "one edit in the full date")
    assert level.match_weight >= math.log2(floor / level.u_probability) - 1e-9  # type: ignore[operator]
    assert abs(level.match_weight) < 4
    # a level the sessions did see keeps its estimate
    assert _m(trained, "dob", "exact full date") > 0.5  # type: ignore[operator]


def test_no_level_weighs_beyond_what_the_data_supports(trained: TrainedModel) -> None:
    """Floors: no level below log2(m_floor) nor above log2(1 / u_floor); nested
    levels monotone: down each comparison a level never outweighs the one before."""
    floor_m = trained.rules.training.m_floor
    floor_u = trained.rules.training.u_floor_value
    by_comparison: dict[str, list[float]] = {}
    for lv in trained.report.levels:
        if lv.level == "null":
            continue
        assert math.log2(floor_m) - 1e-9 <= lv.match_weight <= -math.log2(floor_u) + 1e-9, lv
        by_comparison.setdefault(lv.comparison, []).append(lv.match_weight)
    for comparison, weights in by_comparison.items():
        assert weights == sorted(weights, reverse=True) or all(
            a >= b - 1e-9 for a, b in itertools.pairwise(weights)
        ), (comparison, weights)


def test_honest_levels_pools_violators_and_floors() -> None:
    levels = [
        LevelEstimate(0.90, 1e-4),  # exact
        LevelEstimate(1e-9, 1e-3),  # a closer level EM put at 1e-9 ...
        LevelEstimate(0.02, 1e-2),  # ... below a looser one: pooled
        LevelEstimate(0.0, 0.5, observed=False),  # never observed: prior m
        LevelEstimate(0.08, 0.49),  # else
    ]
    out = honest_levels(levels, m_floor=1e-3, u_floor=1e-6)
    weights = [math.log2(m / u) for m, u in out]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(weights)), weights
    assert weights[0] == math.log2(0.90 / 1e-4)
    # the pooled pair shares log2((1e-3 + 0.02) / (1e-3 + 1e-2)), each keeping its u
    assert weights[1] == pytest.approx(math.log2(0.021 / 0.011))
    assert weights[2] == pytest.approx(weights[1])
    assert out[1][1] == 1e-3 and out[2][1] == 1e-2
    assert weights[3] >= math.log2(1e-3 / 0.5)
    assert min(weights) >= math.log2(1e-3)
    # u is floored too: no level above log2(1 / u_floor)
    (only,) = honest_levels([LevelEstimate(1.0, 1e-12)], m_floor=1e-3, u_floor=1e-6)
    assert only == (1.0, 1e-6)


def test_a_column_the_data_lacks_keeps_its_default(trained: TrainedModel) -> None:
    # the generator writes no ethnicity: every pair is null there, so the sessions
    # learnt nothing about it, in either direction
    assert not any("of ethnicity" in w for w in trained.report.warnings)
    assert _m(trained, "ethnicity", "exact") != UNOBSERVED_M
    assert _m(trained, "ethnicity", "else") != UNOBSERVED_M
