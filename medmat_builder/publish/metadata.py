"""What describes an export beside its data: the card, the license table and the Croissant metadata.

:func:`write_export_metadata` is what ``medmat build`` calls once the parquet files and the build
report are in place: ``README.md`` (:mod:`~medmat_builder.publish.card`), ``licenses.csv``
(:mod:`~medmat_builder.publish.licenses`) and ``croissant.json`` (:mod:`~medmat_builder.publish.croissant`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path

from medmat_builder.publish.card import render_readme
from medmat_builder.publish.croissant import FileDigest, write_croissant
from medmat_builder.publish.licenses import license_table
from medmat_builder.publish.naming import CARD_NAME, CROISSANT_NAME, LICENSE_TABLE
from medmat_builder.registry import Registry
from medmat_builder.report import BuildReport

#: The files :func:`write_export_metadata` writes.
METADATA_FILES = (CARD_NAME, LICENSE_TABLE, CROISSANT_NAME)


def write_export_metadata(folder: Path, registry: Registry, report: BuildReport,
                          known: Mapping[str, FileDigest] | Callable[[], Mapping[str, FileDigest]] | None = None,
                          pool: Executor | None = None) -> None:
    """Write README.md, licenses.csv and croissant.json into an export folder (after its parquet files).

    ``croissant.json`` comes last: it lists every other file with its checksum (``known``: the digests
    of files already hashed, by path relative to ``folder``; the others are read; or a function that
    returns them, called once the card and the license table are written, so that files still being
    hashed are hashed meanwhile), made in ``pool``'s worker processes if given (see
    :func:`~medmat_builder.publish.croissant.write_croissant`).
    """
    folder = Path(folder)
    (folder / CARD_NAME).write_text(render_readme(registry, report, data_folder=folder), encoding="utf-8")
    (folder / LICENSE_TABLE).write_text(license_table(registry, report), encoding="utf-8")
    write_croissant(folder, registry, report, known=known() if callable(known) else known, pool=pool)
