"""Croissant 1.1 metadata (``croissant.json``) of an export, built and checked with ``mlcroissant``.

One ``FileSet`` per config (its parquet files) and one ``RecordSet`` per config whose fields read the
parquet columns (:data:`~medmat_builder.records.COLUMNS`); ``split`` comes from the file name. The
metadata is made with ``mlcroissant``'s Python API (``mlc.Metadata``, ``FileSet``, ``RecordSet``,
``Field``), which checks it as it is built; its JSON-LD (``Metadata.to_json``) is written with sorted
collections, no dates and no absolute paths, so a rebuild writes the same bytes.
:func:`validate_croissant` runs the ``mlcroissant`` checker on a written file (the same as
``mlcroissant validate --jsonld croissant.json``, offline).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medmat_builder.publish.naming import CROISSANT_NAME, DATASET_NAME, LICENSE_TABLE, MEDMAT_CITATION
from medmat_builder.records import BOX_COLUMNS, COLUMNS, MEDMAT_HOMEPAGE, Column
from medmat_builder.registry import Registry
from medmat_builder.report import BuildReport

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
PARQUET = "application/x-parquet"
DESCRIPTION = (
    "Med-MAT medical image VQA subsets rebuilt from their public sources; each config covers one "
    f"Modality/Area/Task triplet. Per-source terms are in the license column and in {LICENSE_TABLE}."
)


class CroissantError(ValueError):
    """The Croissant metadata does not pass ``mlcroissant``'s checks; the message lists its errors."""


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
                       url: str = MEDMAT_HOMEPAGE) -> dict[str, Any]:
    """Croissant JSON-LD of the export's configs (all built configs by default); :class:`CroissantError` if invalid."""
    import mlcroissant as mlc

    names = sorted(configs if configs is not None else report.configs)
    licenses = sorted({s.license_url or s.license for n in names for s in registry.sources_of(n)})
    ctx = mlc.Context()
    distribution, record_sets = [], []
    for n in names:
        file_set, record_set = _config_nodes(ctx, n, registry.subset(n).title)
        distribution.append(file_set)
        record_sets.append(record_set)
    with _no_date_warning():  # no datePublished on purpose: a rebuild must write the same bytes
        meta = mlc.Metadata(
            ctx=ctx, name=DATASET_NAME, description=DESCRIPTION, cite_as=MEDMAT_CITATION, license=licenses, url=url,
            version="1.0.0", conforms_to=[CONFORMS_TO], distribution=distribution, record_sets=record_sets,
            keywords=["medical imaging", "visual question answering", "compositional generalization"],
        )
    if meta.issues.errors:
        raise CroissantError("Croissant metadata is invalid:\n" + "\n".join(sorted(meta.issues.errors)))
    return meta.to_json()


@contextmanager
def _no_date_warning() -> Iterator[None]:
    """``mlcroissant`` logs (through absl) that ``datePublished`` is recommended; the export has no dates."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl.setLevel(level)


def write_croissant(folder: Path, registry: Registry, report: BuildReport, configs: list[str] | None = None,
                    url: str = MEDMAT_HOMEPAGE) -> Path:
    """Write ``croissant.json`` into ``folder``."""
    path = Path(folder) / CROISSANT_NAME
    path.write_text(dumps(croissant_metadata(registry, report, configs, url)), encoding="utf-8")
    return path


def dumps(meta: dict[str, Any]) -> str:
    """The file's text (two-space indent, UTF-8 kept, a final newline)."""
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


def validate_croissant(path: str | Path) -> str:
    """Validate with ``mlcroissant`` (offline); returns its warnings report, raises ``ValueError`` on errors."""
    import mlcroissant as mlc

    try:
        ds = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as exc:
        raise ValueError(f"{path} is not valid Croissant:\n{exc}") from None
    return ds.metadata.ctx.issues.report()
