"""Relations (Section 3.2): which MAT elements each subset shares with a target; Related, Unrelated, w/o an element."""

from __future__ import annotations

from collections.abc import Iterable

from medmat_builder.planner.facts import (
    DEFAULT_MIX_POOL,
    ELEMENTS,
    MIX_RULES,
    POOLS,
    TASK_LEVELS,
    Facts,
    PlannerError,
    Pool,
    Relation,
    TaskLevel,
    normalize_config,
)
from medmat_builder.scripts import did_you_mean


class Relations:
    """The relations of a fixed set of subsets (the first layer of :class:`~medmat_builder.planner.Planner`)."""

    def __init__(self, subsets: Iterable[object], *, tasks: TaskLevel = "grouped") -> None:
        if tasks not in TASK_LEVELS:
            raise PlannerError(f"tasks must be one of {', '.join(TASK_LEVELS)}, got {tasks!r}")
        self.tasks: TaskLevel = tasks
        facts = [Facts.of(s) for s in subsets]
        self._by_name: dict[str, Facts] = {}
        for f in facts:
            if f.name in self._by_name:
                raise PlannerError(f"subset {f.name} is given more than once")
            self._by_name[f.name] = f
        self._names = sorted(self._by_name)
        # Modality-area pairs that never occur apart across all subsets (Der/Skin, FP/Fundus, ...).
        areas_of: dict[str, set[str]] = {}
        modalities_of: dict[str, set[str]] = {}
        for f in facts:
            areas_of.setdefault(f.modality, set()).add(f.area)
            modalities_of.setdefault(f.area, set()).add(f.modality)
        self._inseparable = {
            (m, a) for m, areas in areas_of.items() for a in areas
            if areas == {a} and modalities_of[a] == {m}
        }

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def subset(self, name: str | int) -> Facts:
        key = normalize_config(name)
        try:
            return self._by_name[key]
        except KeyError:
            raise PlannerError(
                f"unknown config {key!r}: the planner knows {self._names[0]} .. {self._names[-1]}"
                + did_you_mean(key, self._names)
            ) from None

    def pool(self, pool: Pool, *, exclude: str | None = None) -> list[str]:
        """Config names in a pool: ``id`` (the paper's in-distribution subsets, Table 1),
        ``classification`` (single- and multi-label), ``all`` (with detection/segmentation)."""
        if pool not in POOLS:
            raise PlannerError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        out = []
        for n in self._names:
            f = self._by_name[n]
            if n == exclude:
                continue
            if pool == "id" and f.paper_distribution != "id":
                continue
            if pool == "classification" and not f.is_classification:
                continue
            out.append(n)
        return out

    def _task(self, f: Facts) -> str:
        return f.task_group if self.tasks == "grouped" else f.task

    def _shares(self, t: Facts, o: Facts, element: str) -> bool:
        """Does ``o`` bring ``element`` of ``t`` (task compared at the planner's task level)?"""
        if element == "task":
            return self._task(t) == self._task(o)
        return getattr(t, element) == getattr(o, element)

    @staticmethod
    def _differs(t: Facts, o: Facts, element: str) -> bool:
        """Does ``o`` *not* bring ``element`` of ``t``? Tasks are compared fine here (see module doc)."""
        return getattr(t, element) != getattr(o, element)

    def shared(self, target: str, other: str) -> tuple[str, ...]:
        """The elements ``other`` shares with ``target``, in (modality, area, task) order."""
        t, o = self.subset(target), self.subset(other)
        return tuple(e for e in ELEMENTS if self._shares(t, o, e))

    def relations(self, target: str, pool: Pool = DEFAULT_MIX_POOL) -> list[Relation]:
        """One :class:`Relation` per subset of ``pool`` other than the target."""
        t = self.subset(target)
        return [Relation(n, self.shared(t.name, n)) for n in self.pool(pool, exclude=t.name)]

    def related(self, target: str, pool: Pool = DEFAULT_MIX_POOL) -> list[str]:
        """Subsets sharing at least one element with the target."""
        return [r.config for r in self.relations(target, pool) if r.related]

    def unrelated(self, target: str, pool: Pool = DEFAULT_MIX_POOL) -> list[str]:
        """Subsets sharing no element with the target."""
        return [r.config for r in self.relations(target, pool) if not r.related]

    def without(self, target: str, element: str, pool: Pool = DEFAULT_MIX_POOL) -> list[str]:
        """Related minus the subsets that share ``element`` with the target (w/o Modality/Area/Task)."""
        if element not in ELEMENTS:
            raise PlannerError(f"element must be one of {', '.join(ELEMENTS)}, got {element!r}")
        return [r.config for r in self.relations(target, pool) if r.related and element not in r.shared]

    def select(self, target: str, rule: str, pool: Pool = DEFAULT_MIX_POOL) -> list[str]:
        """The configs a scale-up rule trains on (``baseline-plus`` selects the Unrelated subsets)."""
        if rule == "related":
            return self.related(target, pool)
        if rule in ("unrelated", "baseline-plus"):
            return self.unrelated(target, pool)
        if rule == "all":
            return self.pool(pool, exclude=self.subset(target).name)
        if rule.startswith("wo-") and rule[3:] in ELEMENTS:
            return self.without(target, rule[3:], pool)
        raise PlannerError(f"unknown rule {rule!r}; expected one of {', '.join(MIX_RULES)}")

    def inseparable(self, target: str) -> bool:
        """True when the target's modality and area never occur apart (the modality-area direction)."""
        t = self.subset(target)
        return (t.modality, t.area) in self._inseparable
