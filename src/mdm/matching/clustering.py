"""Constrained clustering: union-find that refuses unions a constraint forbids.

Plain connected components would let A–B and B–C pull A and C together even when a
steward said "A is not C", or when A and C hold different valid personal IDs. Here
edges are applied in a fixed order (must-links first, then automatic edges by
descending score, ties by ids so the result is deterministic) and each union is
checked against the constraints of *both whole clusters*:

* cannot-link pairs (steward decisions, deterministic conflicts): refused if any
  member of one cluster has a cannot-link with any member of the other;
* exclusive keys (e.g. personal ID): refused if the clusters hold different values
  (with ``typo_edits``, values further apart than that many edits: one ID typed
  twice, a transposition or one wrong digit, is one ID; every value of the joined
  cluster must be that close to every other, so a chain never drifts);
* maximum gaps (e.g. birth year, 14): refused if the joined cluster's values would
  span more than the gap, so parent and child never meet through a third record.

So no constraint is ever violated, through chains or otherwise. A refused automatic
edge is returned so the caller can queue it for review. A must-link that conflicts
with a cannot-link is also refused and reported: steward decisions must be
reconciled by a steward, never by the machine picking one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from rapidfuzz.distance import DamerauLevenshtein


@dataclass(frozen=True, slots=True)
class Edge:
    left: str
    right: str
    score: float
    method: str  # "steward", "rule", "model"


@dataclass
class ClusterResult:
    clusters: list[frozenset[str]]
    accepted: list[Edge] = field(default_factory=list)
    refused: list[tuple[Edge, str]] = field(default_factory=list)

    def cluster_of(self) -> dict[str, int]:
        return {member: i for i, cluster in enumerate(self.clusters) for member in cluster}


class ConstrainedUnionFind:
    def __init__(
        self,
        cannot_link: Iterable[tuple[str, str]] = (),
        exclusive: Mapping[str, Mapping[str, Hashable]] | None = None,
        max_gap: Mapping[str, float] | None = None,
        typo_edits: Mapping[str, int] | None = None,
    ) -> None:
        self._parent: dict[str, str] = {}
        self._size: dict[str, int] = {}
        self._members: dict[str, list[str]] = {}
        self._cannot: dict[str, set[str]] = {}
        # per root: exclusive column → the values its cluster holds (one, unless
        # the column tolerates typos)
        self._keys: dict[str, dict[str, tuple[Hashable, ...]]] = {}
        self._typo_edits = {k: v for k, v in (typo_edits or {}).items() if v > 0}
        for a, b in cannot_link:
            if a == b:
                continue
            self._cannot.setdefault(a, set()).add(b)
            self._cannot.setdefault(b, set()).add(a)
        self._exclusive = exclusive or {}
        self._max_gap = dict(max_gap or {})
        # per root: gap column → (smallest, largest) value its cluster holds
        self._spans: dict[str, dict[str, tuple[float, float]]] = {}

    def _add(self, node: str) -> None:
        if node not in self._parent:
            self._parent[node] = node
            self._size[node] = 1
            self._members[node] = [node]
            keys = self._exclusive.get(node) or {}
            self._keys[node] = {
                k: (v,) for k, v in keys.items() if v is not None and k not in self._max_gap
            }
            self._spans[node] = {
                k: (float(v), float(v))
                for k, v in keys.items()
                if k in self._max_gap and isinstance(v, int | float)
            }

    def find(self, node: str) -> str:
        self._add(node)
        root = node
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[node] != root:
            self._parent[node], node = root, self._parent[node]
        return root

    def why_not(self, a: str, b: str) -> str | None:
        """The reason the clusters of ``a`` and ``b`` may not be joined, or ``None``."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        keys_a, keys_b = self._keys[ra], self._keys[rb]
        for col, values in keys_a.items():
            others = keys_b.get(col)
            if others is not None and self._clash(col, values, others):
                return f"exclusive:{col}"
        spans_a, spans_b = self._spans[ra], self._spans[rb]
        for col, (low, high) in spans_a.items():
            span = spans_b.get(col)
            if span is not None and max(high, span[1]) - min(low, span[0]) > self._max_gap[col]:
                return f"max_gap:{col}"
        small, big = (ra, rb) if self._size[ra] <= self._size[rb] else (rb, ra)
        for member in self._members[small]:
            for partner in self._cannot.get(member, ()):
                if self.find(partner) == big:
                    return "cannot_link"
        return None

    def _clash(self, col: str, left: tuple[Hashable, ...], right: tuple[Hashable, ...]) -> bool:
        edits = self._typo_edits.get(col, 0)
        for a in left:
            for b in right:
                if a == b:
                    continue
                if not edits:
                    return True
                distance = DamerauLevenshtein.distance(str(a), str(b), score_cutoff=edits)
                if distance > edits:
                    return True
        return False

    def union(self, a: str, b: str) -> str | None:
        """Join the clusters; returns the refusal reason instead when forbidden."""
        reason = self.why_not(a, b)
        if reason is not None:
            return reason
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size.pop(rb)
        self._members[ra].extend(self._members.pop(rb))
        for col, values in self._keys.pop(rb).items():
            mine = self._keys[ra].get(col, ())
            self._keys[ra][col] = mine + tuple(v for v in values if v not in mine)
        for col, (low, high) in self._spans.pop(rb).items():
            old = self._spans[ra].get(col)
            self._spans[ra][col] = (
                (low, high) if old is None else (min(low, old[0]), max(high, old[1]))
            )
        return None

    def clusters(self, min_size: int = 2) -> list[frozenset[str]]:
        out = [frozenset(m) for m in self._members.values() if len(m) >= min_size]
        out.sort(key=lambda c: min(c))
        return out


def cluster(
    edges: Iterable[Edge],
    *,
    must_link: Iterable[tuple[str, str]] = (),
    cannot_link: Iterable[tuple[str, str]] = (),
    exclusive: Mapping[str, Mapping[str, Hashable]] | None = None,
    max_gap: Mapping[str, float] | None = None,
    typo_edits: Mapping[str, int] | None = None,
    min_size: int = 2,
) -> ClusterResult:
    """Cluster ``edges`` (already filtered to auto-link strength) under constraints.

    ``exclusive`` maps record id → {column: value} for the exclusive columns and the
    ``max_gap`` columns (column → largest allowed spread); only records that appear
    in some edge need an entry. ``typo_edits`` (column → edits) lets exclusive
    values that close share a cluster. Records in no accepted edge are
    singletons and are left out unless ``min_size`` is 1.
    """
    uf = ConstrainedUnionFind(cannot_link, exclusive, max_gap, typo_edits)
    result = ClusterResult(clusters=[])
    steward = [Edge(a, b, float("inf"), "steward") for a, b in must_link]
    ordered = sorted(edges, key=lambda e: (-e.score, min(e.left, e.right), max(e.left, e.right)))
    for edge in (*steward, *ordered):
        uf.find(edge.left)
        uf.find(edge.right)
        reason = uf.union(edge.left, edge.right)
        if reason is None:
            result.accepted.append(edge)
        else:
            result.refused.append((edge, reason))
    result.clusters = uf.clusters(min_size)
    return result
