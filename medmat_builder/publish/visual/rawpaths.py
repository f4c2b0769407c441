"""Where a shown row came from: its raw file, found again by scanning its source's layout.

The parquet files do not carry raw paths; a row's id is ``<config>-<image_id(source, relative path)>``
(:func:`medmat_builder.images.image_id`), so scanning a source (no image is opened) maps ids back to
files. Paths are shown as ``<source folder>/<path>``, DICOM paths hashed as in the build report
(:func:`medmat_builder.report.safe_ref`). Without the raw folder, the paths that an earlier report
recorded (``raw_paths.json``) are used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from medmat_builder.images import image_id
from medmat_builder.registry import Registry
from medmat_builder.report import safe_ref

logger = logging.getLogger(__name__)


class RawPaths:
    """``(source key, row id) -> raw path`` for one export; remembers every path it gave (:attr:`shown`)."""

    def __init__(self, registry: Registry, raw: str | Path | None = None, known: Mapping[str, str] | None = None):
        self.registry = registry
        self.raw = Path(raw) if raw is not None else None
        self.known = dict(known or {})
        self.shown: dict[str, str] = {}
        self._scanned: dict[str, dict[str, str]] = {}

    def _scan(self, key: str) -> dict[str, str]:
        if key not in self._scanned:
            found: dict[str, str] = {}
            try:
                source = self.registry.source(key)
                root = self.raw / source.folder if self.raw is not None else None
                if root is not None and root.is_dir():
                    for rec in source.layout.scan(source, root):
                        found.setdefault(image_id(source.key, rec.image), safe_ref(f"{source.folder}/{rec.image}"))
            except Exception as exc:  # a source that no longer scans: its paths are just not shown
                logger.warning("visual report: cannot scan source %s for raw paths (%s)", key, exc)
            self._scanned[key] = found
        return self._scanned[key]

    def __call__(self, source: str, rid: str) -> str | None:
        digest = rid.rpartition("-")[2]
        path = self._scan(source).get(digest) or self.known.get(rid)
        if path is not None:
            self.shown[rid] = path
        return path

    def file(self, source: str, ref: str) -> Path | None:
        """The raw file ``ref`` (relative to the folder of ``source``) if the raw folder holds it."""
        if self.raw is None or ref.startswith("dicom:"):
            return None
        try:
            path = self.raw / self.registry.source(source).folder / ref
        except KeyError:
            return None
        return path if path.is_file() else None
