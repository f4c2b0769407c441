"""What the visual report shows of a config's rows, read from its parquet files (never from the build report).

Per split: the rows, the label counts (a multi-label row counts once under each of its labels) and a
few seeded samples per label. The samples are the ``per_label`` rows whose ``sha256(seed:config:split:label:id)``
is smallest, so the same export shows the same samples whatever its row order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmat_builder.publish.visual.thumbs import thumbnail_uri
from medmat_builder.records import SPLITS

#: Samples shown per split and label.
SAMPLES_PER_LABEL = 3
#: The label a row without labels is counted under.
NO_LABEL = "(no label)"
_COLUMNS = ["id", "labels", "source", "boxes"]


@dataclass
class Sample:
    """One shown row: its id, source, raw path (``None`` when unknown), boxes and thumbnail (``None``: no image)."""

    id: str
    source: str
    raw_path: str | None
    boxes: list[dict[str, Any]]
    uri: str | None = None


@dataclass
class LabelView:
    label: str
    count: int
    samples: list[Sample] = field(default_factory=list)


@dataclass
class SplitView:
    """One split of a config as its parquet files hold it."""

    split: str
    rows: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    labels: list[LabelView] = field(default_factory=list)


def split_files(folder: Path, split: str) -> list[Path]:
    """The parquet shards of ``split`` in a config folder, in order."""
    return sorted(Path(folder).glob(f"{split}-*.parquet"))


def sample_key(seed: int, config: str, split: str, label: str, rid: str) -> str:
    """The sort key that picks a label's samples (smallest first)."""
    return hashlib.sha256(f"{seed}:{config}:{split}:{label}:{rid}".encode()).hexdigest()


def _images(files: Sequence[Path], where: dict[str, tuple[int, int, int]]) -> dict[str, bytes]:
    """Image bytes of the rows in ``where`` (id -> file, row group and row in it): the image column of only
    the row groups that hold one of them (a large split is never held whole, most image bytes never read)."""
    import pyarrow.parquet as pq

    by_group: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for rid, (file, group, row) in where.items():
        by_group.setdefault((file, group), []).append((row, rid))
    found: dict[str, bytes] = {}
    opened: dict[int, pq.ParquetFile] = {}
    for (file, group), rows in sorted(by_group.items()):
        parquet = opened.setdefault(file, pq.ParquetFile(files[file]))
        column = parquet.read_row_group(group, columns=["image"]).column("image")
        for row, rid in rows:
            found[rid] = (column[row].as_py() or {}).get("bytes") or b""
    return found


def read_split(folder: Path, config: str, split: str, *, seed: int, label_order: Sequence[str] = (),
               per_label: int = SAMPLES_PER_LABEL,
               raw_path: Callable[[str, str], str | None] = lambda source, rid: None) -> SplitView:
    """Counts and samples of one split of the config in ``folder``; ``raw_path(source, id)`` names a row's raw file."""
    import pyarrow.parquet as pq

    files = split_files(folder, split)
    view = SplitView(split, files=[p.name for p in files], bytes=sum(p.stat().st_size for p in files))
    rows: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    where: dict[str, tuple[int, int, int]] = {}  # id -> file, row group, row in it
    by_label: dict[str, list[str]] = {}
    for file, path in enumerate(files):
        parquet = pq.ParquetFile(path)  # not read_table: it imports pyarrow.dataset (and pandas)
        table = parquet.read(columns=_COLUMNS)
        groups = [(group, row) for group in range(parquet.num_row_groups)
                  for row in range(parquet.metadata.row_group(group).num_rows)]
        for (group, row), rid, labels, source, boxes in zip(groups, *(table.column(c).to_pylist() for c in _COLUMNS)):
            view.rows += 1
            rows[rid] = (source, boxes or [])
            where[rid] = (file, group, row)
            for label in dict.fromkeys(labels or [NO_LABEL]):
                by_label.setdefault(label, []).append(rid)
    order = [lab for lab in label_order if lab in by_label] + sorted(set(by_label) - set(label_order))
    chosen: dict[str, list[str]] = {
        lab: sorted(by_label[lab], key=lambda rid, lab=lab: sample_key(seed, config, split, lab, rid))[:per_label]
        for lab in order
    }
    images = _images(files, {rid: where[rid] for ids in chosen.values() for rid in ids})
    for lab in order:
        samples = []
        for rid in chosen[lab]:
            source, boxes = rows[rid]
            samples.append(Sample(rid, source, raw_path(source, rid), boxes, thumbnail_uri(images.get(rid, b""), boxes)))
        view.labels.append(LabelView(lab, len(by_label[lab]), samples))
    return view


def read_config(folder: Path, config: str, *, seed: int, label_order: Sequence[str] = (),
                per_label: int = SAMPLES_PER_LABEL,
                raw_path: Callable[[str, str], str | None] = lambda source, rid: None) -> list[SplitView]:
    """:func:`read_split` for every split."""
    return [read_split(folder, config, split, seed=seed, label_order=label_order, per_label=per_label,
                       raw_path=raw_path) for split in SPLITS]
