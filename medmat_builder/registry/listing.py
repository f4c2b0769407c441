"""What ``medmat sources list`` prints, kept from the last validated load of a registry so the list needs no YAML
parser and no pydantic.

An entry is written (next to :mod:`~medmat_builder.registry.cache`'s, same folder, same switches) only after a
registry text was parsed *and validated* by ``load_registry(..., cache=True)``, so an invalid registry never has
one and its list still fails as before. It is used only when everything that decided that validation is unchanged:

- the registry text (the entry's name is the sha256 of the text as :func:`~medmat_builder.registry.load_registry`
  reads it);
- medmat's own code: the bytes of every ``medmat_builder`` module loaded when the entry was written (the package
  this process imports is hashed again at each use);
- the Python version and the PyYAML and pydantic installations this interpreter would import (path, inode and
  modification time of each package's folder: a reinstall or upgrade replaces it).

Anything else (a damaged, foreign or partly written entry, an unreadable registry) is a miss: the caller loads
the registry in full, which validates it and writes a new entry. Entries are written to a temporary file and
renamed into place, so concurrent runs read a whole entry or none. Reading one executes nothing (JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from medmat_builder.registry.cache import cache_dir

if TYPE_CHECKING:
    from medmat_builder.registry.checks import Registry

#: Bumped when the entry's fields change; an entry of another format is a miss.
FORMAT = 1
#: The libraries whose installation the validation depends on (top-level import names).
LIBRARIES = ("pydantic", "pydantic_core", "yaml")
PACKAGE = "medmat_builder"


class Row(NamedTuple):
    """One source as ``medmat sources list`` shows it."""

    number: int
    key: str
    access: str
    redistributable: bool
    license: str
    subsets: list[str]


def entry_path(text: str) -> Path | None:
    """The listing entry of a registry text (``None`` when the cache is off)."""
    folder = cache_dir()
    if folder is None:
        return None
    return folder / f"list-{hashlib.sha256(text.encode('utf-8')).hexdigest()}.json"


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def _code_digest(files: list[str]) -> str | None:
    """sha256 over the names and bytes of ``files`` (relative to the package folder); ``None`` if one is missing."""
    root = _package_dir()
    digest = hashlib.sha256()
    for name in files:
        try:
            data = (root / name).read_bytes()
        except OSError:
            return None
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _libraries() -> list[list[object]] | None:
    """Where this interpreter would import :data:`LIBRARIES` from, and that folder's inode and mtime (no import)."""
    import importlib.util

    out: list[list[object]] = []
    for name in LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if len(folders) != 1:
            return None
        try:
            st = os.stat(folders[0])
        except OSError:
            return None
        out.append([name, folders[0], st.st_ino, st.st_mtime_ns])
    return out


def _environment() -> dict[str, object] | None:
    libraries = _libraries()
    return None if libraries is None else {"python": sys.version, "libraries": libraries}


def _loaded_code() -> list[str]:
    """The files, relative to the package folder, of every ``medmat_builder`` module loaded now."""
    root = _package_dir()
    files = set()
    for name, module in list(sys.modules.items()):
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            files.add(Path(path).resolve().relative_to(root).as_posix())
        except ValueError:  # a module of another copy of the package: the entry could not be checked
            return []
    return sorted(files)


def record(text: str, reg: Registry) -> None:
    """Keep what ``medmat sources list`` prints from ``reg``, validated from ``text``; failures are ignored."""
    path = entry_path(text)
    files = _loaded_code()
    environment = _environment()
    if path is None or not files or environment is None:
        return
    code = _code_digest(files)
    if code is None:
        return
    entry = {
        "format": FORMAT,
        "registry_sha256": path.stem.removeprefix("list-"),
        "environment": environment,
        "code_files": files,
        "code_sha256": code,
        "sources": [[s.number, s.key, s.access, s.redistributable, s.license, list(s.subsets)] for s in reg.sources],
        "subsets": {s.name: list(s.sources) for s in reg.subsets},
    }
    import tempfile  # here: reading an entry does without it

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f, ensure_ascii=False)
        os.replace(tmp, path)  # readers see the whole entry or none
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def rows(registry: Path, subset: str | None = None) -> list[Row] | None:
    """The rows of ``medmat sources list [--subset SUBSET]`` for the registry file, from a valid entry; ``None``
    (load the registry in full) when there is none, when anything it depends on changed, or when ``subset`` is
    not a config name the entry holds as written (a bare number, an unknown name: the full load answers)."""
    try:
        text = registry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    path = entry_path(text)
    if path is None:
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if not _valid(entry, path):
            return None
        by_key = {r[1]: Row(*r) for r in entry["sources"]}
        if subset is None:
            return sorted(by_key.values(), key=lambda r: r.number)
        keys = entry["subsets"].get(subset)
        return None if keys is None else [by_key[k] for k in keys]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _valid(entry: object, path: Path) -> bool:
    """Whether ``entry`` is whole, of this format, and everything it depends on is as when it was written."""
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return False
    if entry.get("registry_sha256") != path.stem.removeprefix("list-"):
        return False
    if entry.get("environment") != _environment():
        return False
    files = entry.get("code_files")
    if not isinstance(files, list) or not files or not all(_inside(f) for f in files):
        return False
    return entry.get("code_sha256") == _code_digest(files)


def _inside(name: object) -> bool:
    """Whether ``name`` is a relative path that stays inside the package folder (an entry names only such files)."""
    return isinstance(name, str) and not name.startswith("/") and ".." not in name.split("/")
