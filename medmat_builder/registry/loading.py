"""Loading ``sources.yaml``: YAML (libyaml's C parser where installed) without duplicate keys, then the typed registry.

Errors are :class:`RegistryError` naming the entry (by key or name, not list index) and the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from medmat_builder.registry.checks import Registry
from medmat_builder.resources import registry_path

#: The checkout's ``sources.yaml``, or the copy an installed wheel carries (:mod:`medmat_builder.resources`).
DEFAULT_REGISTRY_PATH = registry_path()


class RegistryError(ValueError):
    """The registry file is malformed or inconsistent; the message names the entry and field."""


def _format_validation_error(err: ValidationError, data: dict) -> str:
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc)
        # Name the entry by its key/name rather than its list index.
        if len(loc) >= 2 and loc[0] in ("sources", "subsets") and isinstance(loc[1], int):
            try:
                entry = data[loc[0]][loc[1]]
                label = entry.get("key") or entry.get("name") or f"#{loc[1]}"
            except (IndexError, KeyError, TypeError, AttributeError):
                label = f"#{loc[1]}"
            kind = "source" if loc[0] == "sources" else "subset"
            field = ".".join(str(p) for p in loc[2:]) or "(entry)"
            where = f"{kind} {label}: field '{field}'"
        lines.append(f"{where}: {e['msg']}")
    return "\n".join(lines)


#: libyaml's parser (a C extension, several times faster on ``sources.yaml``) where PyYAML was built with it.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loader that refuses duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_registry(text: str, origin: str = "<string>") -> Registry:
    """Parse and validate registry YAML text; raise :class:`RegistryError` naming entry and field."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RegistryError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{origin}: expected a mapping with 'subsets' and 'sources' at the top")
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{origin}:\n{_format_validation_error(exc, data)}") from None


def load_registry(path: str | Path | None = None) -> Registry:
    """Load ``sources.yaml`` (by default the repository's own, or the installed package's copy)."""
    path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"registry file {path} not found; pass --registry FILE (a sources.yaml)") from None
    return parse_registry(text, origin=str(path))
