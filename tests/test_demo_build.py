"""The offline demo builds every config of the real registry, and each one meets the paper's rules."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest

from medmat_builder import vqa
from medmat_builder.export import build
from medmat_builder.registry import load_registry
from medmat_builder.sampling import BuildSettings

REGISTRY = load_registry()
CONFIGS = REGISTRY.subset_names


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_config_is_built(demo_export):
    report = json.loads((demo_export / "medmat" / "build_report.json").read_text())
    assert sorted(report["configs"]) == CONFIGS
    for name, conf in report["configs"].items():
        assert conf["num_examples"]["train"] > 0 and conf["num_examples"]["test"] > 0, name
        for key, led in conf["sources"].items():
            assert led["raw"] == sum(led["kept"].values()) + sum(led["dropped"].values()), (name, key)
            assert led["raw"] > 0, (name, key)
            # each layout's inverse writes only files that the layout (or an entry sharing its folder) reads:
            # every image file is read, or left out for a stated reason (excluded by the registry, another entry's)
            assert led["unread_images"]["unexplained"] == 0, (name, key, led["unread_images"])
            assert led["read_images"] > 0 and led["unmatched_tables"] == [], (name, key)
            assert led["unread_images"]["nested_copies"] == 0 and led["unread_images"]["folders"] == [], (name, key)
        assert not conf["warnings"], (name, conf["warnings"])


@pytest.mark.parametrize("config", CONFIGS)
def test_config_loads_by_name_and_follows_the_rules(demo_export, config):
    sub = REGISTRY.subset(config)
    ds = datasets.load_dataset(str(demo_export / "medmat"), config)
    hashes = {}
    for split in ("train", "test"):
        rows = ds[split]
        assert rows.num_rows > 0
        for ex in rows:
            assert (ex["modality"], ex["area"], ex["task"]) == sub.triplet
            assert ex["source"] in sub.sources
            if sub.is_classification:
                assert 2 <= len(ex["options"]) <= 4
                assert ex["options"]["ABCD".index(ex["answer"])] == ex["answer_label"]
                assert ex["question"].splitlines()[-1] == "Answer with the option's letter from the given choices directly."
                assert set(ex["labels"]) <= set(sub.labels)
            else:
                assert ex["options"] == [] and ex["boxes"]
                for b in ex["boxes"]:
                    assert 0 <= b["x1"] <= b["x2"] <= 1000 and 0 <= b["y1"] <= b["y2"] <= 1000
        hashes[split] = {hashlib.sha256(ex["image"].convert("RGB").tobytes()).hexdigest() for ex in rows}
    assert not hashes["train"] & hashes["test"], "an image is in both train and test"
    if sub.kind == "multi-label":  # the demo gives these sources records with label sets, as real data has
        rows = [ex for split in ("train", "test") for ex in ds[split]]
        assert any(len(ex["labels"]) > 1 for ex in rows)
        for ex in rows:
            assert ex["answer_label"] == vqa.label_set_text(ex["labels"], sub.labels)
    if sub.kind == "single-label":
        counts = Counter(ds["test"]["answer_label"])
        assert len(set(counts.values())) == 1, counts


def test_demo_build_is_byte_identical_with_two_processes(demo_export):
    out = demo_export / "again"
    build(None, demo_export / "raw", out, BuildSettings(num_proc=2), registry=REGISTRY)
    assert _digest(out) == _digest(demo_export / "medmat")


def test_loads_by_plain_name_from_the_parent_folder(demo_export, monkeypatch, tmp_path):
    """`load_dataset("medmat", "subset_28")` from the folder that holds ./medmat, as the README says."""
    monkeypatch.chdir(demo_export)
    ds = datasets.load_dataset("medmat", "subset_28", cache_dir=str(tmp_path / "hf_cache"))
    report = json.loads((demo_export / "medmat" / "build_report.json").read_text())
    assert {s: ds[s].num_rows for s in ("train", "test")} == report["configs"]["subset_28"]["num_examples"]
    assert set(ds["test"]["subset"]) == {"subset_28"}
