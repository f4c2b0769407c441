"""The registry: ``sources.yaml`` typed (:mod:`~medmat_builder.registry.schema`), cross-checked
(:mod:`~medmat_builder.registry.checks`), loaded (:mod:`~medmat_builder.registry.loading`), and its
evidence coverage per source (:mod:`~medmat_builder.registry.coverage`)."""

from medmat_builder.registry.checks import Registry, UnknownNameError
from medmat_builder.registry.loading import DEFAULT_REGISTRY_PATH, RegistryError, load_registry, parse_registry
from medmat_builder.registry.schema import FACTS, Download, Groups, GroupTable, Source, Subset, label_key

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
