"""Loading ``sources.yaml``: YAML (libyaml's C parser where installed) without duplicate keys, then the typed registry.

Errors are :class:`RegistryError` naming the entry (by key or name, not list index) and the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from medmat_builder.registry import listing
from medmat_builder.registry.cache import parsed
from medmat_builder.registry.checks import Registry
from medmat_builder.resources import registry_path
from medmat_builder.scripts import UsageError

#: The checkout's ``sources.yaml``, or the copy an installed wheel carries (:mod:`medmat_builder.resources`).
DEFAULT_REGISTRY_PATH = registry_path()


class RegistryError(ValueError):
    """The registry file is malformed or inconsistent; the message names the entry and field.

    Its first line says what is wrong and where (file, line or entry); the lines after it, if any,
    list further problems (``medmat sources check`` prints them all).
    """


class RegistryNotFoundError(RegistryError, UsageError):
    """The registry file given does not exist (a usage error: exit status 2 on the command line)."""


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


def _yaml_where(exc: yaml.YAMLError) -> str:
    """``", line 12, column 3"`` (1-based) where the YAML parser stopped, if it says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint on one line (``found duplicate key 'x' while constructing a mapping``)."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"{problem} ({context})" if context else problem


def _parse_yaml(text: str) -> object:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass


def parse_registry(text: str, origin: str = "<string>", cache: bool = False) -> Registry:
    """Parse and validate registry YAML text; raise :class:`RegistryError` naming entry and field.

    ``cache``: take the parsed YAML from (and put it in) :mod:`~medmat_builder.registry.cache`; the
    validation runs either way. A registry that validates also leaves what ``medmat sources list`` prints
    (:mod:`~medmat_builder.registry.listing`).
    """
    try:
        data = parsed(text, _parse_yaml) if cache else _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{origin}{_yaml_where(exc)}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{origin}: expected a mapping with 'subsets' and 'sources' at the top")
    try:
        reg = Registry.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation_error(exc, data)
        count = len(problems.splitlines())
        raise RegistryError(
            f"{origin} is invalid ({count} problem{'s' if count > 1 else ''}): {problems}"
        ) from None
    if cache:
        listing.record(text, reg)
    return reg


def load_registry(path: str | Path | None = None, cache: bool = False) -> Registry:
    """Load ``sources.yaml`` (by default the repository's own, or the installed package's copy).

    ``cache``: read the parsed YAML from :mod:`~medmat_builder.registry.cache` (``~/.cache/medmat/registry``)
    and write it there; the registry is validated either way. ``medmat sources`` uses it.
    """
    path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryNotFoundError(
            f"registry file {path} not found; give --registry PATH of a sources.yaml, or leave it out for the default"
        ) from None
    except (IsADirectoryError, NotADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise RegistryNotFoundError(f"registry file {path} cannot be read ({type(exc).__name__}); "
                                    "give --registry PATH of a sources.yaml") from None
    return parse_registry(text, origin=str(path), cache=cache)
