"""The Python API: load the registry, build configs, plan mixtures, with the objects the commands use.

    import medmat_builder as mm

    registry = mm.load_registry()                      # a Registry (sources.yaml), as `medmat sources`
    result = mm.build_configs(["subset_25"], out="medmat", demo=True)   # a BuildResult, as `medmat build`
    mixture = mm.plan_mixture("subset_28", "related")  # a Mixture, as `medmat plan --mix related`

``import medmat_builder`` stays light: these names load on first use (``medmat_builder.__getattr__``).
Errors are the library's own: :class:`~medmat_builder.registry.RegistryError`,
:class:`~medmat_builder.build.BuildError`, :class:`~medmat_builder.safe_paths.UnsafePathError`,
:class:`~medmat_builder.planner.PlannerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medmat_builder.build import BuildResult, BuildSettings, build, check_out
from medmat_builder.demo import write_demo_sources
from medmat_builder.planner import (
    DEFAULT_BUDGET,
    DEFAULT_CAP,
    Mixture,
    Planner,
    caps_from_build_report,
    planner_from_registry,
)
from medmat_builder.records import DEFAULT_SEED
from medmat_builder.registry import Registry, load_registry
from medmat_builder.safe_paths import check_output_dir

__all__ = ["DEMO_RAW", "build_configs", "load_registry", "plan_mixture", "planner_from_registry"]

#: Where ``demo=True`` writes the synthetic raw sources unless ``data_dir`` is given (as ``medmat build --demo``).
DEMO_RAW = "medmat_demo_raw"

RegistryLike = Registry | str | Path | None


def _registry(registry: RegistryLike) -> Registry:
    return registry if isinstance(registry, Registry) else load_registry(registry)


def _names(configs: str | Sequence[str] | None) -> list[str] | None:
    if configs is None:
        return None
    return [configs] if isinstance(configs, str) else list(configs) or None


def build_configs(
    configs: str | Sequence[str] | None = None,
    *,
    out: str | Path = "medmat",
    data_dir: str | Path | None = None,
    demo: bool = False,
    seed: int = DEFAULT_SEED,
    num_proc: int = 1,
    partial: bool = False,
    lenient: bool = False,
    registry: RegistryLike = None,
    progress: bool = False,
) -> BuildResult:
    """Build ``configs`` (all 53 by default) into ``out``, like ``medmat build``; return the :class:`BuildResult`.

    ``data_dir`` holds each source unpacked as ``DATA_DIR/<key>/``. With ``demo=True`` synthetic sources
    for those configs are written first (to ``data_dir``, default ``./medmat_demo_raw``: a new, empty or
    earlier demo folder). ``out`` follows the rule of ``--out`` (a new path, an empty folder or an
    earlier medmat export); every path is checked before any work starts.
    """
    reg = _registry(registry)
    names = _names(configs)
    raw = data_dir if data_dir is not None else (DEMO_RAW if demo else None)
    if raw is None:
        raise ValueError("give data_dir (each source unpacked as DATA_DIR/<key>/), or demo=True")
    check_out(out, raw)
    if demo:
        check_output_dir(raw, "demo", label="data_dir")
        keys = {k for c in names for k in reg.subset(c).sources} if names else None
        write_demo_sources(raw, reg, keys=keys)
    settings = BuildSettings(seed=seed, num_proc=max(1, num_proc), lenient=lenient)
    return build(names, raw, out, settings, partial=partial, registry=reg, progress=progress)


def plan_mixture(
    target: str,
    rule: str = "related",
    *,
    members: Sequence[str] = (),
    budget: int = DEFAULT_BUDGET,
    cap: int = DEFAULT_CAP,
    report: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    pool: str | None = None,
    target_samples: int = 0,
    tasks: str = "grouped",
    registry: RegistryLike | Planner = None,
) -> Mixture:
    """The :class:`Mixture` that ``medmat plan --target TARGET --mix RULE`` writes (save it with ``.save(path)``).

    ``report`` (a build's ``build_report.json`` or its export folder) also caps each config at its kept
    training records, as ``--report``; the other arguments are the flags of the same names.
    """
    planner = registry if isinstance(registry, Planner) else planner_from_registry(registry, tasks=tasks)
    caps = caps_from_build_report(report) if report is not None else None
    return planner.mixture(target, rule, members=members, budget=budget, cap=cap, caps=caps, seed=seed,
                           pool=pool, target_samples=target_samples)
