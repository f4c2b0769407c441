"""Skip the configs a rerun would rebuild identically: complete output, unchanged inputs.

A config's inputs fingerprint (sha256) covers its registry entry and those of its sources (and of the
entries sharing their folders), the listing of each source folder (every path with its size and
modification time, links not followed), the build settings except ``num_proc`` (which never changes
the output), the sources present (``--partial``) and the code (medmat's version and the hash of its
Python files). ``medmat build`` stores the fingerprint of every config it wrote in
``OUT/.medmat/inputs.json`` once the export is committed; a config whose fingerprint is stored, whose
folder holds exactly the rows the build report gives, is kept as it is (``--force`` rebuilds it).
A changed raw file or registry entry changes only the fingerprints of the configs that read it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

from medmat_builder.build.settings import BuildSettings
from medmat_builder.layouts.file_index import folder_walk
from medmat_builder.registry import Registry

FILE = "inputs.json"


@lru_cache(maxsize=1)
def code_version() -> str:
    """medmat's version and a hash of its Python files (any code change rebuilds)."""
    import medmat_builder

    root = Path(medmat_builder.__file__).parent
    h = hashlib.sha256(medmat_builder.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode("utf-8", "surrogateescape"))
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{medmat_builder.__version__}+{h.hexdigest()[:16]}"


def folder_listing(folder: Path) -> str:
    """Hash of every entry below ``folder``: relative path, size and modification time (links not followed).

    The rows come from the folder's walk (:func:`~medmat_builder.layouts.file_index.folder_walk`), which a
    build's scans then reuse, so each source folder is listed once per build."""
    rows = sorted(folder_walk(folder, stat=True).rows or ())
    h = hashlib.sha256()
    if rows:  # every row followed by a newline, hashed in one update
        h.update(b"\n".join(rows))
        h.update(b"\n")
    return h.hexdigest()


def config_fingerprint(registry: Registry, name: str, raw: Path, settings: BuildSettings,
                       only: Iterable[str] | None, listings: dict[Path, str] | None = None) -> str:
    """The inputs fingerprint of config ``name`` (``listings`` caches folder listings within one build)."""
    listings = {} if listings is None else listings
    sub = registry.subset(name)
    keys = tuple(only) if only is not None else tuple(sub.sources)
    entries, folders = {}, {}
    for key in keys:
        src = registry.source(key)
        for other in (src, *registry.sharing_folder(src)):
            entries[other.key] = other.model_dump(mode="json")
        folder = raw / src.folder
        if folder not in listings:
            listings[folder] = folder_listing(folder)
        folders[key] = listings[folder]
    data = {
        "subset": sub.model_dump(mode="json"),
        "sources": entries,
        "present": list(keys),
        "listing": folders,
        "settings": settings.record().model_dump(mode="json"),
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Fingerprints:
    """The stored fingerprints of an export (``OUT/.medmat/inputs.json``); written atomically."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / FILE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self.configs: dict[str, str] = {k: v for k, v in (data.get("configs") or {}).items()
                                        if isinstance(k, str) and isinstance(v, str)}

    def matches(self, name: str, fingerprint: str) -> bool:
        return self.configs.get(name) == fingerprint

    def update(self, new: Mapping[str, str], forget: Iterable[str] = ()) -> None:
        """Store ``new`` fingerprints and drop those of ``forget``; write the file."""
        for name in forget:
            self.configs.pop(name, None)
        self.configs.update(new)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"configs": dict(sorted(self.configs.items()))}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def complete(folder: Path, expected: Mapping[str, int], rows_on_disk) -> bool:
    """Whether ``folder`` holds exactly the rows per split the report gives (``rows_on_disk(folder)``)."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        return dict(rows_on_disk(folder)) == dict(expected)
    except Exception:  # an unreadable or truncated shard: not complete
        return False
