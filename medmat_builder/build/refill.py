"""``medmat fill``: put the images back into a text-only payload from the user's own raw archives.

A published config keeps images only for sources that allow redistribution; the other rows travel with
``image`` empty (:mod:`medmat_builder.publish.hub`). Every row still carries its stable ``id``
(``subset_NN-<image id>``, the image id a hash of the source key and the file's path inside the source
folder, :func:`medmat_builder.images.image_id`), its ``source`` and its ``image_hash`` (xxh3-128 of
the decoded pixels). So a row is filled by scanning its source's layout under ``RAW/<folder>/`` (the
registry's reader, tables and file names only), finding the raw record whose image id is the row's,
decoding it exactly as the build does (:func:`medmat_builder.build.loader.load_job`) and keeping it
only if its pixel hash is the row's ``image_hash``. The output is the payload in the same Hub layout,
each parquet file rewritten with the same schema and row groups as ``medmat build`` writes, so a
filled config is byte-identical to a local build of the same raw data.

Every image-less row ends up filled or counted under one of :data:`FILL_REASONS`; the report
(:class:`FillReport`) is printed as a table and written as ``fill_report.json`` beside the data.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medmat_builder import safe_paths
from medmat_builder.build.loader import Loader, LoadJob, shutdown_pools
from medmat_builder.build.parquet import write_table
from medmat_builder.images import image_id
from medmat_builder.layouts import LayoutError
from medmat_builder.publish.metadata import write_export_metadata
from medmat_builder.publish.visual import write_visual_report
from medmat_builder.records import RawRecord
from medmat_builder.registry import Registry, Source
from medmat_builder.report import BuildReport, ReportError

logger = logging.getLogger(__name__)

#: The file :func:`fill_payload` writes beside the data (and :meth:`FillReport.write`).
FILL_REPORT_NAME = "fill_report.json"
#: Kind of the output folder (see :mod:`medmat_builder.safe_paths`).
FILL_KIND = "fill"

#: Why a row without an image could not be filled.
FILL_REASONS: dict[str, str] = {
    "unknown_source": "the row's source is not in the registry (pass the registry the payload was built with)",
    "raw_missing": "the source's folder is not under --data-dir (download and unpack it as RAW/<folder>/)",
    "scan_failed": "the source's layout could not be read (a table missing or malformed)",
    "not_found": "no raw file of the source has the row's id (renamed, moved or deleted), or its file is missing",
    "outside_link": "the raw file is a link leading out of the source folder (never read)",
    "unreadable": "the raw file cannot be decoded (empty, truncated, corrupt or unsupported)",
    "hash_mismatch": "the decoded pixels differ from the row's image_hash (another version of the file)",
    "no_hash": "the row carries no image_hash to verify against (a payload from an older build: rebuild it)",
    "no_id": "the row's id does not have the form subset_NN-<image id>",
}


class FillError(RuntimeError):
    """The payload cannot be filled at all (not a payload, nothing to write); the message says what to do."""


@dataclass
class ConfigFill:
    """One config's rows: total, with an image already, filled, and not filled per reason."""

    rows: int = 0
    had_image: int = 0
    filled: int = 0
    not_filled: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "had_image": self.had_image, "filled": self.filled,
                "not_filled": dict(sorted(self.not_filled.items()))}


@dataclass
class FillReport:
    """What :func:`fill_payload` did: per config counts, and every row it could not fill with why."""

    payload: str
    data_dir: str
    out: str
    configs: dict[str, ConfigFill] = field(default_factory=dict)
    #: ``regenerated`` (README, licenses.csv, croissant.json written as ``medmat build`` writes them) or
    #: ``copied`` (the payload's own, which still describe a text-only upload)
    metadata: str = "copied"
    #: reason -> [(row id, detail)] of every row that is still without an image
    rows_not_filled: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    @property
    def total(self) -> int:
        return sum(c.rows for c in self.configs.values())

    @property
    def had_image(self) -> int:
        return sum(c.had_image for c in self.configs.values())

    @property
    def filled(self) -> int:
        return sum(c.filled for c in self.configs.values())

    @property
    def not_filled(self) -> Counter:
        out: Counter = Counter()
        for c in self.configs.values():
            out.update(c.not_filled)
        return out

    @property
    def complete(self) -> bool:
        """Does every row of the output hold an image?"""
        return not self.not_filled

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": self.payload, "data_dir": self.data_dir, "out": self.out,
            "metadata": self.metadata,
            "rows": self.total, "had_image": self.had_image, "filled": self.filled,
            "with_image": self.had_image + self.filled,
            "not_filled": dict(sorted(self.not_filled.items())),
            "reasons": {r: FILL_REASONS[r] for r in sorted(self.not_filled)},
            "configs": {n: c.to_json() for n, c in sorted(self.configs.items())},
            "rows_not_filled": {r: [{"id": i, "detail": d} for i, d in rows]
                                for r, rows in sorted(self.rows_not_filled.items())},
        }

    def table(self) -> str:
        """Per config: rows, images already there, filled, not filled (per reason); then the totals."""
        lines = [f"{'config':<12} {'rows':>6} {'had':>6} {'filled':>6} {'missing':>7}  not filled (reason: rows)"]
        for name, c in sorted(self.configs.items()):
            why = ", ".join(f"{r}: {n}" for r, n in sorted(c.not_filled.items())) or "-"
            missing = sum(c.not_filled.values())
            lines.append(f"{name:<12} {c.rows:>6} {c.had_image:>6} {c.filled:>6} {missing:>7}  {why}")
        missing = sum(self.not_filled.values())
        lines.append(f"{'total':<12} {self.total:>6} {self.had_image:>6} {self.filled:>6} {missing:>7}")
        lines.append(f"rows with an image: {self.had_image + self.filled} / {self.total} "
                     f"({self.filled} filled from {self.data_dir}, {missing} not filled)")
        for reason, rows in sorted(self.rows_not_filled.items()):
            rid, detail = rows[0]
            lines.append(f"  {reason}: {FILL_REASONS[reason]}; e.g. {rid}" + (f" ({detail})" if detail else ""))
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading the payload
def payload_files(payload: Path) -> dict[str, list[Path]]:
    """Config name -> its parquet files (``payload/<config>/*.parquet``), in name order."""
    configs: dict[str, list[Path]] = {}
    for folder in sorted(p for p in payload.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(folder.glob("*.parquet"))
        if files:
            configs[folder.name] = files
    return configs


def _image_ids(rows: pa.Table) -> list[str]:
    return [i.rpartition("-")[2] if i and "-" in i else "" for i in rows.column("id").to_pylist()]


# --------------------------------------------------------------------------- finding raw files
@dataclass
class _SourceIndex:
    """Image id -> raw record of one source (scanned once), or why the source cannot be used."""

    root: Path | None = None
    records: dict[str, RawRecord] = field(default_factory=dict)
    problem: str | None = None  # a FILL_REASONS key for every row of this source
    detail: str = ""


def _scan_source(source: Source, raw: Path) -> _SourceIndex:
    root = raw / source.folder
    if not root.is_dir():
        return _SourceIndex(problem="raw_missing", detail=f"{root} is not a folder")
    index = _SourceIndex(root=root)
    try:
        for rec in source.layout.scan(source, root):
            try:
                index.records.setdefault(image_id(source.key, rec.image), rec)
            except (UnicodeEncodeError, ValueError):  # a name that is not UTF-8, an absolute path
                continue
    except (LayoutError, OSError) as exc:
        return _SourceIndex(problem="scan_failed", detail=str(exc).splitlines()[0])
    return index


class _Sources:
    """The registry's sources under ``raw``, each scanned the first time a row asks for it."""

    def __init__(self, registry: Registry, raw: Path):
        self.registry, self.raw = registry, raw
        self.known = {s.key for s in registry.sources}
        self.cache: dict[str, _SourceIndex] = {}

    def get(self, key: str) -> _SourceIndex:
        if key not in self.cache:
            if key not in self.known:
                self.cache[key] = _SourceIndex(problem="unknown_source", detail=f"source {key!r}")
            else:
                self.cache[key] = _scan_source(self.registry.source(key), self.raw)
        return self.cache[key]


Planned = tuple[int, "LoadJob | None", str, str]


def _jobs(rows: pa.Table, sources: _Sources, counts: ConfigFill) -> Iterator[Planned]:
    """``(row, job, reason, detail)`` for every row without an image: a job to decode, or why there is none."""
    images = rows.column("image").to_pylist()
    ids = rows.column("id").to_pylist()
    hashes = rows.column("image_hash").to_pylist() if "image_hash" in rows.column_names else [None] * len(rows)
    for i, (image, rid, src, want, short) in enumerate(zip(images, ids, rows.column("source").to_pylist(), hashes,
                                                           _image_ids(rows))):
        if image is not None and (image.get("bytes") is not None or image.get("path")):
            counts.had_image += 1
            continue
        if not want:
            yield i, None, "no_hash", ""
            continue
        if not short:
            yield i, None, "no_id", ""
            continue
        index = sources.get(src)
        if index.problem:
            yield i, None, index.problem, index.detail
            continue
        rec = index.records.get(short)
        if rec is None:
            yield i, None, "not_found", ""
            continue
        if rec.drop_reason:
            yield i, None, "not_found", f"the layout says {rec.drop_reason}"
            continue
        if safe_paths.RawTree(index.root).escape(rec.image) is not None:  # type: ignore[arg-type]
            yield i, None, "outside_link", ""
            continue
        yield i, LoadJob(str(index.root / rec.image), str(index.root), rec, False), "", ""  # type: ignore[operator]


# --------------------------------------------------------------------------- filling one file
def fill_table(rows: pa.Table, sources: _Sources, loader: Loader, report: FillReport, counts: ConfigFill) -> pa.Table:
    """``rows`` with every image it could find, decode and verify filled in; the rest counted in ``counts``."""
    ids = rows.column("id").to_pylist()
    hashes = rows.column("image_hash").to_pylist() if "image_hash" in rows.column_names else [None] * len(rows)
    counts.rows += len(rows)
    planned = list(_jobs(rows, sources, counts))
    new_images: dict[int, dict[str, Any]] = {}
    todo = [(i, job) for i, job, _, _ in planned if job is not None]
    for i, reason, detail in ((i, r, d) for i, job, r, d in planned if job is None):
        counts.not_filled[reason] += 1
        report.rows_not_filled[reason].append((ids[i], detail))
    for (i, _), res in zip(todo, loader.imap(job for _, job in todo)):
        if res.error:
            counts.not_filled["unreadable"] += 1
            detail = f"{res.error}: {res.detail}" if res.detail else res.error
            report.rows_not_filled["unreadable"].append((ids[i], detail))
        elif res.pixel_hash != hashes[i]:
            counts.not_filled["hash_mismatch"] += 1
            report.rows_not_filled["hash_mismatch"].append((ids[i], f"raw pixels hash to {res.pixel_hash}"))
        else:
            counts.filled += 1
            new_images[i] = {"bytes": res.data, "path": None}
    if not new_images:
        return rows
    idx = rows.schema.get_field_index("image")
    old = rows.column(idx).to_pylist()
    column = pa.array([new_images.get(i, v) for i, v in enumerate(old)], type=rows.schema.field(idx).type)
    return rows.set_column(idx, rows.schema.field(idx), column)


# --------------------------------------------------------------------------- the whole payload
def _describe_as_export(payload: Path, stage: Path, registry: Registry, raw: Path) -> bool:
    """Write the card, ``licenses.csv``, ``croissant.json`` and the visual report (``report/``) as
    ``medmat build`` would for the filled data.

    Only from the payload's ``build_report.json`` and when the registry knows every config; else the
    payload's own files stay (they say text-only, which is then still true of some rows).
    """
    try:
        build_report = BuildReport.read(payload)
    except ReportError:
        return False
    if not build_report.configs or any(n not in registry.subset_names for n in build_report.configs):
        return False
    write_export_metadata(stage, registry, build_report)
    write_visual_report(stage, registry, build_report, raw=raw)
    return True


def fill_payload(payload: str | Path, raw: str | Path, out: str | Path, registry: Registry, *,
                 num_proc: int = 1) -> FillReport:
    """Fill every image-less row of ``payload`` that the raw archives under ``raw`` hold; write ``out``.

    ``out`` follows the output-folder rule (:mod:`medmat_builder.safe_paths`: new, empty, or an earlier
    ``medmat fill`` output) and receives the payload's files, the parquet files filled, and
    ``fill_report.json``. When every row then holds an image, the card, ``licenses.csv`` and
    ``croissant.json`` and ``report/`` are written again as ``medmat build`` writes them (the payload's describe an
    upload without those images). Raises :class:`FillError` when ``payload`` is not a payload and
    :class:`~medmat_builder.safe_paths.UnsafePathError` for a refused ``out``.
    """
    payload, raw = Path(payload), Path(raw)
    if not payload.is_dir():
        raise FillError(f"{payload} is not a folder: give the folder of a downloaded payload "
                        "(`hf download ORG/NAME --repo-type dataset --local-dir DIR`) or of `medmat publish --save`")
    configs = payload_files(payload)
    if not configs:
        raise FillError(f"{payload} holds no <config>/*.parquet files; is it a medmat payload?")
    if not raw.is_dir():
        raise FillError(f"--data-dir {raw} is not a folder (it must hold each source unpacked as {raw}/<key>/)")
    owned = safe_paths.claim(out, FILL_KIND, label="--out",
                             keep_clear=[("the data dir", raw), ("the payload", payload)])
    report = FillReport(payload=str(payload), data_dir=str(raw), out=str(owned.path))
    sources = _Sources(registry, raw)
    loader = Loader(max(1, num_proc))
    try:
        with owned.lock(f"another medmat process is writing to {owned.path}"):
            stage = owned.scratch()
            for entry in sorted(payload.iterdir()):  # the card, licenses, Croissant, report: as they are
                if entry.is_file() and not entry.name.startswith(".") and entry.name != FILL_REPORT_NAME:
                    shutil.copyfile(entry, stage / entry.name)
            for name, files in configs.items():
                counts = report.configs.setdefault(name, ConfigFill())
                (stage / name).mkdir()
                for f in files:
                    table = fill_table(pq.read_table(f), sources, loader, report, counts)
                    write_table(table, stage / name / f.name)
                logger.info("%s: %d rows, %d filled", name, counts.rows, counts.filled)
            if report.complete and _describe_as_export(payload, stage, registry, raw):
                report.metadata = "regenerated"
            (stage / FILL_REPORT_NAME).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
            owned.commit(stage, remove=owned.files())
    except BaseException:
        owned.abandon()
        raise
    finally:
        shutdown_pools()  # the decoding processes of --num-proc
    return report
