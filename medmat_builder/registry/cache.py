"""A cache of the parsed ``sources.yaml``: the YAML read once, kept as JSON under ``~/.cache/medmat/registry/``.

Parsing the registry's YAML is most of what ``medmat sources list`` does; JSON of the same data reads
in a few milliseconds. The cache holds only the *parsed data* (never Python objects: loading it runs
no code), keyed by the sha256 of the file's text and the PyYAML version, and the registry is
validated from it exactly as from the YAML, so a change of the schema needs no invalidation. Data
that JSON cannot hold exactly (keys that are not strings, dates) is not cached. A cache file that
cannot be read or parsed is ignored. ``MEDMAT_REGISTRY_CACHE`` names another folder (``XDG_CACHE_HOME``
is honoured too); ``MEDMAT_NO_CACHE=1`` turns it off.

The same folder holds what ``medmat sources list`` prints (:mod:`~medmat_builder.registry.listing`).

Only ``load_registry(..., cache=True)`` uses it: ``medmat sources`` (browsing the registry), never a
command that does work, so a refused build or fetch writes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_DIR_ENV = "MEDMAT_REGISTRY_CACHE"
NO_CACHE_ENV = "MEDMAT_NO_CACHE"


def cache_dir() -> Path | None:
    """Where parsed registries are kept, or ``None`` when the cache is off."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medmat" / "registry"


def cache_path(text: str) -> Path | None:
    """The cache file of a registry text (``None`` when the cache is off)."""
    folder = cache_dir()
    if folder is None:
        return None
    import yaml  # here, not at the top: the folder alone is wanted without PyYAML (registry/listing.py)

    key = hashlib.sha256(f"pyyaml {yaml.__version__}\n".encode() + text.encode("utf-8")).hexdigest()
    return folder / f"{key}.json"


def parsed(text: str, parse: Callable[[str], object]) -> object:
    """``parse(text)``, from the cache when this exact text was parsed before; errors are never cached."""
    path = cache_path(text)
    if path is not None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    data = parse(text)
    if path is not None:
        _store(path, data)
    return data


def _store(path: Path, data: object) -> None:
    try:
        dumped = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # dates, sets, ...: not JSON
        return
    if json.loads(dumped) != data:  # e.g. an integer key would come back as a string
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumped)
        os.replace(tmp, path)  # readers see the whole file or none
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
