"""Croissant 1.1 metadata (``croissant.json``) of an export, built and checked with ``mlcroissant``.

One ``FileObject`` per file of the export (every parquet file, the card, ``licenses.csv`` and the build
report, each with its ``sha256`` and size), one ``FileSet`` per config (its parquet files) and one
``RecordSet`` per config whose fields read the parquet columns (:data:`~medmat_builder.records.COLUMNS`);
``split`` comes from the file name. The dataset node carries ``creator``, ``datePublished`` (a fixed
release date, or ``SOURCE_DATE_EPOCH``), the paper and the Responsible-AI properties that apply
(``rai:dataCollection``, ``rai:personalSensitiveInformation``, ``rai:dataLimitations``, ...; see
:mod:`~medmat_builder.publish.provenance`). The metadata is made with ``mlcroissant``'s Python API
(``mlc.Metadata``, ``FileObject``, ``FileSet``, ``RecordSet``, ``Field``), which checks it as it is built;
its JSON-LD (``Metadata.to_json``) is written with sorted collections and no absolute paths, so a
rebuild writes the same bytes.
:func:`validate_croissant` runs the ``mlcroissant`` checker on a written file (the same as
``mlcroissant validate --jsonld croissant.json``, offline).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmat_builder.publish import provenance
from medmat_builder.publish.licenses import export_sources
from medmat_builder.publish.naming import CARD_NAME, CROISSANT_NAME, DATASET_NAME, LICENSE_TABLE, MEDMAT_CITATION
from medmat_builder.records import BOX_COLUMNS, COLUMNS, MEDMAT_HOMEPAGE, Column
from medmat_builder.registry import Registry
from medmat_builder.report import REPORT_NAME, SCHEMA_NAME, BuildReport

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
#: The Responsible-AI extension whose ``rai:`` properties the metadata uses.
CONFORMS_TO_RAI = "http://mlcommons.org/croissant/RAI/1.0"
PARQUET = "application/x-parquet"
#: Encoding of the files beside the parquet ones.
ENCODINGS = {CARD_NAME: "text/markdown", LICENSE_TABLE: "text/csv", REPORT_NAME: "application/json",
             SCHEMA_NAME: "application/schema+json"}
DESCRIPTION = (
    "Med-MAT medical image VQA subsets rebuilt from their public sources; each config covers one "
    f"Modality/Area/Task triplet. Per-source terms are in the license column and in {LICENSE_TABLE}."
)


class CroissantError(ValueError):
    """The Croissant metadata does not pass ``mlcroissant``'s checks; the message lists its errors."""


@dataclass(frozen=True)
class FileDigest:
    """What Croissant records of one file: its SHA-256 (hex) and its size in bytes."""

    sha256: str
    size: int

    @classmethod
    def of_bytes(cls, data: bytes) -> FileDigest:
        """The digest of bytes held in memory (a payload file rewritten for the Hub)."""
        return cls(hashlib.sha256(data).hexdigest(), len(data))

    @classmethod
    def of_file(cls, path: str | Path) -> FileDigest:
        """The digest of a file on disk, read in 1 MiB blocks."""
        h, size = hashlib.sha256(), 0
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                size += len(block)
        return cls(h.hexdigest(), size)


def export_files(folder: str | Path, configs: list[str],
                 known: Mapping[str, FileDigest] | None = None) -> dict[str, FileDigest]:
    """Digest of every file of an export that Croissant lists: the configs' parquet files, then the card,
    ``licenses.csv`` and the build report where present (keys are paths relative to ``folder``).

    ``known`` maps paths to digests already taken (the build hashes each parquet file once, as soon as
    it is written); a file whose size no longer matches its known digest is read again."""
    folder = Path(folder)
    known = known or {}
    files = {f"{c}/{f.name}": f for c in sorted(configs) for f in sorted((folder / c).glob("*.parquet"))}
    files.update({name: folder / name for name in ENCODINGS if (folder / name).is_file()})
    return {rel: _digest(path, known.get(rel)) for rel, path in files.items()}


def _digest(path: Path, known: FileDigest | None) -> FileDigest:
    """``known`` if ``path`` still has its size, else the file's digest."""
    if known is not None and path.stat().st_size == known.size:
        return known
    return FileDigest.of_file(path)


def _file_objects(ctx, files: Mapping[str, FileDigest]):
    """One ``FileObject`` per file (id and ``contentUrl``: its relative path), sorted by path."""
    import mlcroissant as mlc

    return [
        mlc.FileObject(ctx=ctx, id=rel, name=rel, content_url=rel, content_size=f"{d.size} B", sha256=d.sha256,
                       encoding_formats=[PARQUET if rel.endswith(".parquet") else ENCODINGS[Path(rel).name]])
        for rel, d in sorted(files.items())
    ]


def _rai_properties() -> dict[str, Any]:
    """The Responsible-AI properties of the dataset node (see :mod:`~medmat_builder.publish.provenance`)."""
    p = provenance
    return dict(
        data_collection=p.DATA_COLLECTION, data_collection_type=list(p.DATA_COLLECTION_TYPE),
        data_collection_raw_data=p.DATA_COLLECTION_RAW_DATA, data_preprocessing_protocol=list(p.DATA_PREPROCESSING),
        data_annotation_protocol=list(p.DATA_ANNOTATION), machine_annotation_tools=list(p.MACHINE_ANNOTATION_TOOLS),
        data_use_cases=list(p.DATA_USE_CASES), data_biases=list(p.DATA_BIASES), data_limitations=list(p.DATA_LIMITATIONS),
        personal_sensitive_information=list(p.PERSONAL_SENSITIVE_INFORMATION), data_social_impact=p.DATA_SOCIAL_IMPACT,
        data_release_maintenance_plan=p.DATA_RELEASE_MAINTENANCE_PLAN,
    )


def _data_type(dtype: str):
    import mlcroissant as mlc

    return {"image": mlc.DataType.IMAGE_OBJECT, "int32": mlc.DataType.INTEGER}.get(dtype, mlc.DataType.TEXT)


def _field(ctx, config: str, file_set: str, column: Column, parent: str | None = None):
    """The field of one column (or of one part of a box, ``parent`` being ``boxes``)."""
    import mlcroissant as mlc

    uid = f"{config}/{parent}/{column.name}" if parent else f"{config}/{column.name}"
    if column.dtype == "list[box]":
        return mlc.Field(ctx=ctx, id=uid, name=column.name, description=column.doc, is_array=True,
                         sub_fields=[_field(ctx, config, file_set, c, column.name) for c in BOX_COLUMNS])
    path = "bytes" if column.dtype == "image" else column.name if parent else None
    source = mlc.Source(ctx=ctx, file_set=file_set, extract=mlc.Extract(ctx=ctx, column=parent or column.name),
                        transforms=[mlc.Transform(ctx=ctx, json_path=path)] if path else [])
    element = column.dtype[len("list["):-1] if column.dtype.startswith("list[") else column.dtype
    return mlc.Field(ctx=ctx, id=uid, name=column.name, description=None if parent else column.doc,
                     data_types=[_data_type(element)], source=source,
                     is_array=True if column.dtype.startswith("list[") else None)


def _config_nodes(ctx, config: str, title: str):
    """The ``FileSet`` of a config's parquet files and its ``RecordSet`` (a ``split`` field, then every column)."""
    import mlcroissant as mlc

    fs = f"{config}-parquet"
    file_set = mlc.FileSet(ctx=ctx, id=fs, name=fs, description=f"Parquet files of {config} (train and test).",
                           encoding_formats=[PARQUET], includes=[f"{config}/*.parquet"])
    split = mlc.Field(
        ctx=ctx, id=f"{config}/split", name="split", description="train or test (from the file name).",
        data_types=[mlc.DataType.TEXT],
        source=mlc.Source(ctx=ctx, file_set=fs, extract=mlc.Extract(ctx=ctx, file_property="filename"),
                          transforms=[mlc.Transform(ctx=ctx, regex="^(train|test)-.*\\.parquet$")]))
    fields = [split, *(_field(ctx, config, fs, c) for c in COLUMNS)]
    return file_set, mlc.RecordSet(ctx=ctx, id=config, name=config, description=title, fields=fields)


def croissant_metadata(registry: Registry, report: BuildReport, configs: list[str] | None = None,
                       url: str = MEDMAT_HOMEPAGE, files: Mapping[str, FileDigest] | None = None) -> dict[str, Any]:
    """Croissant JSON-LD of the export's configs (all built configs by default); :class:`CroissantError` if invalid.

    ``files`` maps each file's path in the export to its digest (:func:`export_files` of a folder); each
    becomes a ``FileObject`` with its ``sha256``. Pass every file the payload holds besides ``croissant.json``.
    """
    import mlcroissant as mlc

    names = sorted(configs if configs is not None else report.configs)
    licenses = sorted({s.license_url or s.license for s in export_sources(registry, report, names)})
    ctx = mlc.Context()
    distribution, record_sets = _file_objects(ctx, files or {}), []
    for n in names:
        file_set, record_set = _config_nodes(ctx, n, registry.subset(n).title)
        distribution.append(file_set)
        record_sets.append(record_set)
    published = provenance.date_published()
    creators = [mlc.Organization(ctx=ctx, **c) for c in provenance.CREATORS]
    meta = mlc.Metadata(
        ctx=ctx, name=DATASET_NAME, description=DESCRIPTION, cite_as=MEDMAT_CITATION, license=licenses, url=url,
        version="1.0.0", conforms_to=[CONFORMS_TO, CONFORMS_TO_RAI], distribution=distribution,
        record_sets=record_sets, creators=creators,
        date_published=dt.datetime(published.year, published.month, published.day),
        keywords=["medical imaging", "visual question answering", "compositional generalization"],
        **_rai_properties(),
    )
    if meta.issues.errors:
        raise CroissantError("Croissant metadata is invalid:\n" + "\n".join(sorted(meta.issues.errors)))
    return meta.to_json()


def write_croissant(folder: Path, registry: Registry, report: BuildReport, configs: list[str] | None = None,
                    url: str = MEDMAT_HOMEPAGE, known: Mapping[str, FileDigest] | None = None,
                    pool: Executor | None = None) -> Path:
    """Write ``croissant.json`` into ``folder``, listing (with checksums) every file already in it
    (``known``: digests already taken, see :func:`export_files`).

    ``pool``: worker processes (the build's, idle by then) to make the metadata in, where ``mlcroissant``
    may already be imported (:func:`preload`); the same JSON, and its errors raised here as they are."""
    folder = Path(folder)
    names = sorted(configs if configs is not None else report.configs)
    path = folder / CROISSANT_NAME
    files = export_files(folder, names, known)
    if pool is None:
        meta = croissant_metadata(registry, report, names, url, files)
    else:
        meta = pool.submit(croissant_metadata, registry, report, names, url, files).result()
    path.write_text(dumps(meta), encoding="utf-8")
    return path


def preload() -> None:
    """Import ``mlcroissant`` (a pool worker does, while the main process writes the other files)."""
    import mlcroissant  # noqa: F401


def dumps(meta: dict[str, Any]) -> str:
    """The file's text (two-space indent, UTF-8 kept, a final newline)."""
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


def validate_croissant(path: str | Path, strict: bool = False) -> list[str]:
    """Validate with ``mlcroissant`` (offline), as ``mlcroissant validate --jsonld PATH`` does.

    Returns the warnings (sorted); raises ``ValueError`` on errors, and with ``strict`` on warnings too.
    """
    import mlcroissant as mlc

    try:
        ds = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as exc:
        raise ValueError(f"{path} is not valid Croissant:\n{exc}") from None
    warnings = sorted(ds.metadata.ctx.issues.warnings)
    if strict and warnings:
        raise ValueError(f"{path} has Croissant warnings:\n" + "\n".join(warnings))
    return warnings
