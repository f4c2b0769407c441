"""Planner mixtures as training data: which configs, how many records of each, the target to protect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MixturePlan:
    """What training needs of a planner mixture: the target and (config, samples) pairs."""

    target: str | None
    configs: list[tuple[str, int | None]]
    seed: int | None = None


def resolve_mixture(spec: str, dataset_name: str | None = None) -> MixturePlan:
    """Turn ``related:subset_28`` or a mixture file into a :class:`MixturePlan` via the planner.

    When ``dataset_name`` is a local export with a ``build_report.json``, a mixture *name* is planned
    with that build's training counts as caps (as the experiment runner does), so configs that hold
    fewer records than the default allocation do not silently shrink the mixture's volume.
    """
    from medmat_builder.planner import caps_from_build_report
    from medmat_builder.planner import resolve_mixture as plan_mixture

    options: dict[str, Any] = {}  # a mixture file ignores them: it is read as written
    ledger = Path(dataset_name) / "build_report.json" if dataset_name else None
    if ledger is not None and ledger.is_file():
        options["caps"] = caps_from_build_report(ledger)
    try:
        mix = plan_mixture(spec, **options)
    except (ValueError, OSError) as err:  # PlannerError is a ValueError; its messages say what to do
        raise SystemExit(f"--mixture {spec!r}: {err}") from err
    return MixturePlan(target=mix.target, configs=[(e.config, e.samples) for e in mix.configs], seed=mix.seed)
