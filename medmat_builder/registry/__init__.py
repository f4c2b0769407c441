"""The registry: ``sources.yaml`` typed (:mod:`~medmat_builder.registry.schema`), cross-checked
(:mod:`~medmat_builder.registry.checks`), loaded (:mod:`~medmat_builder.registry.loading`), and its
evidence coverage per source (:mod:`~medmat_builder.registry.coverage`).

The names below are imported on first use, so that ``medmat sources list`` can read its cached rows
(:mod:`~medmat_builder.registry.listing`) without importing pydantic.
"""

from medmat_builder.lazy import lazy_exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from medmat_builder.registry.checks import Registry, UnknownNameError
    from medmat_builder.registry.loading import DEFAULT_REGISTRY_PATH, RegistryError, load_registry, parse_registry
    from medmat_builder.registry.schema import FACTS, Download, Groups, GroupTable, Source, Subset, label_key

_EXPORTS = {
    **dict.fromkeys(("Registry", "UnknownNameError"), "medmat_builder.registry.checks"),
    **dict.fromkeys(("DEFAULT_REGISTRY_PATH", "RegistryError", "load_registry", "parse_registry"),
                    "medmat_builder.registry.loading"),
    **dict.fromkeys(("FACTS", "Download", "Groups", "GroupTable", "Source", "Subset", "label_key"),
                    "medmat_builder.registry.schema"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "DEFAULT_REGISTRY_PATH",
    "FACTS",
    "Download",
    "GroupTable",
    "Groups",
    "Registry",
    "RegistryError",
    "Source",
    "Subset",
    "UnknownNameError",
    "label_key",
    "load_registry",
    "parse_registry",
]
