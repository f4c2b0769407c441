"""Facts about the real registry (sources.yaml) that must hold whatever the layouts look like.

- Sources that share one unpacked folder and read the same annotation files agree on the raw labels
  those files hold (otherwise one entry meets labels the other wrote, and builds fail or drift).
- The 53 subsets carry the paper's Table 9 triplets and source lists; sources are numbered 1..109.
- No two instructions of a subset say the same thing; unknown licenses and gated downloads are explained.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict

import pytest

from medmat_builder.registry import Source, load_registry

REGISTRY = load_registry()

# Table 9 of the Med-MAT paper: subset number -> (modality, anatomical area, source numbers as printed).
TABLE_9: dict[int, tuple[str, str, list[int]]] = {
    1: ("Co", "Cervix", [1]),
    2: ("CT", "Kidney", [2]),
    3: ("CT", "Lung", [3, 4, 6]),
    4: ("CT", "Lung", [5]),
    5: ("CT", "Brain", [7]),
    6: ("CT", "Brain", [8]),
    7: ("Der", "Skin", [10]),
    8: ("Der", "Skin", [9, 11, 12, 13, 14, 15, 71, 72, 74]),
    9: ("DP", "Mouth", [16]),
    10: ("DP", "Mouth", [17]),
    11: ("End", "Intestine", [18]),
    12: ("End", "Bladder", [19]),
    13: ("End", "Intestine", [20]),
    14: ("FP", "Fundus", [21, 22, 23, 26, 27, 28, 31, 32, 75]),
    15: ("FP", "Fundus", [24, 25, 68]),
    16: ("FP", "Fundus", [29]),
    17: ("FP", "Fundus", [30]),
    18: ("Mic", "Cell", [33, 36, 37, 38, 39, 40, 41, 44, 65, 70]),
    19: ("Mic", "Cell", [34]),
    20: ("Mic", "Cell", [35]),
    21: ("Mic", "Cell", [42, 67]),
    22: ("MRI", "Brain", [44, 45]),
    23: ("OCT", "Retina", [46, 47]),
    24: ("US", "Breast", [48]),
    25: ("X-ray", "Bones", [49, 53]),
    26: ("X-ray", "Bones", [50, 51]),
    27: ("X-ray", "Bones", [52]),
    28: ("X-ray", "Lung", [54, 55, 56, 57, 60, 62, 81]),
    29: ("X-ray", "Breast", [58, 78]),
    30: ("X-ray", "Lung", [59, 79]),
    31: ("X-ray", "Chest", [61, 73, 76, 77, 80, 85, 87]),
    32: ("X-ray", "Brain", [63]),
    33: ("Mic", "Cell", [84]),
    34: ("FP", "Fundus", [66]),
    35: ("X-ray", "Bones", [69]),
    36: ("X-ray", "Bones", [86]),
    37: ("X-ray", "Breast", [82]),
    38: ("Der", "Skin", [88, 89, 90, 91]),
    39: ("End", "Intestine", [92, 93]),
    40: ("End", "Intestine", [94]),
    41: ("End", "Intestine", [95]),
    42: ("Mic", "Cell", [96]),
    43: ("US", "Chest", [97]),
    44: ("US", "Thyroid", [98]),
    45: ("MRI", "Intestine", [103]),
    46: ("MRI", "Liver", [104, 105]),
    47: ("X-ray", "Lung", [99]),
    48: ("X-ray", "Lung", [106]),
    49: ("X-ray", "Bones", [100]),
    50: ("X-ray", "Chest", [101, 102]),
    51: ("FP", "Fundus", [107]),
    52: ("FP", "Fundus", [108]),
    53: ("FP", "Fundus", [109]),
}
# Table 9 lists source 44 (a brain MRI set) under subsets 18 and 22; the registry resolves it to 22 only
# (see the YAML comment beside its entry). Every other printed membership must hold.
TABLE_9_RESOLVED_AWAY = {(18, 44)}

LOGIN_WORDS = re.compile(
    r"log ?in|account|sign|regist|credential|applica|apply|request|agreement|\bDUA\b|approv", re.IGNORECASE
)


def _annotation_files(source: Source) -> frozenset[str]:
    """The table / annotation file patterns a layout reads (empty for kinds without such files)."""
    layout = source.layout
    specs = getattr(layout, "tables", None) or getattr(layout, "annotations", None) or []
    return frozenset(spec.path for spec in specs)


def _shared_annotation_pairs() -> list[tuple[Source, Source]]:
    by_folder: dict[str, list[Source]] = defaultdict(list)
    for src in REGISTRY.sources:
        by_folder[src.folder].append(src)
    pairs = []
    for group in by_folder.values():
        for a, b in itertools.combinations(sorted(group, key=lambda s: s.number), 2):
            if _annotation_files(a) and _annotation_files(a) & _annotation_files(b):
                pairs.append((a, b))
    return pairs


SHARED = _shared_annotation_pairs()


def test_some_sources_share_annotation_files():
    keys = {(a.key, b.key) for a, b in SHARED}
    assert ("vindr_spinexr", "vindr_spinexr_det") in keys
    assert ("chestx_det", "chestx_det_seg") in keys


@pytest.mark.parametrize("pair", SHARED, ids=[f"{a.key}+{b.key}" for a, b in SHARED])
def test_sources_reading_the_same_files_agree_on_raw_labels(pair):
    a, b = pair
    assert _annotation_files(a) == _annotation_files(b), "shared folder, different table paths"
    assert set(a.labels) == set(b.labels), (
        f"{a.key} and {b.key} read the same files but list different raw labels: "
        f"only {a.key}: {sorted(set(a.labels) - set(b.labels))}, only {b.key}: {sorted(set(b.labels) - set(a.labels))}"
    )


@pytest.mark.parametrize("pair", SHARED, ids=[f"{a.key}+{b.key}" for a, b in SHARED])
def test_sources_reading_the_same_files_agree_on_columns_and_images(pair):
    a, b = pair
    for field in ("id_column", "label_column", "label_separator", "id_field", "labels_field"):
        va, vb = getattr(a.layout, field, None), getattr(b.layout, field, None)
        if va is not None and vb is not None:
            assert va == vb, f"{field}: {a.key} says {va!r}, {b.key} says {vb!r}"
    assert a.layout.images == b.layout.images  # type: ignore[union-attr]


def _shared_folders() -> list[list[Source]]:
    by_folder: dict[str, list[Source]] = defaultdict(list)
    for src in REGISTRY.sources:
        by_folder[src.folder].append(src)
    return [group for group in by_folder.values() if len(group) > 1]


FOLDER_GROUPS = _shared_folders()


@pytest.mark.parametrize("group", FOLDER_GROUPS, ids=lambda g: "+".join(s.key for s in g))
def test_sources_sharing_a_download_agree_on_its_terms(group):
    """One download has one set of terms: entries unpacked into one folder agree on them."""
    for field in ("license", "license_url", "access", "redistributable"):
        values = {s.key: getattr(s, field) for s in group}
        assert len(set(values.values())) == 1, f"{field} differs across one download: {values}"


def test_there_are_53_subsets_named_by_table_9():
    assert sorted(s.number for s in REGISTRY.subsets) == list(range(1, 54))
    assert set(TABLE_9) == set(range(1, 54))


@pytest.mark.parametrize("number", sorted(TABLE_9))
def test_subset_carries_the_paper_triplet(number):
    sub = REGISTRY.subset(f"subset_{number:02d}")
    modality, area, _ = TABLE_9[number]
    assert (sub.modality, sub.area) == (modality, area)


@pytest.mark.parametrize("number", sorted(TABLE_9))
def test_table_9_sources_are_in_their_subset(number):
    sub = REGISTRY.subset(f"subset_{number:02d}")
    key_of = {s.number: s.key for s in REGISTRY.sources}
    missing = [n for n in TABLE_9[number][2] if (number, n) not in TABLE_9_RESOLVED_AWAY and key_of[n] not in sub.sources]
    assert not missing, f"{sub.name} lacks Table 9 sources {missing}"


def test_sources_are_numbered_1_to_109_once():
    assert sorted(s.number for s in REGISTRY.sources) == list(range(1, 110))


@pytest.mark.parametrize("subset", REGISTRY.subsets, ids=lambda s: s.name)
def test_subset_instructions_are_distinct(subset):
    """The schema asks for six instructions; that no two say the same thing is this registry's fact."""
    assert len({" ".join(i.lower().split()) for i in subset.instructions}) == len(subset.instructions)


@pytest.mark.parametrize("source", [s for s in REGISTRY.sources if s.license_is_unknown], ids=lambda s: s.key)
def test_unknown_license_is_explained(source):
    assert source.notes and re.search(r"licen[cs]e", source.notes, re.IGNORECASE), (
        f"{source.key}: license is 'unknown' but its notes do not say why"
    )
    assert not source.redistributable


@pytest.mark.parametrize("source", [s for s in REGISTRY.sources if s.access != "open"], ids=lambda s: s.key)
def test_gated_sources_say_how_to_get_access(source):
    assert LOGIN_WORDS.search(source.obtain), (
        f"{source.key}: access is {source.access!r} but 'obtain' does not mention the login / application step"
    )


OPEN_CC = re.compile(r"^(CC0-1\.0|CC-BY(-SA|-NC|-NC-SA)?-[34]\.0)$")


@pytest.mark.parametrize("source", REGISTRY.sources, ids=lambda s: s.key)
def test_redistributable_follows_the_license(source):
    """ND terms forbid republishing adapted images; other Creative Commons terms allow it, unless the
    entry's notes say why not (images copyrighted elsewhere, a compilation, competition rules ...)."""
    if "-ND-" in source.license:
        assert not source.redistributable
    elif OPEN_CC.match(source.license) and not source.redistributable:
        assert source.notes and re.search(r"redistribut|licen", source.notes, re.IGNORECASE), (
            f"{source.key}: {source.license} allows republishing; say in notes why it is not redistributable"
        )
