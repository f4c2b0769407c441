"""The offline demo builds every config of the real registry, and each one meets the paper's rules.

The export is built from the minimal demo archive (see the ``demo_export`` fixture), so loading each of
the 53 configs here also shows that every config is written whole from the smallest archive that can make it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from medmat_builder.build import BuildResult, BuildSettings, audit_export, build, vqa
from medmat_builder.cli.build import summary_lines
from medmat_builder.planner import caps_from_build_report
from medmat_builder.publish.card import size_category
from medmat_builder.registry import load_registry
from medmat_builder.report import BuildReport, LeakageSummary, SplitCounts

REGISTRY = load_registry()
CONFIGS = REGISTRY.subset_names


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_config_is_built(demo_export):
    report = BuildReport.read(demo_export / "medmat")
    assert sorted(report.configs) == CONFIGS
    for name, conf in report.configs.items():
        assert conf.num_examples.train > 0 and conf.num_examples.test > 0, name
        for key, led in conf.sources.items():
            assert led.raw == led.accounted > 0, (name, key)
            # each layout's inverse writes only files that the layout (or an entry sharing its folder) reads:
            # every image file is read, or left out for a stated reason (excluded by the registry, another entry's)
            assert led.unread_images.unexplained == 0, (name, key, led.unread_images)
            assert led.read_images > 0 and led.unmatched_tables == [], (name, key)
            assert led.unread_images.nested_copies == 0 and led.unread_images.folders == [], (name, key)
        # every grouped source's demo records carry their subject (in its real naming scheme, for path
        # patterns): no record is left without one, so the build warns about nothing
        assert not [w for w in conf.warnings if "have no subject" in w], name
        assert not conf.warnings, (name, conf.warnings)


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
    report = BuildReport.read(demo_export / "medmat")
    assert SplitCounts(train=ds["train"].num_rows, test=ds["test"].num_rows) == report.configs["subset_28"].num_examples
    assert set(ds["test"]["subset"]) == {"subset_28"}


def test_counts_are_parquet_rows_everywhere(demo_export):
    """num_examples, the ledger's kept, the CLI summary, the card (table, sections, dataset_info,
    size_categories) and the planner's caps all equal the parquet row counts, multi-label configs included."""
    out = demo_export / "medmat"
    report = BuildReport.read(out)
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    info = {entry["config_name"]: {s["name"]: s["num_examples"] for s in entry["splits"]} for entry in header["dataset_info"]}
    caps = caps_from_build_report(out / "build_report.json")
    summary = {line.split()[0]: line.split() for line in summary_lines(BuildResult(out, report, built=CONFIGS))}
    table = {line.split(" | ")[0][2:].split("]")[0][1:]: line.split(" | ") for line in card.splitlines()
             if line.startswith("| [subset_")}
    total = 0
    more_labels_than_rows = []
    for name in CONFIGS:
        rows = {split: sum(pq.ParquetFile(f).metadata.num_rows for f in (out / name).glob(f"{split}-*.parquet"))
                for split in ("train", "test")}
        conf = report.configs[name]
        assert conf.num_examples == SplitCounts(**rows), name
        assert {s: sum(led.kept.get(s) for led in conf.sources.values()) for s in rows} == rows, name
        assert info[name] == rows and caps[name] == rows["train"], name
        assert summary[name][1:3] == [str(rows["train"]), str(rows["test"])], name
        assert table[name][6:8] == [str(rows["train"]), str(rows["test"])], name
        assert f"- Splits: {rows['train']} train, {rows['test']} test" in card
        total += rows["train"] + rows["test"]
        if sum(sum(c.values()) for c in conf.label_counts.values()) > sum(rows.values()):
            more_labels_than_rows.append(name)
    assert header["size_categories"] == [size_category(total)]
    assert f"({sum(int(table[n][6]) for n in CONFIGS)} training and {sum(int(table[n][7]) for n in CONFIGS)} test examples)" in card
    # the multi-label configs, whose label occurrences outnumber their rows, are among those checked
    assert {"subset_15", "subset_20", "subset_31", "subset_33", "subset_37"} <= set(more_labels_than_rows)


def test_no_subject_of_the_demo_spans_train_and_test(demo_export):
    audits = audit_export(demo_export / "medmat")
    assert sorted(audits) == CONFIGS
    assert sum(len(a.spanning) for a in audits.values()) == 0
    report = BuildReport.read(demo_export / "medmat")
    for name, audit in audits.items():
        assert report.configs[name].groups == LeakageSummary(train=audit.subjects["train"], test=audit.subjects["test"])
