"""The :class:`Planner`: relations, pairs and triples, and the mixtures built from them; mixture names resolved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from medmat_builder.planner.combinations import Combinations
from medmat_builder.planner.facts import (
    DEFAULT_BUDGET,
    DEFAULT_CAP,
    DEFAULT_COMBINATION_POOL,
    DEFAULT_MIX_POOL,
    MIX_RULES,
    RQ1_VOLUMES,
    RQ2_COMBINATION,
    RQ2_TARGET_VOLUMES,
    RULES,
    Facts,
    PlannerError,
    Pool,
    TaskLevel,
    normalize_config,
)
from medmat_builder.planner.mixture import Mixture, MixtureEntry, allocate
from medmat_builder.records import DEFAULT_SEED
from medmat_builder.registry import load_registry


class Planner(Combinations):
    """Relations, pairs, triples and mixtures over a fixed set of subsets."""

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


def planner_from_registry(registry=None, *, tasks: TaskLevel = "grouped") -> Planner:
    """A :class:`Planner` over the registry's subsets (``sources.yaml`` by default)."""
    if registry is None or isinstance(registry, (str, Path)):
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
