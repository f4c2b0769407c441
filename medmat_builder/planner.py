"""Compositional-generalization (CG) planner: the paper's data selections as named, reproducible mixtures.

Every subset carries a MAT triplet (modality, area, task). For a *target* subset the planner computes:

- **relations**: which elements each other subset shares with the target. *Related* shares at least
  one element, *Unrelated* shares none, *w/o Modality/Area/Task* is Related minus the subsets sharing
  that element (paper Section 3.2). Tasks are compared as groups by default (App. B.1 folds COVID and
  Cancer into State), or as fine tasks with ``tasks="fine"``.
- **controlled pairs** (Section 3.1, Table 3): two subsets X and Y that together supply the target's
  elements, in one of four *direction types*: ``fixed-modality`` (all three share the modality; X
  brings the area, Y the task), ``fixed-area`` (X brings the modality, Y the task), ``fixed-task``
  (X brings the modality, Y the area) and ``modality-area`` (X brings the modality-area pair, Y the
  task; only for targets whose modality and area never occur apart, e.g. dermoscopy/skin).
- **triples** (Section 4.3, Table 4): three subsets, each bringing exactly one element.
- **mixtures**: which configs to train on and how many samples of each, under a total budget
  (paper: 15,000) and per-subset caps (paper: 3,000 training samples per subset), deterministic
  for a seed (paper: 42). The target is never part of a mixture unless ``target_samples`` asks for it
  (RQ2).

"Brings element E" means the subset shares E with the target. "Does not bring E" is checked on the
*fine* task, so a CT/Lung/COVID subset can bring *Lung* to the CT/Lung/Cancer target even though both
are *State* in the grouped view: that is how the paper builds Table 3 (rows 1-3) and Table 4 (rows 2, 4).

The planner works on any objects with the attributes ``name, modality, area, task, task_group, kind,
paper_distribution`` (e.g. :class:`medmat_builder.registry.Subset`); :func:`planner_from_registry`
builds one from ``sources.yaml``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmat_builder.report import BuildReport

ELEMENTS: tuple[str, ...] = ("modality", "area", "task")
TaskLevel = Literal["grouped", "fine"]
Pool = Literal["id", "classification", "all"]
TASK_LEVELS: tuple[str, ...] = ("grouped", "fine")
POOLS: tuple[str, ...] = ("id", "classification", "all")
DIRECTIONS: tuple[str, ...] = ("fixed-modality", "fixed-area", "fixed-task", "modality-area")
MIX_RULES: tuple[str, ...] = (
    "related", "unrelated", "all", "wo-modality", "wo-area", "wo-task", "baseline-plus",
)
#: Rules that need explicit member configs in a mixture name (``pair:subset_26:subset_25+subset_32``).
MEMBER_RULES: tuple[str, ...] = ("pair", "triple", "configs")
RULES: tuple[str, ...] = MIX_RULES + MEMBER_RULES

DEFAULT_BUDGET = 15_000  # Section 3.2: total training volume of every scale-up mixture
DEFAULT_CAP = 3_000  # Section 2.1: each training set is limited to 3,000 samples
DEFAULT_SEED = 42  # Section 4.1
RQ1_VOLUMES: tuple[int, ...] = (0, 750, 1500, 2250, 3000)  # combination data (Figure 5)
RQ2_TARGET_VOLUMES: tuple[int, ...] = (0, 500, 1000, 1500, 2000)  # target data (Figure 6)
RQ2_COMBINATION = 3_000  # fixed combination volume for RQ2 (the paper does not state it; our choice)

#: Default pool per use (the paper's choices): Section 3.2 scale-up on ID subsets, Section 3.1 pairs
#: and Table 4 triples on all classification subsets (Table 3 trains on the OOD subsets 04 and 10).
DEFAULT_MIX_POOL: Pool = "id"
DEFAULT_COMBINATION_POOL: Pool = "classification"

_CLASSIFICATION_KINDS = ("single-label", "multi-label")


class PlannerError(ValueError):
    """A target, rule, pool or mixture name the planner cannot use; the message says what is valid."""


class SubsetLike(Protocol):
    name: str
    modality: str
    area: str
    task: str
    task_group: str
    kind: str
    paper_distribution: str


@dataclass(frozen=True)
class Facts:
    """The planner's own copy of a subset's triplet facts."""

    name: str
    modality: str
    area: str
    task: str
    task_group: str
    kind: str
    paper_distribution: str

    @classmethod
    def of(cls, obj: SubsetLike) -> "Facts":
        try:
            return cls(**{f: str(getattr(obj, f)) for f in cls.__dataclass_fields__})
        except AttributeError as exc:
            raise PlannerError(f"{obj!r} is not subset-like: {exc}") from None

    @property
    def is_classification(self) -> bool:
        return self.kind in _CLASSIFICATION_KINDS

    def label(self) -> str:
        """``X-ray / Lung / COVID``."""
        return f"{self.modality} / {self.area} / {self.task}"


@dataclass(frozen=True)
class Relation:
    """How one subset relates to the target."""

    config: str
    shared: tuple[str, ...]  # elements shared with the target, in ELEMENTS order

    @property
    def related(self) -> bool:
        return bool(self.shared)


@dataclass(frozen=True)
class Pair:
    """A Table 3-style controlled pair: ``x`` brings ``brings[0]``, ``y`` brings ``brings[1]``."""

    target: str
    direction: str
    x: str
    y: str
    brings: tuple[str, str]

    @property
    def configs(self) -> tuple[str, str]:
        return (self.x, self.y)


@dataclass(frozen=True)
class Triple:
    """A Table 4-style combination: one subset per element of the target's triplet."""

    target: str
    modality: str
    area: str
    task: str

    @property
    def configs(self) -> tuple[str, str, str]:
        return (self.modality, self.area, self.task)


def normalize_config(name: str | int) -> str:
    """``28``, ``"28"``, ``"subset_28"`` -> ``"subset_28"``."""
    text = str(name).strip()
    if text.startswith("subset_"):
        text = text[len("subset_"):]
    if not text.isdigit():
        raise PlannerError(f"{name!r} is not a config name: expected subset_NN (e.g. subset_28) or a number")
    return f"subset_{int(text):02d}"


# --------------------------------------------------------------------------------------------------
# Mixture files
# --------------------------------------------------------------------------------------------------


class MixtureEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str
    samples: int = Field(ge=0)


class Mixture(BaseModel):
    """Which configs to train on and how many samples of each; written as YAML by ``medmat plan``.

    Training draws ``samples`` records of each config with ``seed``. The target only appears in
    ``configs`` when ``target_samples`` > 0 (RQ2: a little target data plus combination data).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Mixture name, e.g. related:subset_28; with the fields below it reproduces "
                                  "this file via resolve_mixture(name, budget=..., seed=..., ...).")
    target: str
    rule: str
    rule_text: str = Field(description="The rule in words.")
    seed: int = DEFAULT_SEED
    budget: int = Field(ge=0)
    cap: int = Field(ge=0)
    pool: Pool
    tasks: TaskLevel
    target_samples: int = Field(default=0, ge=0)
    configs: list[MixtureEntry]

    @model_validator(mode="after")
    def _check(self) -> "Mixture":
        names = [e.config for e in self.configs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"configs listed more than once: {dupes}")
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; expected one of {', '.join(RULES)}")
        in_mix = {e.config: e.samples for e in self.configs}
        if self.target_samples == 0 and self.target in in_mix:
            raise ValueError(
                f"the target {self.target} is in configs but target_samples is 0: the target is only "
                "trained on when target_samples asks for it (RQ2)"
            )
        if self.target_samples > 0 and in_mix.get(self.target) != self.target_samples:
            raise ValueError(f"target_samples={self.target_samples} but configs give {self.target} "
                             f"{in_mix.get(self.target, 0)} samples")
        return self

    @property
    def total(self) -> int:
        return sum(e.samples for e in self.configs)

    @property
    def config_names(self) -> list[str]:
        return [e.config for e in self.configs]

    @property
    def sample_counts(self) -> dict[str, int]:
        return {e.config: e.samples for e in self.configs}

    def to_yaml(self) -> str:
        """Stable YAML text: same mixture, same bytes."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Mixture":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlannerError(
                f"mixture file {path} not found; write one with `medmat plan ... --out {path}`"
            ) from None
        if not isinstance(data, dict):
            raise PlannerError(f"{path}: a mixture file is a YAML mapping (target, rule, configs, ...)")
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise PlannerError(f"{path}: not a valid mixture:\n{exc}") from None


# --------------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------------


def allocate(
    configs: Sequence[str],
    budget: int,
    *,
    cap: int = DEFAULT_CAP,
    caps: Mapping[str, int] | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, int]:
    """Split ``budget`` samples as evenly as possible over ``configs``.

    Each config gets at most ``min(cap, caps[config])`` (``caps`` holds e.g. the available training
    records of each config); what a capped config cannot take goes to the others. When the budget
    does not divide evenly, the configs that get one sample more are drawn with ``seed``. Returns
    ``{config: samples}`` for configs with at least one sample, in the order given.
    """
    if budget < 0:
        raise PlannerError(f"budget must be >= 0, got {budget}")
    limit = {c: max(0, min(cap, (caps or {}).get(c, cap))) for c in configs}
    alloc = {c: 0 for c in configs}
    open_ = sorted(c for c in configs if limit[c] > 0)
    remaining = budget
    rng = random.Random(seed)
    while open_ and remaining > 0:
        share, extra = divmod(remaining, len(open_))
        full = [c for c in open_ if limit[c] - alloc[c] <= share]
        if full and share > 0:
            for c in full:
                remaining -= limit[c] - alloc[c]
                alloc[c] = limit[c]
            open_ = [c for c in open_ if c not in full]
            continue
        for c in open_:
            alloc[c] += share
        remaining -= share * len(open_)
        for c in rng.sample(open_, extra):
            alloc[c] += 1
        remaining = 0
    return {c: alloc[c] for c in configs if alloc[c] > 0}


def caps_from_build_report(path: str | Path) -> dict[str, int]:
    """Training records kept per config, read from a build's ``build_report.json`` ledger (or its export folder)."""
    return BuildReport.read(path).kept_train()


# --------------------------------------------------------------------------------------------------
# The planner
# --------------------------------------------------------------------------------------------------


class Planner:
    """Relations, pairs, triples and mixtures over a fixed set of subsets."""

    def __init__(self, subsets: Iterable[SubsetLike], *, tasks: TaskLevel = "grouped") -> None:
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

    # ---- lookup -------------------------------------------------------------------------------

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

    # ---- relations ----------------------------------------------------------------------------

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

    # ---- pairs and triples --------------------------------------------------------------------

    def inseparable(self, target: str) -> bool:
        """True when the target's modality and area never occur apart (the modality-area direction)."""
        t = self.subset(target)
        return (t.modality, t.area) in self._inseparable

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

    # ---- mixtures -----------------------------------------------------------------------------

    def mixture(
        self,
        target: str,
        rule: str,
        *,
        members: Sequence[str] = (),
        budget: int = DEFAULT_BUDGET,
        cap: int = DEFAULT_CAP,
        caps: Mapping[str, int] | None = None,
        seed: int = DEFAULT_SEED,
        pool: Pool | None = None,
        target_samples: int = 0,
    ) -> Mixture:
        """Build a :class:`Mixture` for ``target`` by ``rule``.

        Scale-up rules (``related``, ``unrelated``, ``all``, ``wo-*``) pick configs from ``pool``
        (default ``id``) and split ``budget`` over them. ``baseline-plus`` samples the Unrelated
        subsets to the volume that ``related`` (or, with ``members``, that combination) would get.
        ``pair`` / ``triple`` take ``members`` that must be one of :meth:`pairs` / :meth:`triples`
        (pool default ``classification``); ``configs`` takes any ``members``. ``target_samples`` > 0
        adds that many target records (RQ2); otherwise the target is never included.
        """
        t = self.subset(target)
        if rule not in RULES:
            raise PlannerError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        members = [normalize_config(m) for m in members]
        for m in members:
            self.subset(m)
        if t.name in members:
            raise PlannerError(f"{t.name} is the target; ask for target data with target_samples (RQ2) instead")
        if target_samples < 0:
            raise PlannerError(f"target_samples must be >= 0, got {target_samples}")
        combination_rules = ("pair", "triple", "configs")
        pool = pool or (DEFAULT_COMBINATION_POOL if rule in combination_rules else DEFAULT_MIX_POOL)
        name_tail = f":{'+'.join(members)}" if members else ""
        if rule in combination_rules:
            if not members:
                raise PlannerError(f"rule {rule!r} needs member configs, e.g. {rule}:{t.name}:subset_AA+subset_BB")
            self._check_members(t.name, rule, members)
            chosen = list(members)
            text = {
                "pair": f"controlled pair {' + '.join(members)} bringing the elements of {t.name}",
                "triple": f"{' + '.join(members)}: one subset per element of {t.name}",
                "configs": f"explicit configs {' + '.join(members)}",
            }[rule]
            counts = allocate(chosen, budget, cap=cap, caps=caps, seed=seed)
        elif rule == "baseline-plus":
            if members:
                self._check_members(t.name, "pair" if len(members) == 2 else "triple" if len(members) == 3
                                    else "configs", members)
                reference = allocate(members, budget, cap=cap, caps=caps, seed=seed)
                ref_text = " + ".join(members)
            else:
                reference = allocate(self.related(t.name, pool), budget, cap=cap, caps=caps, seed=seed)
                ref_text = "Related"
            volume = sum(reference.values())
            chosen = self.unrelated(t.name, pool)
            counts = allocate(chosen, volume, cap=cap, caps=caps, seed=seed)
            text = f"Baseline+: Unrelated subsets of {t.name} sampled to the volume of {ref_text} ({volume})"
        else:
            if members:
                raise PlannerError(f"rule {rule!r} takes no member configs")
            chosen = self.select(t.name, rule, pool)
            counts = allocate(chosen, budget, cap=cap, caps=caps, seed=seed)
            text = _RULE_TEXT[rule].format(target=t.name, triplet=self._triplet_text(t))
        entries = [MixtureEntry(config=c, samples=n) for c, n in counts.items()]
        if target_samples:
            entries.append(MixtureEntry(config=t.name, samples=target_samples))
        return Mixture(
            name=f"{rule}:{t.name}{name_tail}", target=t.name, rule=rule, rule_text=text, seed=seed,
            budget=budget, cap=cap, pool=pool, tasks=self.tasks, target_samples=target_samples,
            configs=entries,
        )

    def series(
        self,
        kind: Literal["rq1", "rq2"],
        target: str,
        rule: str,
        *,
        members: Sequence[str] = (),
        volumes: Sequence[int] | None = None,
        combination: int = RQ2_COMBINATION,
        **kwargs,
    ) -> list[Mixture]:
        """RQ1: the combination at volumes 0/750/1500/2250/3000. RQ2: combination fixed at
        ``combination`` samples plus 0/500/1000/1500/2000 target samples."""
        if kind == "rq1":
            return [self.mixture(target, rule, members=members, budget=v, **kwargs)
                    for v in (volumes or RQ1_VOLUMES)]
        if kind == "rq2":
            return [self.mixture(target, rule, members=members, budget=combination, target_samples=v, **kwargs)
                    for v in (volumes or RQ2_TARGET_VOLUMES)]
        raise PlannerError(f"series kind must be rq1 or rq2, got {kind!r}")

    def _check_members(self, target: str, rule: str, members: Sequence[str]) -> None:
        if rule == "pair":
            valid = {frozenset(p.configs) for p in self.pairs(target, "all")}
        elif rule == "triple":
            valid = {frozenset(p.configs) for p in self.triples(target, "all")}
        else:
            return
        if frozenset(members) not in valid:
            raise PlannerError(
                f"{' + '.join(members)} is not a {rule} for {target} under {self.tasks} tasks; "
                f"list them with `medmat plan --target {target} --{rule}s --pool all`, "
                f"or use configs:{target}:{'+'.join(members)} for an unchecked selection"
            )

    @staticmethod
    def _triplet_text(f: Facts) -> str:
        return f"{f.modality}, {f.area}, {f.task}"


_RULE_TEXT = {
    "related": "All Related: subsets sharing at least one MAT element with {target} ({triplet})",
    "unrelated": "All Unrelated: subsets sharing no MAT element with {target} ({triplet})",
    "all": "All Data: every subset of the pool except {target}",
    "wo-modality": "Related w/o Modality: Related subsets of {target} minus those sharing its modality",
    "wo-area": "Related w/o Area: Related subsets of {target} minus those sharing its area",
    "wo-task": "Related w/o Task: Related subsets of {target} minus those sharing its task",
}


# --------------------------------------------------------------------------------------------------
# Registry entry points
# --------------------------------------------------------------------------------------------------


def planner_from_registry(registry=None, *, tasks: TaskLevel = "grouped") -> Planner:
    """A :class:`Planner` over the registry's subsets (``sources.yaml`` by default)."""
    if registry is None or isinstance(registry, (str, Path)):
        from medmat_builder.registry import load_registry

        registry = load_registry(registry)
    return Planner(registry.subsets, tasks=tasks)


def parse_mixture_name(spec: str) -> tuple[str, str, list[str]]:
    """``related:subset_28`` -> ("related", "subset_28", []);
    ``pair:subset_26:subset_25+subset_32`` -> ("pair", "subset_26", ["subset_25", "subset_32"])."""
    parts = spec.strip().split(":")
    if len(parts) not in (2, 3) or parts[0] not in RULES:
        raise PlannerError(
            f"{spec!r} is neither a mixture file nor a mixture name; names look like RULE:TARGET "
            f"(RULE one of {', '.join(MIX_RULES)}) or pair|triple|configs:TARGET:subset_AA+subset_BB"
        )
    members = [normalize_config(m) for m in parts[2].split("+") if m] if len(parts) == 3 else []
    return parts[0], normalize_config(parts[1]), members


def resolve_mixture(
    spec: str | Path,
    *,
    planner: Planner | None = None,
    tasks: TaskLevel = "grouped",
    **options,
) -> Mixture:
    """A mixture from a YAML file path or from a name such as ``related:subset_28``,
    ``wo-area:subset_03``, ``baseline-plus:subset_28`` or ``pair:subset_26:subset_25+subset_32``.

    ``options`` go to :meth:`Planner.mixture` (budget, cap, caps, seed, pool, target_samples).
    Training and evaluation call this so that a name means the same selection everywhere.
    """
    text = str(spec)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Mixture.load(path)
    rule, target, members = parse_mixture_name(text)
    planner = planner or planner_from_registry(tasks=tasks)
    return planner.mixture(target, rule, members=members, **options)
