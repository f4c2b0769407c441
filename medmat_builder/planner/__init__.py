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
paper_distribution`` (:class:`~medmat_builder.planner.facts.Facts`; e.g. :class:`medmat_builder.registry.Subset`); :func:`planner_from_registry`
builds one from ``sources.yaml``.
"""

from typing import TYPE_CHECKING

from medmat_builder.lazy import lazy_exports

if TYPE_CHECKING:
    from medmat_builder.planner.facts import (
        DEFAULT_BUDGET,
        DEFAULT_CAP,
        DEFAULT_COMBINATION_POOL,
        DEFAULT_MIX_POOL,
        DIRECTIONS,
        ELEMENTS,
        MEMBER_RULES,
        MIX_RULES,
        POOLS,
        RQ1_VOLUMES,
        RQ2_COMBINATION,
        RQ2_TARGET_VOLUMES,
        RULES,
        TASK_LEVELS,
        Facts,
        Pair,
        PlannerError,
        Relation,
        Triple,
        normalize_config,
    )
    from medmat_builder.planner.mixture import Mixture, MixtureEntry, allocate, caps_from_build_report
    from medmat_builder.planner.planner import Planner, parse_mixture_name, planner_from_registry, resolve_mixture
    from medmat_builder.records import DEFAULT_SEED

#: Where each name lives: imported on first use, so that importing one module of the package (the
#: command line reading its options) does not import them all.
_EXPORTS = {
    "DEFAULT_BUDGET": "medmat_builder.planner.facts",
    "DEFAULT_CAP": "medmat_builder.planner.facts",
    "DEFAULT_COMBINATION_POOL": "medmat_builder.planner.facts",
    "DEFAULT_MIX_POOL": "medmat_builder.planner.facts",
    "DIRECTIONS": "medmat_builder.planner.facts",
    "ELEMENTS": "medmat_builder.planner.facts",
    "MEMBER_RULES": "medmat_builder.planner.facts",
    "MIX_RULES": "medmat_builder.planner.facts",
    "POOLS": "medmat_builder.planner.facts",
    "RQ1_VOLUMES": "medmat_builder.planner.facts",
    "RQ2_COMBINATION": "medmat_builder.planner.facts",
    "RQ2_TARGET_VOLUMES": "medmat_builder.planner.facts",
    "RULES": "medmat_builder.planner.facts",
    "TASK_LEVELS": "medmat_builder.planner.facts",
    "Facts": "medmat_builder.planner.facts",
    "Pair": "medmat_builder.planner.facts",
    "PlannerError": "medmat_builder.planner.facts",
    "Relation": "medmat_builder.planner.facts",
    "Triple": "medmat_builder.planner.facts",
    "normalize_config": "medmat_builder.planner.facts",
    "Mixture": "medmat_builder.planner.mixture",
    "MixtureEntry": "medmat_builder.planner.mixture",
    "allocate": "medmat_builder.planner.mixture",
    "caps_from_build_report": "medmat_builder.planner.mixture",
    "Planner": "medmat_builder.planner.planner",
    "parse_mixture_name": "medmat_builder.planner.planner",
    "planner_from_registry": "medmat_builder.planner.planner",
    "resolve_mixture": "medmat_builder.planner.planner",
    "DEFAULT_SEED": "medmat_builder.records",
}

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_CAP",
    "DEFAULT_COMBINATION_POOL",
    "DEFAULT_MIX_POOL",
    "DEFAULT_SEED",
    "DIRECTIONS",
    "ELEMENTS",
    "MEMBER_RULES",
    "MIX_RULES",
    "POOLS",
    "RQ1_VOLUMES",
    "RQ2_COMBINATION",
    "RQ2_TARGET_VOLUMES",
    "RULES",
    "TASK_LEVELS",
    "Facts",
    "Mixture",
    "MixtureEntry",
    "Pair",
    "Planner",
    "PlannerError",
    "Relation",
    "Triple",
    "allocate",
    "caps_from_build_report",
    "normalize_config",
    "parse_mixture_name",
    "planner_from_registry",
    "resolve_mixture",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
