"""The demo's real naming schemes (medmat_builder/demo/path_hints.yaml) for sources grouped by path."""

from __future__ import annotations

import pytest

from medmat_builder.demo import fake_samples
from medmat_builder.demo.path_hints import NameScheme, NameSchemeError, hinted_sources, name_scheme
from medmat_builder.registry import load_registry

REGISTRY = load_registry()


@pytest.mark.parametrize("key", hinted_sources())
def test_every_scheme_fits_its_source(key):
    source = REGISTRY.source(key)
    assert source.groups is not None and source.groups.declared == "path"
    assert name_scheme(source) is not None  # checked against the image and group patterns on load


@pytest.mark.parametrize(("key", "label", "expected"), [
    ("breakhis", "adenosis", "breast/benign/SOB/adenosis/SOB_B_A_14-00001/40X/SOB_B_A-14-00001-40-001.png"),
    ("breakhis", "ductal_carcinoma", "breast/malignant/SOB/ductal_carcinoma/SOB_M_DC_14-00001/40X/SOB_M_DC-14-00001-40-001.png"),
    ("sicapv2", "G3", "images/16B0000001_Block_Region_1_0_0_xini_6803_yini_59786.jpg"),
    ("chexpert_small", "Edema", "train/patient00001/study1/view1_frontal.jpg"),
    ("coronahack", "Normal", "Coronahack-Chest-XRay-Dataset/train/IM-0001-0001.jpeg"),
    ("coronahack", "bacteria", "Coronahack-Chest-XRay-Dataset/train/person1_bacteria_1.jpeg"),
    ("biomeditech", "1", "Subwindows/1_00001_001_1_1.tif"),
    ("chest_xray_pd", "normal", "normal/00000001_001.png"),
])
def test_names_follow_the_real_archive(key, label, expected):
    scheme = name_scheme(REGISTRY.source(key))
    assert scheme is not None
    assert scheme.path_for(label, "train", 1, 1)[1] == expected


def test_demo_records_carry_the_scheme_and_its_extension():
    source = REGISTRY.source("chest_xray_pd")  # its layout writes .jpg; NIH names are .png
    samples = fake_samples(source, REGISTRY, per_label=3)
    assert all(s.path and s.path.endswith(".png") and s.ext == ".png" for s in samples)
    assert [s.path for s in samples] == [s.path for s in fake_samples(source, REGISTRY, per_label=3)]
    subjects = [s.group for s in samples]
    assert len(set(subjects)) < len(subjects)  # some subjects hold two records


def test_a_scheme_that_misses_the_group_pattern_is_refused():
    source = REGISTRY.source("chexpert_small")
    bad = NameScheme(key=source.key, path="train/{subject}_study{record}.jpg", group_pattern=source.groups.path[0],
                     subject="patient{n:05d}")
    with pytest.raises(NameSchemeError, match="the group patterns .* find None"):
        bad.check(source)


def test_a_scheme_with_an_unknown_field_says_which():
    source = REGISTRY.source("breakhis")
    bad = NameScheme(key=source.key, path="breast/{kind}/SOB/{label}/x_{subject}/40X/{record}.png",
                     group_pattern=source.groups.path[0], subject="14-{n:05d}")
    with pytest.raises(NameSchemeError, match="give the missing field"):
        bad.check(source)
