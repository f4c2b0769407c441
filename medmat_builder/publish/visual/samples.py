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


def _images(files: Sequence[Path], ids: set[str]) -> dict[str, bytes]:
    """Image bytes of the rows ``ids``: the ``id`` column first, then the images of only the row groups
    that hold one of them (a large split is never held whole, and most image bytes are never read)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: dict[str, bytes] = {}
    wanted = pa.array(sorted(ids), pa.string())
    for path in files:
        if len(found) == len(ids):
            break
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            hit = pc.is_in(parquet.read_row_group(group, columns=["id"]).column("id"), value_set=wanted)
            if not pc.any(hit).as_py():
                continue
            batch = parquet.read_row_group(group, columns=["id", "image"]).filter(hit)
            for rid, image in zip(batch.column("id").to_pylist(), batch.column("image").to_pylist()):
                if rid in ids:
                    found[rid] = (image or {}).get("bytes") or b""
    return found


def read_split(folder: Path, config: str, split: str, *, seed: int, label_order: Sequence[str] = (),
               per_label: int = SAMPLES_PER_LABEL,
               raw_path: Callable[[str, str], str | None] = lambda source, rid: None) -> SplitView:
    """Counts and samples of one split of the config in ``folder``; ``raw_path(source, id)`` names a row's raw file."""
    import pyarrow.parquet as pq

    files = split_files(folder, split)
    view = SplitView(split, files=[p.name for p in files], bytes=sum(p.stat().st_size for p in files))
    rows: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    by_label: dict[str, list[str]] = {}
    for path in files:
        table = pq.ParquetFile(path).read(columns=_COLUMNS)  # not read_table: it imports pyarrow.dataset (and pandas)
        for rid, labels, source, boxes in zip(*(table.column(c).to_pylist() for c in _COLUMNS)):
            view.rows += 1
            rows[rid] = (source, boxes or [])
            for label in dict.fromkeys(labels or [NO_LABEL]):
                by_label.setdefault(label, []).append(rid)
    order = [lab for lab in label_order if lab in by_label] + sorted(set(by_label) - set(label_order))
    chosen: dict[str, list[str]] = {
        lab: sorted(by_label[lab], key=lambda rid, lab=lab: sample_key(seed, config, split, lab, rid))[:per_label]
        for lab in order
    }
    images = _images(files, {rid for ids in chosen.values() for rid in ids})
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
