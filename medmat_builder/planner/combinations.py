"""Combinations: Table 3's controlled pairs (Section 3.1) and Table 4's triples (Section 4.3) for a target."""

from __future__ import annotations

from medmat_builder.planner.facts import (
    DEFAULT_COMBINATION_POOL,
    DIRECTIONS,
    ELEMENTS,
    Pair,
    Pool,
    Triple,
    normalize_config,
)
from medmat_builder.planner.relations import Relations


class Combinations(Relations):
    """Relations plus the pairs and triples that together bring a target's elements."""

    def pairs(self, target: str, pool: Pool = DEFAULT_COMBINATION_POOL) -> list[Pair]:
        """Controlled pairs (X, Y) that together bring the target's elements (Section 3.1, Table 3)."""
        t = self.subset(target)
        cands = [self._by_name[n] for n in self.pool(pool, exclude=t.name)]
        out: list[Pair] = []
        # (direction, fixed elements, what X brings, what Y brings)
        specs: list[tuple[str, tuple[str, ...], str, str]] = [
            ("fixed-modality", ("modality",), "area", "task"),
            ("fixed-area", ("area",), "modality", "task"),
            ("fixed-task", ("task",), "modality", "area"),
        ]
        for direction, fixed, a, b in specs:
            for x in cands:
                if not (all(self._shares(t, x, e) for e in fixed) and self._shares(t, x, a) and self._differs(t, x, b)):
                    continue
                for y in cands:
                    if y.name == x.name:
                        continue
                    if all(self._shares(t, y, e) for e in fixed) and self._shares(t, y, b) and self._differs(t, y, a):
                        out.append(Pair(t.name, direction, x.name, y.name, (a, b)))
        if self.inseparable(t.name):
            for x in cands:
                if not (self._shares(t, x, "modality") and self._shares(t, x, "area") and self._differs(t, x, "task")):
                    continue
                for y in cands:
                    if (self._shares(t, y, "task") and self._differs(t, y, "modality")
                            and self._differs(t, y, "area")):
                        out.append(Pair(t.name, "modality-area", x.name, y.name, ("modality+area", "task")))
        return out

    def triples(self, target: str, pool: Pool = DEFAULT_COMBINATION_POOL) -> list[Triple]:
        """Three subsets, each bringing exactly one element of the target (Section 4.3, Table 4)."""
        t = self.subset(target)
        cands = [self._by_name[n] for n in self.pool(pool, exclude=t.name)]

        def only(element: str) -> list[str]:
            others = [e for e in ELEMENTS if e != element]
            return [c.name for c in cands
                    if self._shares(t, c, element) and all(self._differs(t, c, e) for e in others)]

        return [Triple(t.name, m, a, k) for m in only("modality") for a in only("area") for k in only("task")]

    def directions_of(self, target: str, config: str, pool: Pool = DEFAULT_COMBINATION_POOL) -> list[str]:
        """Direction types of the target's pairs (in ``pool``) that use ``config``."""
        config = normalize_config(config)
        found = {p.direction for p in self.pairs(target, pool) if config in p.configs}
        return [d for d in DIRECTIONS if d in found]
