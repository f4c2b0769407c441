"""The leakage guard: nothing of the target's test split, and no subject of it, enters training.

Identity is read from the rows, never by decoding an image. A training record is dropped when

- ``id``: its id is the id of a test record;
- ``image``: its image is a test record's image: the per-row ``image_hash`` column when the training
  rows and the test rows all carry it, else the xxh3-128 hash of the stored image bytes (each image
  is hashed once, as stored, without decoding: the build writes an image's bytes the same way
  wherever it is kept, so the same raw image in two configs has the same bytes);
- ``subject``: its ``group`` (the build's salted subject pseudonym, the same in every config, see
  :mod:`medmat_builder.groups`) is the group of a test record: another image of the same patient,
  lesion, volume or video.

The first reason that applies is the one counted. What the guard does not see: a copy of a test
image that is not byte-identical (re-encoded or resized) and comes from another source, so another
subject; the build's own near-duplicate check works inside one config only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

logger = logging.getLogger("medmat.train")

ID_COLUMN = "id"
GROUP_COLUMN = "group"
#: The build's per-row image hash; used when every row on both sides carries one.
IMAGE_HASH_COLUMN = "image_hash"
REASONS = ("id", "image", "subject")


@dataclass
class LeakageReport:
    """What the guard compared and what it dropped, by reason (``id``, ``image``, ``subject``)."""

    target: str
    test_records: int = 0
    identity: str = "none"  # how images were compared: "image_hash column" or "stored bytes (xxh3-128)"
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    @property
    def total(self) -> int:
        return sum(self.dropped.values())

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "test_records": self.test_records, "identity": self.identity,
                "dropped": dict(self.dropped), "total": self.total}


def _column(ds: Any, name: str) -> list[str]:
    """A string column as a list ("" for rows without a value; all "" when the column is absent)."""
    if name not in ds.column_names:
        return [""] * len(ds)
    table = ds.select_columns([name]).with_format("arrow")[:]  # one Arrow read, nothing decoded or formatted
    return ["" if v is None else str(v) for v in table.column(name).to_pylist()]


def _stored_bytes(items: Iterable[dict[str, Any] | None]) -> Iterable[bytes]:
    for item in items:
        data = (item or {}).get("bytes")
        if data is None and (item or {}).get("path"):
            data = Path(item["path"]).read_bytes()  # type: ignore[index]
        yield data or b""


def stored_image_hashes(ds: Any, batch_size: int = 512) -> list[str]:
    """xxh3-128 of every row's stored image bytes, in row order; no image is decoded."""
    from datasets import Image

    raw = ds.select_columns(["image"]).cast_column("image", Image(decode=False))
    out: list[str] = []
    for batch in raw.with_format("arrow").iter(batch_size=batch_size):
        out += [xxhash.xxh3_128_hexdigest(data) for data in _stored_bytes(batch.column("image").to_pylist())]
    return out


def _has_image_hashes(ds: Any) -> bool:
    return IMAGE_HASH_COLUMN in ds.column_names and all(_column(ds, IMAGE_HASH_COLUMN))


def image_identities(train: Any, test: Any) -> tuple[list[str], list[str], str]:
    """Per-row image identities of both sides, compared the same way; and how they were compared."""
    if _has_image_hashes(train) and _has_image_hashes(test):
        return _column(train, IMAGE_HASH_COLUMN), _column(test, IMAGE_HASH_COLUMN), "image_hash column"
    logger.warning("Some rows lack the %r column (an export written before it existed?): the leakage guard hashes "
                   "every stored image instead (no decode, but it reads all image bytes). Rebuild the export with "
                   "`medmat build` to compare by column.", IMAGE_HASH_COLUMN)
    return stored_image_hashes(train), stored_image_hashes(test), "stored bytes (xxh3-128)"


def rows_to_keep(train: Any, test: Any, report: LeakageReport) -> list[int]:
    """Indices of ``train`` rows to keep; counts the others in ``report`` by their first reason."""
    train_images, test_images, report.identity = image_identities(train, test)
    test_ids = set(_column(test, ID_COLUMN)) - {""}
    test_image_set = set(test_images) - {""}
    test_groups = set(_column(test, GROUP_COLUMN)) - {""}
    report.test_records = len(test)
    keep = []
    rows = zip(_column(train, ID_COLUMN), train_images, _column(train, GROUP_COLUMN), strict=True)
    for i, (rid, image, group) in enumerate(rows):
        reason = ("id" if rid in test_ids else "image" if image in test_image_set
                  else "subject" if group in test_groups else None)
        if reason is None:
            keep.append(i)
        else:
            report.dropped[reason] += 1
    return keep


def drop_target_test_records(train: Any, test: Any | None, target: str) -> tuple[Any, LeakageReport]:
    """``train`` without the records that are, or share a subject with, a record of ``test``
    (``target``'s test split). Returns ``(train, report)``; without a test split nothing is dropped."""
    report = LeakageReport(target)
    if test is None:
        return train, report
    keep = rows_to_keep(train, test, report)
    if report.total:
        logger.warning("Dropped %d training records that share an id, an image or a subject with %s's test split "
                       "(%s).", report.total, target, ", ".join(f"{k} {v}" for k, v in report.dropped.items() if v))
        train = train.select(keep)
    return train, report
