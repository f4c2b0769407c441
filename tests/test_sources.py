"""One generic test case run on every source of the real registry (torchvision's dataset-test style).

``inject_fake_data`` writes a synthetic copy of the source in its declared on-disk layout (the layout's
own inverse); the reader must then find every record with the raw labels, splits and count written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medmat_builder.demo import fake_samples
from medmat_builder.layouts.base import RawRecord
from medmat_builder.registry import FACTS, Registry, Source, load_registry

REGISTRY = load_registry()
SOURCES = sorted(REGISTRY.sources, key=lambda s: s.number)


def inject_fake_data(source: Source, registry: Registry, root: Path):
    samples = fake_samples(source, registry, per_label=3)
    source.layout.write_fake(source, root / source.folder, samples)
    return samples


def effective_labels(rec: RawRecord, root: Path) -> tuple[str, ...]:
    """A mask record names every label its mask could hold; the mask itself says which are there."""
    if rec.mask is None:
        return rec.labels
    from medmat_builder.boxes import resolve_boxes
    from medmat_builder.images import load_image

    img = load_image(root / rec.image)
    size = (img.width, img.height)
    return tuple(sorted({b.label for b in resolve_boxes(rec, root, size)}))


@pytest.mark.parametrize("source", SOURCES, ids=[s.key for s in SOURCES])
class TestSource:
    def scan(self, source: Source, tmp_path: Path) -> tuple[list, list[RawRecord]]:
        samples = inject_fake_data(source, REGISTRY, tmp_path)
        return samples, list(source.layout.scan(source, tmp_path / source.folder))

    def test_reads_back_what_was_written(self, source, tmp_path):
        samples, recs = self.scan(source, tmp_path)
        dropped = [(r.ref, r.drop_reason, r.detail) for r in recs if r.drop_reason]
        assert not dropped
        assert len(recs) == len(samples)
        root = tmp_path / source.folder
        found = sorted(tuple(sorted(effective_labels(r, root))) for r in recs)
        assert found == sorted(tuple(sorted(s.labels)) for s in samples)

    def test_splits_survive(self, source, tmp_path):
        samples, recs = self.scan(source, tmp_path)
        assert sorted(str(r.split) for r in recs) == sorted(str(s.split) for s in samples)

    def test_labels_map_into_the_subset(self, source, tmp_path):
        _, recs = self.scan(source, tmp_path)
        allowed = {lab for name in source.subsets for lab in REGISTRY.subset(name).labels}
        for rec in recs:
            raw = rec.labels or tuple(b.label for b in rec.boxes) or tuple(lab for _, lab in rec.mask_labels)
            for lab in raw:
                assert lab in source.labels, f"{rec.ref}: raw label {lab!r} has no cluster"
                assert source.labels[lab] is None or source.labels[lab] in allowed

    def test_images_are_found_by_pattern_not_by_junk(self, source, tmp_path):
        inject_fake_data(source, REGISTRY, tmp_path)
        root = tmp_path / source.folder
        (root / "__MACOSX").mkdir(parents=True, exist_ok=True)
        (root / "__MACOSX" / "._junk.png").write_bytes(b"\x00")
        (root / ".DS_Store").write_bytes(b"\x00")
        recs = list(source.layout.scan(source, root))
        assert not any("__MACOSX" in r.image or r.image.endswith(".DS_Store") for r in recs)

    def test_registry_facts(self, source):
        assert source.citation.lstrip().startswith("@")
        assert source.homepage.startswith("http")
        assert source.obtain.strip()
        assert set(source.evidence) | set(source.unverified) == set(FACTS), "every fact has evidence or says why not"
        assert source.groups is not None, "every source declares its subject grouping (or none, with why)"
        assert source.labels, "every source maps its raw labels"
