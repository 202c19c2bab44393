"""What training does with levels EM never saw (the production recipe, on the
session's small synthetic citizens: ``conftest.trained``)."""

from __future__ import annotations

from mdm.matching.training import UNOBSERVED_M, TrainedModel


def _m(trained: TrainedModel, comparison: str, level: str) -> float | None:
    (found,) = [
        lv.m_probability
        for lv in trained.report.levels
        if lv.comparison == comparison and lv.level == level
    ]
    return found


def test_a_level_no_session_saw_gets_a_small_m(trained: TrainedModel) -> None:
    # The sessions blocked on an identifier hold one person's records: none of them
    # has a date one digit off (the generator makes no such typo), which is evidence
    # that matches rarely do, not a reason to keep Splink's starting m (about 1/120,
    # +3 bits for two dates one digit apart)
    unseen = [w for w in trained.report.warnings if "seen in no EM session" in w]
    assert any("'one edit in the full date' of dob" in w for w in unseen)
    assert _m(trained, "dob", "one edit in the full date") == UNOBSERVED_M
    for warning in unseen:
        level, comparison = warning.split("'")[1], warning.split(" of ")[1].split(" was ")[0]
        assert _m(trained, comparison, level) == UNOBSERVED_M
    # a level the sessions did see keeps its estimate
    assert _m(trained, "dob", "exact full date") > 0.5  # type: ignore[operator]


def test_a_column_the_data_lacks_keeps_its_default(trained: TrainedModel) -> None:
    # the generator writes no ethnicity: every pair is null there, so the sessions
    # learnt nothing about it, in either direction
    assert not any("of ethnicity" in w for w in trained.report.warnings)
    assert _m(trained, "ethnicity", "exact") != UNOBSERVED_M
    assert _m(trained, "ethnicity", "else") != UNOBSERVED_M
