"""plan_partition: who keeps which canonical ID, decided without a database.

Records are small ints, entities are ints in the hundreds (a smaller entity id was
issued first). ``current`` maps each linked record to its entity.
"""

from __future__ import annotations

import random

import pytest

from mdm.domain.identity import PartitionPlan, enforce_decisions, plan_partition
from mdm.exceptions import BadRequest, Conflict


def owners(plan: PartitionPlan) -> dict[int, int | None]:
    """record -> entity it ends on (None: a new entity)."""
    return {r: plan.inherited.get(gi) for gi, g in enumerate(plan.groups) for r in g}


def test_unchanged_partition_keeps_every_entity_and_changes_nothing() -> None:
    current = {1: 100, 2: 100, 3: 101, 4: 102}
    plan = plan_partition([[3], [2, 1], [4]], current)
    assert plan.groups == [[1, 2], [3], [4]]
    assert plan.inherited == {0: 100, 1: 101, 2: 102}
    assert plan.new_groups == [] and plan.absorbed == {} and plan.retired == []
    assert plan.relinks == [] and plan.moved == [] and plan.unlinked == []
    assert plan.membership_changed == set() and plan.fresh_links == 0


def test_first_run_gives_every_group_a_new_entity() -> None:
    plan = plan_partition([[5, 2], [9], [1]], {})
    assert plan.groups == [[1], [2, 5], [9]]
    assert plan.inherited == {} and plan.new_groups == [0, 1, 2]
    assert plan.fresh_links == 4 and plan.moved == [] and plan.relinks == []
    assert plan.membership_changed == set()


def test_split_larger_part_keeps_the_id_smaller_part_is_new() -> None:
    current = {1: 100, 2: 100, 3: 100}
    plan = plan_partition([[1], [2, 3]], current)
    assert plan.inherited == {1: 100}  # group [2, 3] overlaps by 2
    assert plan.new_groups == [0]
    assert plan.moved == [1] and plan.relinks == []
    assert plan.membership_changed == {100}
    assert plan.absorbed == {} and plan.retired == []


def test_split_in_equal_halves_the_group_with_the_smaller_record_keeps_the_id() -> None:
    current = {1: 100, 2: 100, 3: 100, 4: 100}
    plan = plan_partition([[4, 2], [3, 1]], current)
    assert plan.groups == [[1, 3], [2, 4]]
    assert plan.inherited == {0: 100} and plan.new_groups == [1]
    assert sorted(plan.moved) == [2, 4]


def test_three_way_split() -> None:
    current = {r: 100 for r in range(1, 7)}
    plan = plan_partition([[1, 2, 3], [4, 5], [6]], current)
    assert plan.inherited == {0: 100}
    assert plan.new_groups == [1, 2]
    assert sorted(plan.moved) == [4, 5, 6]
    assert plan.membership_changed == {100}


def test_merge_older_entity_survives_a_tie_and_the_other_redirects() -> None:
    current = {1: 101, 2: 101, 3: 100, 4: 100}
    plan = plan_partition([[1, 2, 3, 4]], current)
    assert plan.inherited == {0: 100}  # 2 records each: the older entity keeps its ID
    assert plan.absorbed == {100: [101]} and plan.redirects == [(101, 100)]
    assert plan.relinks == [(1, 100, 0), (2, 100, 0)]
    assert plan.moved == [1, 2] and plan.membership_changed == {100, 101}


def test_merge_larger_overlap_beats_older_entity() -> None:
    current = {1: 100, 2: 101, 3: 101}
    plan = plan_partition([[1, 2, 3]], current)
    assert plan.inherited == {0: 101}
    assert plan.absorbed == {101: [100]}
    assert plan.relinks == [(1, 101, 0)]


def test_group_holding_records_of_two_entities_while_each_keeps_a_group() -> None:
    # entity 100 = {1, 2, 3}, entity 101 = {4, 5, 6}; the new group {3, 4} holds one
    # record of each and inherits neither: both entities keep their larger part.
    current = {1: 100, 2: 100, 3: 100, 4: 101, 5: 101, 6: 101}
    plan = plan_partition([[1, 2], [3, 4], [5, 6]], current)
    assert plan.inherited == {0: 100, 2: 101}
    assert plan.new_groups == [1]
    assert sorted(plan.moved) == [3, 4]
    assert plan.absorbed == {} and plan.retired == []
    assert plan.membership_changed == {100, 101}


def test_absorbed_entity_redirects_to_where_most_of_its_records_went() -> None:
    # entity 102 = {5, 6, 7} is scattered: two records join 101's group, one 100's.
    current = {1: 100, 2: 100, 3: 101, 4: 101, 5: 102, 6: 102, 7: 102}
    plan = plan_partition([[1, 2, 5], [3, 4, 6, 7]], current)
    assert plan.inherited == {0: 100, 1: 101}
    assert plan.absorbed == {101: [102]}


def test_absorbed_entity_split_evenly_redirects_to_the_smaller_survivor() -> None:
    current = {1: 100, 2: 100, 3: 101, 4: 101, 5: 102, 6: 102}
    plan = plan_partition([[3, 4, 6], [1, 2, 5]], current)
    assert plan.absorbed == {100: [102]}


def test_entity_losing_all_records_is_retired_and_its_links_deactivated() -> None:
    current = {1: 100, 2: 100, 3: 101}
    plan = plan_partition([[3]], current)
    assert plan.retired == [100] and plan.absorbed == {}
    assert sorted(plan.unlinked) == [1, 2]
    assert plan.membership_changed == {100}
    assert plan.inherited == {0: 101}


def test_everything_withdrawn_retires_every_entity() -> None:
    plan = plan_partition([], {1: 100, 2: 101})
    assert plan.groups == [] and plan.retired == [100, 101]
    assert sorted(plan.unlinked) == [1, 2]


def test_new_records_join_existing_entities_as_fresh_links() -> None:
    current = {1: 100}
    plan = plan_partition([[1, 7], [8]], current)
    assert plan.inherited == {0: 100} and plan.new_groups == [1]
    assert plan.relinks == [(7, 100, 0)]
    assert plan.fresh_links == 2 and plan.moved == []
    assert plan.membership_changed == {100}


def test_each_entity_goes_to_one_group_each_group_takes_one_entity() -> None:
    # group [1..4] overlaps 100 by 3 and 101 by 1; group [5, 6] overlaps 101 by 2.
    current = {1: 100, 2: 100, 3: 100, 4: 101, 5: 101, 6: 101}
    plan = plan_partition([[1, 2, 3, 4], [5, 6]], current)
    assert plan.inherited == {0: 100, 1: 101}
    assert plan.relinks == [(4, 100, 0)]


def test_overlapping_groups_are_refused() -> None:
    with pytest.raises(BadRequest):
        plan_partition([[1, 2], [2, 3]], {})


def test_empty_groups_and_duplicates_are_dropped() -> None:
    plan = plan_partition([[], [2, 2, 1], ()], {})
    assert plan.groups == [[1, 2]]


def test_cannot_link_splits_a_group_as_a_steward_split_it() -> None:
    # an unmerge of {3, 4} out of {1, 2, 3, 4} records every cross pair
    current = {1: 100, 2: 100, 3: 101, 4: 101}
    cannot = [(1, 3), (1, 4), (2, 3), (2, 4)]
    plan = plan_partition([[1, 2, 3, 4]], current, cannot_link=cannot)
    assert plan.groups_split == 1
    assert plan.groups == [[1, 2], [3, 4]]
    assert plan.inherited == {0: 100, 1: 101}
    assert plan.moved == [] and plan.absorbed == {}


def test_cannot_link_split_places_records_first_fit_by_current_entity() -> None:
    # in order (entity, record): 1, 2 start a part; 3 may not join 2; 4 joins 1 and 2
    current = {1: 100, 2: 100, 3: 101, 4: 101}
    plan = plan_partition([[4, 3, 2, 1]], current, cannot_link=[(3, 2)])
    assert plan.groups == [[1, 2, 4], [3]]
    assert plan.inherited == {0: 100, 1: 101}
    assert plan.relinks == [(4, 100, 0)]


def test_must_link_unites_groups() -> None:
    current = {1: 100, 2: 101}
    plan = plan_partition([[1], [2]], current, must_link=[(2, 1)])
    assert plan.groups == [[1, 2]]
    assert plan.inherited == {0: 100} and plan.absorbed == {100: [101]}


def test_contradicting_decisions_raise() -> None:
    with pytest.raises(Conflict):
        plan_partition([[1, 2]], {}, must_link=[(1, 2)], cannot_link=[(2, 1)])


def test_enforce_decisions_without_decisions_returns_the_groups() -> None:
    groups = [[1, 2], [3]]
    assert enforce_decisions(groups, [], [], {}) == (groups, 0)


def _comparable(plan: PartitionPlan) -> tuple[object, ...]:
    return (
        plan.groups,
        plan.groups_split,
        plan.inherited,
        plan.new_groups,
        plan.absorbed,
        plan.retired,
        plan.relinks,
        sorted(plan.moved),
        sorted(plan.unlinked),
        plan.membership_changed,
        plan.fresh_links,
    )


@pytest.mark.parametrize("seed", range(20))
def test_plan_does_not_depend_on_input_order(seed: int) -> None:
    rng = random.Random(seed)
    records = list(range(1, 41))
    current = {r: 100 + rng.randrange(8) for r in records if rng.random() < 0.8}
    active = [r for r in records if rng.random() < 0.9]
    rng.shuffle(active)
    groups: list[list[int]] = []
    while active:
        size = rng.choice((1, 2, 3, 5))
        groups.append(active[:size])
        active = active[size:]
    cannot = [(groups[0][0], groups[0][-1])] if len(groups[0]) > 1 else []
    must = [(groups[1][0], groups[2][0])] if len(groups) > 2 else []
    plan = plan_partition(groups, current, must, cannot)

    shuffled = [list(reversed(g)) for g in reversed(groups)]
    rng.shuffle(shuffled)
    items = list(current.items())
    rng.shuffle(items)
    again = plan_partition(shuffled, dict(items), list(reversed(must)), [(b, a) for a, b in cannot])
    assert _comparable(again) == _comparable(plan)
    # and every linked record is accounted for exactly once
    placed = owners(plan)
    assert set(placed) | set(plan.unlinked) == set(placed) | set(current)
    assert len(set(plan.inherited.values())) == len(plan.inherited)
