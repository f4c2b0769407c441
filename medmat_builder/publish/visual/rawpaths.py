"""Where a shown row came from: its raw file, as the build noted it or found again by scanning its source's layout.

The parquet files do not carry raw paths. A build notes the raw path of every record it keeps
(:attr:`medmat_builder.report.ConfigReport.raw_paths`, handed over as ``found``), so the report of a
build never walks the raw tree again. For other rows (``medmat report OUT``, configs a build kept as
they were) the source is scanned: a row's id is ``<config>-<image_id(source, relative path)>``
(:func:`medmat_builder.images.image_id`), so scanning a source (no image is opened) maps ids back to
files. Paths are shown as ``<source folder>/<path>``, DICOM paths hashed as in the build report
(:func:`medmat_builder.report.safe_ref`); both ways give the same path. Without the raw folder, the
paths that an earlier report recorded (``raw_paths.json``) are used.
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

    def __init__(self, registry: Registry, raw: str | Path | None = None, known: Mapping[str, str] | None = None,
                 found: Mapping[str, str] | None = None):
        """``known``: paths an earlier report showed (used last); ``found``: row id -> raw path noted by the
        build (used first; a source is scanned only for a row it lacks)."""
        self.registry = registry
        self.raw = Path(raw) if raw is not None else None
        self.known = dict(known or {})
        self.found = found if found is not None else {}
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
        path = self.found.get(rid) or self._scan(source).get(rid.rpartition("-")[2]) or self.known.get(rid)
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
