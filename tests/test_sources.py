"""One generic test case run on every source of the real registry (torchvision's dataset-test style).

``inject_fake_data`` writes a synthetic copy of the source in its declared on-disk layout (the layout's
own inverse); the reader must then find every record with the raw labels, splits and count written,
and, for a source that declares a subject key (``groups``), the subjects the demo gave its records.
Until every source's key is researched, ``EXAMPLE_GROUPS`` gives a few real sources the kind of key
their archives have, so each way of declaring one (column, side table, path in the file name, path in a
folder) goes through the demo and the reader here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medmat_builder.build.groups import GroupResolver
from medmat_builder.demo import Subjects, fake_samples, write_fake_source
from medmat_builder.records import RawRecord
from medmat_builder.registry import FACTS, Groups, GroupTable, Registry, Source, load_registry

REGISTRY = load_registry()
SOURCES = sorted(REGISTRY.sources, key=lambda s: s.number)
#: Subject keys of the kinds real archives have, for sources whose research is pending (see the docstring).
EXAMPLE_GROUPS = {
    "nih_chestxray14": Groups(column="Patient ID"),
    "isic_2018": Groups(table=GroupTable(path="ISIC2018_Task3_Training_LesionGroupings.csv", id_column="image",
                                         group_column="lesion_id")),
    "pediatric_pneumonia": Groups(path=[r"{group:person\d+}_*"]),
    "kermany_oct": Groups(path=[r"{group:[A-Z]+-\d+}-*"]),
    "duke_liver_v1": Groups(path=["{group}/*/images/*"]),
    "uw_madison_gi": Groups(path=[r"{group:case\d+}/*/scans/*"]),
    "breakhis": Groups(path=["SOB/*/{group}/*/*"]),
}
GROUPED = [s for s in SOURCES if s.groups is not None and s.groups.declared != "none"]
GROUPED += [REGISTRY.source(k).model_copy(update={"groups": g}) for k, g in sorted(EXAMPLE_GROUPS.items())
            if all(s.key != k for s in GROUPED)]  # a researched declaration replaces the example


def inject_fake_data(source: Source, registry: Registry, root: Path):
    samples = fake_samples(source, registry, per_label=3)
    write_fake_source(source, root / source.folder, samples)
    return samples


def effective_labels(rec: RawRecord, root: Path) -> tuple[str, ...]:
    """A mask record names every label its mask could hold; the mask itself says which are there."""
    if rec.mask is None:
        return rec.labels
    from medmat_builder.build import resolve_boxes
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

    def test_images_are_found_by_pattern_not_by_junk(self, source, tmp_path):
        inject_fake_data(source, REGISTRY, tmp_path)
        root = tmp_path / source.folder
        (root / "__MACOSX").mkdir(parents=True, exist_ok=True)
        (root / "__MACOSX" / "._junk.png").write_bytes(b"\x00")
        (root / ".DS_Store").write_bytes(b"\x00")
        recs = list(source.layout.scan(source, root))
        assert not any("__MACOSX" in r.image or r.image.endswith(".DS_Store") for r in recs)

    def test_registry_entry_is_complete(self, source):
        """What the schema leaves optional but every entry of this registry states."""
        assert source.obtain.strip()
        assert set(source.evidence) | set(source.unverified) == set(FACTS), "every fact has evidence or says why not"
        assert source.groups is not None, "every source declares its subject grouping (or none, with why)"
        assert source.labels, "every source maps its raw labels"


@pytest.mark.parametrize("source", GROUPED, ids=[s.key for s in GROUPED])
def test_subjects_are_read_back(source, tmp_path):
    """Records of one synthetic subject get one subject key, records of different subjects different keys."""
    assert Subjects(source).declared != "none", "the demo writes every grouped source's subjects"
    samples = fake_samples(source, REGISTRY, per_label=3)
    root = tmp_path / source.folder
    written = write_fake_source(source, root, samples)
    by_image = {written[s.index]: s for s in samples}
    resolver = GroupResolver(source, root)
    keys: dict[int, str] = {}
    for rec in source.layout.scan(source, root):
        keys[by_image[rec.image].index] = resolver.key_of(rec)
    assert len(keys) == len(samples)
    assert resolver.stats.ungrouped == 0, "every synthetic record has a subject"
    subject = {s.index: s.group for s in samples}
    for a in keys:
        for b in keys:
            assert (keys[a] == keys[b]) == (subject[a] == subject[b]), (a, b, keys[a], keys[b])
    if Subjects(source).pairs:  # unless the key is the record's own id, some subjects hold several records
        assert len(set(keys.values())) < len(keys)
