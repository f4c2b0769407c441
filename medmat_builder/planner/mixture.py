"""Mixtures: which configs to train on and how many samples of each (a YAML file), and how a budget is split."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmat_builder.planner.facts import DEFAULT_CAP, RULES, PlannerError, Pool, TaskLevel
from medmat_builder.records import DEFAULT_SEED
from medmat_builder.report import BuildReport


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
