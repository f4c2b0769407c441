"""Load one split of one config from a ``medmat build`` export folder, a data file or the Hub, never stale.

``datasets`` keys its cache for a local folder by the folder's *name* and its README ``configs:``
block, not by the files' contents: after a rebuild into ``./medmat`` (or another export that is also
called ``medmat``), a plain ``load_dataset("medmat", ...)`` can return the old tables. Here a local
folder is read through a cache directory named after a fingerprint of the config's files (path,
size, modification time), so a rebuilt export is always read afresh and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FILE_KINDS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def cache_root() -> Path:
    """Where fingerprinted caches live (``MEDMAT_CACHE``, default ``~/.cache/medmat/datasets``)."""
    return Path(os.environ.get("MEDMAT_CACHE", Path.home() / ".cache" / "medmat" / "datasets"))


def folder_fingerprint(folder: Path, config: str | None) -> str:
    """sha256 over (relative path, size, mtime) of the README and the config's data files."""
    h = hashlib.sha256()
    paths = [folder / "README.md"]
    sub = folder / config if config else folder
    if sub.is_dir():
        paths += sorted(p for p in sub.rglob("*") if p.is_file())
    for p in paths:
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def check_config(export: Path, config: str | None) -> None:
    """Refuse a config an export folder does not hold, naming the closest it does (``ValueError``).

    Only for folders laid out as exports (``CONFIG/*.parquet``); anything else is left to ``datasets``.
    """
    import difflib  # (this module stands alone: scripts.did_you_mean, spelled out)

    configs = sorted(p.name for p in export.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    if config is None or not configs or config in configs:
        return
    near = difflib.get_close_matches(config.lower(), configs, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ValueError(f"config {config!r} not found in {export}{hint} "
                     f"(it holds {', '.join(configs[:5])}{' ...' if len(configs) > 5 else ''})")


def load_split(dataset_name: str, config: str | None, split: str):
    """One split (``train``/``test``) of one config as a ``datasets.Dataset``."""
    import datasets

    path = Path(dataset_name)
    if path.is_file():
        kind = FILE_KINDS.get(path.suffix)
        if kind is None:
            raise ValueError(f"cannot read {path}: use an export folder, a .parquet/.json/.jsonl/.csv file or a Hub id")
        cache = cache_root() / f"file-{folder_fingerprint(path.parent, path.name)}"
        return datasets.load_dataset(kind, data_files={split: str(path)}, split=split, cache_dir=str(cache))
    if path.is_dir():
        check_config(path, config)
        cache = cache_root() / f"{path.resolve().name}-{folder_fingerprint(path, config)}"
        return datasets.load_dataset(str(path), config, split=split, cache_dir=str(cache))
    return datasets.load_dataset(dataset_name, config, split=split)


class MissingImagesError(ValueError):
    """A split holds rows without an image (a text-only payload): ``medmat fill`` puts them back."""


def rows_without_image(ds) -> int:
    """How many rows of ``ds`` (a whole split, before any select) have no image: null, or neither bytes nor path."""
    import pyarrow.compute as pc

    if "image" not in ds.column_names:
        return 0
    missing = 0
    for chunk in ds.data.column("image").chunks:
        names = {chunk.type.field(i).name for i in range(chunk.type.num_fields)}
        if {"bytes", "path"} <= names:  # datasets' Image struct
            empty = pc.and_(pc.is_null(pc.struct_field(chunk, "bytes")), pc.is_null(pc.struct_field(chunk, "path")))
            missing += pc.sum(pc.or_(pc.is_null(chunk), empty).cast("int64")).as_py() or 0
        else:
            missing += chunk.null_count
    return missing


def require_images(ds, dataset_name: str, config: str | None, split: str) -> None:
    """Refuse a split with rows that have no image, in one line naming ``medmat fill`` (:class:`MissingImagesError`)."""
    missing = rows_without_image(ds)
    if missing:
        raise MissingImagesError(
            f"{dataset_name} {config}/{split}: {missing} of {len(ds)} rows have no image (a text-only payload: their "
            f"source forbids redistribution); put them back from your raw archives with `medmat fill {dataset_name} "
            "--data-dir RAW --out FILLED` and pass FILLED instead"
        )
