"""medmat: Med-MAT as code (registry, builder, planner, export).

The Python API (:mod:`medmat_builder.api`) loads on first use, so ``import medmat_builder`` stays fast::

    import medmat_builder as mm
    mm.load_registry(); mm.build_configs(["subset_25"], out="medmat", demo=True); mm.plan_mixture("subset_28")
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first attribute access).
_LAZY: dict[str, str] = {
    "build_configs": "medmat_builder.api",
    "load_registry": "medmat_builder.api",
    "plan_mixture": "medmat_builder.api",
    "planner_from_registry": "medmat_builder.api",
    "BuildResult": "medmat_builder.build",
    "BuildSettings": "medmat_builder.build",
    "Mixture": "medmat_builder.planner",
    "Planner": "medmat_builder.planner",
    "Registry": "medmat_builder.registry",
    "cards_dir": "medmat_builder.resources",
    "registry_path": "medmat_builder.resources",
}

__all__ = ["__version__", *_LAZY]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from medmat_builder.api import build_configs, load_registry, plan_mixture, planner_from_registry
    from medmat_builder.build import BuildResult, BuildSettings
    from medmat_builder.planner import Mixture, Planner
    from medmat_builder.registry import Registry
    from medmat_builder.resources import cards_dir, registry_path


def __getattr__(name: str) -> object:
    """Import the API's names on first use (PEP 562)."""
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medmat_builder' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
