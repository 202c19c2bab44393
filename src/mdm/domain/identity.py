"""Identity decisions: which group of a new partition keeps which canonical ID.

:func:`plan_partition` takes a partition of source records into groups (a matching
run's clusters), the records' current entities and the stewards' decisions, and
decides, without reading or writing anything, what the identity service then
writes (:mod:`mdm.services.identity`). Entities are their internal ids: a smaller id
was issued first, so it stands for the *older* entity.

* **Steward decisions win** (DESIGN.md invariant 4). Groups joined by a must-link
  are united; a group holding a cannot-link pair is split (see
  :func:`enforce_decisions`); a must-link that contradicts a cannot-link raises.
* **Inheritance.** Every group inherits the ID of the existing entity it overlaps
  most, counted in currently linked source records. Assignment is global and greedy
  over (group, entity, overlap) triples sorted by: larger overlap first; then the
  older entity (smaller id); then the group whose smallest source-record id is
  smaller. Each entity goes to at most one group, each group takes at most one
  entity. Only a group that overlaps no untaken entity gets a new ID.
* **Merges.** An entity that no group inherited but whose records are still in the
  partition was absorbed: it redirects to the entity that now holds most of its
  records (ties: the smaller entity id).
* **Retirement.** An entity none of whose records is in the partition any more (all
  withdrawn) is retired; its links are deactivated.

The plan depends only on the content of its inputs, never on their order: groups
are sorted and numbered by their smallest record.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mdm.exceptions import BadRequest, Conflict


@dataclass(slots=True)
class PartitionPlan:
    """What a partition changes; group indexes refer to ``groups``."""

    #: the partition after the steward decisions: each group sorted, the groups
    #: ordered by their smallest record
    groups: list[list[int]]
    #: how many groups were split because they held a cannot-link pair
    groups_split: int
    #: group index -> the existing entity whose ID it keeps
    inherited: dict[int, int]
    #: indexes of the groups that found a new entity, ascending
    new_groups: list[int]
    #: surviving entity -> the entities it absorbed (each redirects to it), both
    #: ascending
    absorbed: dict[int, list[int]]
    #: entities with no record left in the partition, ascending
    retired: list[int]
    #: (record, entity, group index): links to existing entities to write, in group
    #: order then record order
    relinks: list[tuple[int, int, int]]
    #: linked records whose entity changes (their current link is deactivated)
    moved: list[int]
    #: linked records absent from the partition (their link is deactivated)
    unlinked: list[int]
    #: existing entities that gain or lose records
    membership_changed: set[int]
    #: records of the partition that have no link yet (each gets one)
    fresh_links: int

    @property
    def redirects(self) -> list[tuple[int, int]]:
        """(absorbed entity, survivor), ordered by survivor then absorbed entity."""
        return [(lo, s) for s, losers in sorted(self.absorbed.items()) for lo in sorted(losers)]


def plan_partition(
    groups: Iterable[Sequence[int]],
    current: Mapping[int, int],
    must_link: Iterable[tuple[int, int]] = (),
    cannot_link: Iterable[tuple[int, int]] = (),
) -> PartitionPlan:
    """Decide who keeps which ID when ``groups`` replaces the current entities.

    ``groups``: disjoint groups of source record ids (else ``BadRequest``).
    ``current``: record -> entity of every active link of the entity type (records
    linked but absent from ``groups`` are unlinked; an entity of none of whose
    records is left retires). ``must_link``/``cannot_link``: record pairs.
    """
    parts = _disjoint_groups(groups)
    parts, split = enforce_decisions(parts, must_link, cannot_link, current)
    parts.sort(key=lambda g: g[0])
    inherited = _inherit(parts, current)
    # only needed to follow existing links (a first run has none)
    record_group = {r: gi for gi, g in enumerate(parts) for r in g} if current else {}
    absorbed, retired = _absorb_or_retire(current, record_group, inherited)
    plan = PartitionPlan(
        groups=parts,
        groups_split=split,
        inherited=inherited,
        new_groups=[],
        absorbed=absorbed,
        retired=retired,
        relinks=[],
        moved=[],
        unlinked=[r for r in current if r not in record_group],
        membership_changed=set(),
        fresh_links=0,
    )
    _plan_links(plan, current)
    return plan


def _disjoint_groups(groups: Iterable[Sequence[int]]) -> list[list[int]]:
    """Each non-empty group as sorted distinct ints; ``BadRequest`` if two overlap."""
    parts: list[list[int]] = []
    seen: set[int] = set()
    for g in groups:
        members = sorted({int(r) for r in g})
        if not members:
            continue
        if seen.intersection(members):
            raise BadRequest("groups must be disjoint: a source record appears in two groups")
        seen.update(members)
        parts.append(members)
    return parts


def _inherit(parts: list[list[int]], current: Mapping[int, int]) -> dict[int, int]:
    """group index -> entity, greedy over (overlap desc, entity asc, first record asc)."""
    triples: list[tuple[int, int, int, int]] = []  # (-overlap, entity, first record, group)
    for gi, g in enumerate(parts):
        counts = Counter(current[r] for r in g if r in current)
        triples.extend((-n, e, g[0], gi) for e, n in counts.items())
    triples.sort()
    group_entity: dict[int, int] = {}
    taken: set[int] = set()
    for _n, e, _first, gi in triples:
        if gi not in group_entity and e not in taken:
            group_entity[gi] = e
            taken.add(e)
    return group_entity


def _absorb_or_retire(
    current: Mapping[int, int], record_group: Mapping[int, int], inherited: Mapping[int, int]
) -> tuple[dict[int, list[int]], list[int]]:
    """Entities nobody inherited: (survivor -> absorbed entities, retired entities)."""
    former: dict[int, list[int]] = defaultdict(list)
    for r, e in current.items():
        former[e].append(r)
    absorbed: dict[int, list[int]] = defaultdict(list)
    retired: list[int] = []
    for e in sorted(set(former) - set(inherited.values())):
        destinations = Counter(inherited[record_group[r]] for r in former[e] if r in record_group)
        if not destinations:
            retired.append(e)
            continue
        survivor = min(destinations, key=lambda s: (-destinations[s], s))
        absorbed[survivor].append(e)
    return dict(sorted(absorbed.items())), retired


def _plan_links(plan: PartitionPlan, current: Mapping[int, int]) -> None:
    """Fill the plan's link changes: moved records, new links, changed memberships."""
    changed = plan.membership_changed
    changed.update(current[r] for r in plan.unlinked)
    fresh = 0
    for gi, g in enumerate(plan.groups):
        target = plan.inherited.get(gi)
        if target is None:
            plan.new_groups.append(gi)
            for r in g:
                old = current.get(r)
                if old is None:
                    fresh += 1
                else:
                    plan.moved.append(r)
                    changed.add(old)
            continue
        for r in g:
            old = current.get(r)
            if old == target:
                continue
            if old is None:
                fresh += 1
            else:
                plan.moved.append(r)
                changed.add(old)
            changed.add(target)
            plan.relinks.append((r, target, gi))
    plan.fresh_links = fresh


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def enforce_decisions(
    groups: list[list[int]],
    must: Iterable[tuple[int, int]],
    cannot: Iterable[tuple[int, int]],
    current: Mapping[int, int],
) -> tuple[list[list[int]], int]:
    """Make the partition obey steward decisions; returns (groups, how many were split).

    Groups holding the two records of a must-link are united. A group holding both
    records of a cannot-link is split: its must-link components are placed, in order
    of (current entity id, smallest record id), into the first part where they
    conflict with nothing, else into a new part, so that records that are already
    together tend to stay together. A must-link component that itself contains a
    cannot-link pair is a contradiction only a steward can settle: ``Conflict``.
    """
    must, cannot = list(must), list(cannot)
    if not must and not cannot:
        return groups, 0
    where = {r: gi for gi, g in enumerate(groups) for r in g}
    must = [(a, b) for a, b in must if a in where and b in where]
    cannot_set = {(min(a, b), max(a, b)) for a, b in cannot if a in where and b in where}
    if not must and not cannot_set:
        return groups, 0
    uf = _UnionFind()
    for a, b in must:
        uf.union(where[a], where[b])
    merged: dict[int, list[int]] = defaultdict(list)
    for gi, g in enumerate(groups):
        merged[uf.find(gi)].extend(g)
    groups = [sorted(g) for _root, g in sorted(merged.items())]
    if not cannot_set:
        return groups, 0
    where = {r: gi for gi, g in enumerate(groups) for r in g}
    bad = {where[a] for a, b in cannot_set if where[a] == where[b]}
    if not bad:
        return groups, 0
    partners: dict[int, set[int]] = defaultdict(set)
    for a, b in cannot_set:
        partners[a].add(b)
        partners[b].add(a)
    out = [g for gi, g in enumerate(groups) if gi not in bad]
    for gi in sorted(bad):
        members = set(groups[gi])
        comp = _UnionFind()
        for a, b in must:
            if a in members and b in members:
                comp.union(a, b)
        units: dict[int, list[int]] = defaultdict(list)
        for r in groups[gi]:
            units[comp.find(r)].append(r)
        ordered = sorted(
            units.values(), key=lambda u: (min(current.get(r, 1 << 62) for r in u), min(u))
        )
        parts: list[set[int]] = []
        for unit in ordered:
            unit_set = set(unit)
            forbidden = set().union(*(partners[r] for r in unit))
            if forbidden & unit_set:
                raise Conflict(
                    f"steward decisions contradict each other: records {sorted(unit)} are "
                    "must-linked together but some of them are cannot-linked"
                )
            for part in parts:
                if not (forbidden & part):
                    part.update(unit_set)
                    break
            else:
                parts.append(unit_set)
        out.extend(sorted(p) for p in parts)
    return out, len(bad)
