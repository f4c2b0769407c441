"""Synthetic raw sources in every source's real on-disk layout, for the offline demo and the tests.

Each source gets a few small, clearly synthetic images per raw label (random blocky patterns with a
label-dependent tint and a white "SYNTH" bar, nothing medical), written by the *inverse* of its
layout kind, so the demo exercises exactly the code that reads real archives. Raw labels that the
registry drops (mapped to null) get one record each, so the build report shows them being counted
(unless another entry sharing the same download uses that label: then it gets a full set).
Sources of multi-label subsets whose layout stores label sets (one-hot columns, separated labels)
give every third record a second finding, so label sets go through the same code as on real data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from medmat_builder import safe_paths
from medmat_builder.demo.subjects import Subjects
from medmat_builder.images import write_fake_image
from medmat_builder.images.synthetic import FAKE_EXTENSIONS, block_pixels, seeded_rng
from medmat_builder.layouts import PathPattern, TableFile
from medmat_builder.layouts.tables import write_table
from medmat_builder.records import Box, FakeSample
from medmat_builder.registry import Registry, Source, load_registry

DEMO_PER_LABEL = 8


#: The smallest ``per_label`` from which every config of the shipped registry builds (and loads): six
#: records per label give each label one test record under the 9:1 split (round(0.6) = 1); five do not.
MINIMAL_PER_LABEL = 6


CLASSIFICATION_SIZE = (48, 40)


DETECTION_SIZE = (64, 64)


def encode_image(pixels: np.ndarray, ext: str) -> bytes:
    """Encode an RGB demo picture in the format of ``ext``: grey for PGM, 16-bit grey for DICOM, PNG when
    :func:`~medmat_builder.images.write_fake_image` does not write ``ext``."""
    ext = ext.lower()
    if ext in (".dcm", ".dicom"):
        return write_fake_image(pixels.mean(axis=-1).astype(np.uint16) * 4, ext)
    if ext == ".pgm":
        return write_fake_image(pixels.mean(axis=-1).astype(np.uint8), ext)
    return write_fake_image(pixels, ext if ext in FAKE_EXTENSIONS else ".png")


def fake_samples(source: Source, registry: Registry, per_label: int = DEMO_PER_LABEL, seed: int = 0) -> list[FakeSample]:
    """The synthetic records to write for one source."""
    layout = source.layout
    ext = layout.fake_extension()
    detection = not all(registry.subset(n).is_classification for n in source.subsets)
    has_train = layout.raw_split_for("train") is not None
    has_test = layout.raw_split_for("test") is not None
    samples: list[FakeSample] = []
    index = 0
    used = [raw for raw, canonical in sorted(source.labels.items()) if canonical is not None]
    multi = _writes_label_sets(source, registry) and len({source.labels[r] for r in used}) > 1
    subjects = Subjects(source)
    # Entries sharing one download read the same files (the last one written wins): a raw label that
    # any of them uses gets a full set of records, so every entry finds its labels.
    siblings = registry.sharing_folder(source)
    for tint, (raw_label, canonical) in enumerate(sorted(source.labels.items())):
        used_here = canonical is not None or any(sib.labels.get(raw_label) is not None for sib in siblings)
        n = per_label if used_here else 1
        for j in range(n):
            index += 1
            labels: tuple[str, ...] = (raw_label,)
            if multi and canonical is not None and j % 3 == 2:  # every third record also shows another finding
                other = next(r for r in used[used.index(raw_label) + 1:] + used if source.labels[r] != canonical)
                labels = (raw_label, other)
            split = None
            if has_train and has_test:
                split = "test" if j % 4 == 3 else "train"
            elif has_train:
                split = "train"
            rng = seeded_rng(seed, source.key, raw_label, j)
            size = layout.fake_image_size() or (DETECTION_SIZE if detection else CLASSIFICATION_SIZE)
            pixels = block_pixels(rng, size, tint)
            boxes: tuple[Box, ...] = ()
            if detection:
                w, h = size
                x1, y1 = int(rng.integers(w // 16, w * 3 // 8)), int(rng.integers(h // 16, h * 3 // 8))
                x2, y2 = x1 + int(rng.integers(w // 5, w // 2)), y1 + int(rng.integers(h // 5, h // 2))
                boxes = (Box(raw_label, float(x1), float(y1), float(x2), float(y2)),)
                pixels[y1:y2, x1:x2, :] = np.clip(pixels[y1:y2, x1:x2, :].astype(int) + 60, 0, 255).astype(np.uint8)
                # No ready-made mask: each mask layout paints `boxes` in its own pixel convention.
            subject = subjects.fields(raw_label, split, used_here, index)
            # a record in the source's real naming scheme is encoded as its file name says (a .png among .jpg)
            own_ext = os.path.splitext(subject.get("path") or "")[1].lower()
            rec_ext = own_ext if own_ext in FAKE_EXTENSIONS else ext
            samples.append(
                FakeSample(index=index, labels=labels, split=split, image=encode_image(pixels, rec_ext), ext=rec_ext,
                           width=size[0], height=size[1], boxes=boxes, **subject)
            )
    return samples


def _writes_label_sets(source: Source, registry: Registry) -> bool:
    """Does the source feed a multi-label subset through a layout that stores several labels per record?"""
    feeds_multi = any(registry.subset(n).kind == "multi-label" for n in source.subsets)
    layout = source.layout
    return feeds_multi and bool(getattr(layout, "label_columns", None) or getattr(layout, "label_separator", None))


def write_demo_sources(raw: str | Path, registry: Registry | None = None, keys: Iterable[str] | None = None,
                       per_label: int = DEMO_PER_LABEL, seed: int = 0) -> dict[str, int]:
    """Write synthetic copies of the sources (all by default) under ``raw/<folder>/``; return counts.

    ``raw`` must be a new path, an empty folder or an earlier demo folder (see
    :mod:`medmat_builder.safe_paths`); the files are written into scratch space inside it and then
    moved into place, replacing only files an earlier demo wrote.
    """
    registry = registry or load_registry()
    wanted = set(keys) if keys is not None else None
    written: dict[str, int] = {}
    owned = safe_paths.claim(raw, "demo", label="--data-dir")
    with owned.lock():
        work = owned.scratch()
        try:
            for source in sorted(registry.sources, key=lambda s: s.number):
                if wanted is not None and source.key not in wanted:
                    continue
                samples = fake_samples(source, registry, per_label, seed)
                # Sources sharing one download (data_dir) each write their own part under the shared folder.
                write_fake_source(source, work / source.folder, samples)
                written[source.key] = len(samples)
            owned.commit(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return written


# ------------------------------------------------------------------------------ the inverse (demo)
def write_group_table(source: Source, root: Path, samples: Iterable[FakeSample], written: Mapping[int, str]) -> None:
    """Write the side table of ``groups: {table: ...}`` for synthetic samples (image stem -> ``sample.group``)."""
    spec = source.groups.table if source.groups is not None else None
    if spec is None:
        return
    rows = [[spec.id_column, spec.group_column]]
    for s in samples:
        if s.group is not None and s.index in written:
            stem = os.path.basename(written[s.index])
            rows.append([os.path.splitext(stem)[0], s.group])
    pattern = PathPattern(spec.path)
    rel = pattern.fill({n: "x" for n in pattern.placeholders}, star="groups")
    write_table(Path(root) / rel, rows, TableFile(path=spec.path, sep=spec.sep))


def write_fake_source(source: Source, root: Path, samples: list[FakeSample]) -> dict[int, str]:
    """Write ``samples`` in the source's layout under ``root`` (and its subject side table, if it declares one);
    return each sample's image path."""
    written = source.layout.write_fake(source, root, samples)
    write_group_table(source, root, samples, written)
    return written
