"""Skip the configs a rerun would rebuild identically: complete output, unchanged inputs.

A config's inputs fingerprint (sha256) covers its registry entry and those of its sources (and of the
entries sharing their folders), the listing of each source folder (every path with its size and
modification time, links not followed), the build settings except ``num_proc`` (which never changes
the output), the sources present (``--partial``) and the code (medmat's version and the hash of its
Python files). ``medmat build`` stores the fingerprint of every config it wrote in
``OUT/.medmat/inputs.json`` once the export is committed; a config whose fingerprint is stored, whose
folder holds exactly the rows the build report gives, is kept as it is (``--force`` rebuilds it).
A changed raw file or registry entry changes only the fingerprints of the configs that read it.
With worker processes the folder listings may be taken in a process of their own while the build
scans (:class:`ListingsAside`); the fingerprints are the same.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


class ListingsAside(dict):
    """Folder -> :func:`folder_listing`, taken in one process of its own, started now, while the build goes on
    (its scan walks the folders again without ``stat``, on the other core): a ``listings`` cache for
    :func:`config_fingerprint`. Reading a folder's listing waits for it; one the process could not
    take is taken here."""

    def __init__(self, folders: Iterable[Path]):
        super().__init__()
        self._waiting = list(dict.fromkeys(Path(f) for f in folders))
        ctx = multiprocessing.get_context()
        self._conn, child = ctx.Pipe(duplex=False)
        folders_text = [os.fspath(f) for f in self._waiting]
        self._proc = ctx.Process(target=_listings_main, args=(child, folders_text, os.getpid()), daemon=True,
                                 name="medmat-listings")
        self._proc.start()
        child.close()
        weakref.finalize(self, _stop, self._proc, self._conn)

    def __contains__(self, folder: object) -> bool:
        return super().__contains__(folder) or folder in self._waiting

    def __missing__(self, folder: Path) -> str:
        while folder in self._waiting:
            try:
                path, listing = self._conn.recv()
            except (EOFError, OSError):  # the process ended early: the rest here
                self._waiting.clear()
                break
            self._waiting.remove(Path(path))
            self[Path(path)] = listing if listing is not None else folder_listing(Path(path))
        if not self._waiting:
            _stop(self._proc, self._conn)
        if not super().__contains__(folder):
            self[folder] = folder_listing(folder)
        return super().__getitem__(folder)


def _listings_main(conn, folders: list[str], parent: int) -> None:
    """The :class:`ListingsAside` process: each folder's listing (None: taken in the build instead), in order."""
    from medmat_builder.build.signals import worker_init

    worker_init(parent)  # dies with the build, leaves signals and the lock to it
    try:
        os.nice(10)  # the core the scan leaves idle, not the scan's own (the listings are read at the end)
    except OSError:
        pass
    for folder in folders:
        try:
            listing: str | None = folder_listing(Path(folder))
        except Exception:  # noqa: BLE001  (the build takes it again, and raises there if it must)
            listing = None
        conn.send((folder, listing))
    conn.close()


def _stop(proc, conn) -> None:
    """End a :class:`ListingsAside` process (done or not) and close its pipe."""
    conn.close()
    if proc.is_alive():
        proc.kill()
    proc.join()


class LazyFingerprints(Mapping[str, str]):
    """Config name -> its inputs fingerprint (``fingerprint(name)``), each worked out when first read."""

    def __init__(self, names: Iterable[str], fingerprint: Callable[[str], str]):
        self._names = list(names)
        self._fingerprint = fingerprint
        self._done: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._done:
            if name not in self._names:
                raise KeyError(name)
            self._done[name] = self._fingerprint(name)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def input_fingerprints(registry: Registry, names: Sequence[str], raw: Path, settings: BuildSettings,
                       only: Callable[[str], tuple[str, ...] | None], aside: bool) -> Mapping[str, str]:
    """The inputs fingerprint of each config of ``names`` (``only(name)``: its sources present, None for all).
    With ``aside`` (worker processes, and a config that the build makes anyway: its fingerprint is read at
    the end) each is worked out when first read, and the folder listings are taken meanwhile in a process
    of their own (:class:`ListingsAside`); else all of them now, before any work (the scans then reuse the
    listings' walks)."""
    if not aside:
        listings: dict[Path, str] = {}
        return {name: config_fingerprint(registry, name, raw, settings, only(name), listings) for name in names}
    aside_listings = ListingsAside(raw / registry.source(key).folder for name in names
                                   for key in (only(name) or registry.subset(name).sources))
    return LazyFingerprints(names, lambda name: config_fingerprint(registry, name, raw, settings, only(name),
                                                                   aside_listings))


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
