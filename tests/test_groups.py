"""Subjects: group keys read from a column, a side table or the path; the split by subject; the leakage audit."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medmat_builder.build import BuildSettings, audit_export, build
from medmat_builder.build.groups import GroupResolver, subject_key, subject_pseudonym
from medmat_builder.build.splitting import assign_group_splits
from medmat_builder.cli import main
from medmat_builder.demo import write_demo_sources
from medmat_builder.layouts.tables import LayoutError
from medmat_builder.records import RawRecord
from medmat_builder.registry import Groups, GroupTable, RegistryError, load_registry, parse_registry
from medmat_builder.report import BuildReport

MINI = Path(__file__).parent / "fixtures" / "mini_registry.yaml"
#: The mini registry with a subject key of each kind: a path pattern (toy_folders, official split),
#: a column of the label table (toy_table, no split), a side table (toy_onehot, official split).
GROUPS_YAML = {
    "toy_folders": '    groups: {path: ["{group:p\\\\d+}_*"]}\n',
    "toy_table": '    groups: {column: patient}\n',
    "toy_onehot": '    groups: {table: {path: "subjects.csv", id_column: ID, group_column: subject}}\n',
}


def grouped_registry_text(groups: dict[str, str] = GROUPS_YAML) -> str:
    text = MINI.read_text()
    for key, line in groups.items():
        text = re.sub(rf"(    key: {key}\n(?:.*\n)*?)(    layout:)", lambda m: m.group(1) + line + m.group(2), text, count=1)
    return text


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """The grouped mini registry, its synthetic sources and a build of them."""
    base = tmp_path_factory.mktemp("grouped")
    (base / "registry.yaml").write_text(grouped_registry_text())
    registry = load_registry(base / "registry.yaml")
    write_demo_sources(base / "raw", registry, per_label=20)
    build(None, base / "raw", base / "out", registry=registry)
    return base, registry


def _source(registry, key, **groups):
    return registry.source(key).model_copy(update={"groups": Groups(**groups)})


# --------------------------------------------------------------------------- reading
def test_every_kind_of_key_is_read_and_subjects_hold_several_images(grouped):
    base, registry = grouped
    for key, declared in (("toy_folders", "path"), ("toy_table", "column"), ("toy_onehot", "table")):
        src = registry.source(key)
        resolver = GroupResolver(src, base / "raw" / src.folder)
        keys = [resolver.key_of(rec) for rec in src.layout.scan(src, base / "raw" / src.folder) if not rec.drop_reason]
        assert resolver.stats.declared == declared and resolver.stats.ungrouped == 0, key
        sizes = Counter(keys)
        assert max(sizes.values()) == 2 and len(sizes) < len(keys), (key, sizes)
        assert all(k.startswith(src.folder + "\x1fgroup\x1f") for k in keys)


def test_side_table_ids_match_like_the_table_layout(tmp_path):
    """Image extension stripped, zero padding ignored, case ignored, path-like ids by their trailing segments."""
    registry = load_registry(MINI)
    src = _source(registry, "toy_folders",
                  table=GroupTable(path="meta/groupings.tsv", id_column="image", group_column="lesion_id"))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "groupings.tsv").write_text(
        "image\tlesion_id\n"
        "ISIC_0024306\tL1\n"          # file ISIC_24306.jpg: zero padding differs
        "isic_0024307.JPG\tL1\n"      # extension and case differ
        "archive/train/ISIC_0024308\tL2\n"  # path-like id, archive unpacked without its top folder
        "ISIC_0024309\t\n"            # no subject given
    )
    resolver = GroupResolver(src, tmp_path)

    def key(image: str) -> str:
        return resolver.key_of(RawRecord("toy_folders", image, image, ("NORMAL",)))

    assert key("train/NORMAL/ISIC_24306.jpg") == key("train/NORMAL/ISIC_0024307.jpg") == subject_key("toy_folders", "L1", "")
    assert key("train/ISIC_0024308.png") == subject_key("toy_folders", "L2", "")
    assert key("train/NORMAL/ISIC_0024309.jpg") == subject_key("toy_folders", None, "train/NORMAL/ISIC_0024309.jpg")
    assert key("train/NORMAL/other.jpg").endswith("\x1fimage\x1ftrain/NORMAL/other.jpg")
    assert resolver.stats.to_dict() == {"declared": "table", "groups": 4, "ungrouped": 2}


def test_path_patterns_are_tried_in_order(tmp_path):
    registry = load_registry(MINI)
    src = _source(registry, "toy_folders", path=["{group:person\\d+}_*", "{group}/slices/*"])
    resolver = GroupResolver(src, tmp_path)
    raw = [resolver.raw_group(RawRecord("k", p, p)) for p in
           ("train/X/person12_virus_3.jpeg", "vol7/slices/001.png", "train/X/IM-0001.jpeg")]
    assert raw == ["person12", "vol7", None]


def test_missing_side_table_or_column_is_a_clear_error(tmp_path):
    registry = load_registry(MINI)
    src = _source(registry, "toy_folders", table=GroupTable(path="groupings.csv", id_column="image", group_column="lesion_id"))
    with pytest.raises(LayoutError, match=r"source toy_folders: groups table 'groupings.csv' \(groups.table in sources.yaml\) not found"):
        GroupResolver(src, tmp_path)
    (tmp_path / "groupings.csv").write_text("image,lesion\nx,1\n")
    with pytest.raises(LayoutError, match=r"source toy_folders: table groupings.csv has no column 'lesion_id' "
                                          r"\(asked for by groups.table.group_column\) \(columns: 'image', 'lesion'\)"):
        GroupResolver(src, tmp_path)


def test_group_column_missing_from_the_label_table_is_a_clear_error(tmp_path, mini_raw):
    registry = load_registry(MINI)
    src = _source(registry, "toy_table", column="Patient ID")
    with pytest.raises(LayoutError, match=r"source toy_table: table labels.csv has no column 'Patient ID' "
                                          r"\(asked for by groups.column\)"):
        list(src.layout.scan(src, mini_raw / "toy_table"))


def test_a_group_column_needs_a_table_layout():
    text = grouped_registry_text({"toy_folders": "    groups: {column: patient}\n"})
    with pytest.raises(RegistryError, match="source toy_folders: field '\\(entry\\)'.*groups.column reads a column"):
        parse_registry(text)


def test_mostly_ungrouped_source_is_counted_and_warned(tmp_path, mini_raw):
    text = grouped_registry_text({"toy_table": '    groups: {path: ["{group:nobody\\\\d+}_*"]}\n'})
    (tmp_path / "registry.yaml").write_text(text)
    registry = load_registry(tmp_path / "registry.yaml")
    res = build(["subset_01"], mini_raw, tmp_path / "out", registry=registry)
    conf = res.report.configs["subset_01"]
    led = conf.sources["toy_table"].groups
    assert led.declared == "path" and led.ungrouped == led.groups == 40
    assert any(w.startswith("source toy_table: 40 of 40 records have no subject under its groups.path") for w in conf.warnings)


# --------------------------------------------------------------------------- splitting
@dataclass
class Item:
    group: str
    labels: tuple[str, ...]
    split: str = ""


def _items(seed: int, multi: bool) -> list[Item]:
    rng = random.Random(seed)
    labels = ["a", "b", "c", "d"]
    weights = [10, 5, 2, 1]
    items = []
    for g in range(600):
        main_label = rng.choices(labels, weights)[0]
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            labs = (main_label,)
            if multi and rng.random() < 0.3:
                labs = tuple(sorted({main_label, rng.choice(labels)}))
            elif not multi and rng.random() < 0.1:  # a subject whose images carry different labels
                labs = (rng.choice(labels),)
            items.append(Item(subject_key("src", f"p{g}", ""), labs))
    return items


@pytest.mark.parametrize("multi", [False, True], ids=["single-label", "multi-label"])
def test_split_by_subject_never_separates_a_subject_and_keeps_each_label_near_10_percent(multi):
    for seed in range(5):
        items = _items(seed, multi)
        assign_group_splits(items, seed, 0.1, lambda it: it.labels, "src")
        sides = defaultdict(set)
        for it in items:
            sides[it.group].add(it.split)
        assert all(len(s) == 1 for s in sides.values())
        for lab in "abcd":
            with_lab = [it for it in items if lab in it.labels]
            share = sum(it.split == "test" for it in with_lab) / len(with_lab)
            assert abs(share - 0.1) <= 0.03, (seed, lab, share, len(with_lab))


def test_one_image_subjects_are_split_exactly_as_by_image():
    """Without a key each image is its own subject: exactly round(10%) per label, and the same seed gives the same split."""
    items = [Item(subject_key("src", None, f"img{i}.png"), ("ab"[i % 2],)) for i in range(95)]
    assign_group_splits(items, 7, 0.1, lambda it: it.labels, "src")
    counts = Counter((it.labels[0], it.split) for it in items)
    assert counts[("a", "test")] == round(48 * 0.1) and counts[("b", "test")] == round(47 * 0.1)
    again = [Item(it.group, it.labels) for it in items]
    assign_group_splits(again, 7, 0.1, lambda it: it.labels, "src")
    assert [it.split for it in again] == [it.split for it in items]


def test_unsplit_images_of_an_officially_split_subject_follow_it():
    placed = [Item("s\x1fgroup\x1fp1", ("a",), "test"), Item("s\x1fgroup\x1fp2", ("a",), "train")]
    free = [Item("s\x1fgroup\x1fp1", ("a",)), Item("s\x1fgroup\x1fp2", ("a",))]
    assign_group_splits(free, 0, 0.1, lambda it: it.labels, "s", placed)
    assert [it.split for it in free] == ["test", "train"]


# --------------------------------------------------------------------------- end to end and the audit
def test_grouped_source_without_official_split_never_leaks(grouped, tmp_path):
    base, registry = grouped
    for seed in (1, 2, 3):
        out = tmp_path / f"seed{seed}"
        res = build(["subset_01"], base / "raw", out, BuildSettings(seed=seed), registry=registry)
        led = res.report.configs["subset_01"].sources["toy_table"].groups
        assert led.declared == "column" and led.across_splits == 0 and led.test > 0
        assert not audit_export(out)["subset_01"].leaks


def test_grouped_build_is_byte_identical_with_two_processes(grouped, tmp_path):
    base, registry = grouped
    build(None, base / "raw", tmp_path / "again", BuildSettings(num_proc=2), registry=registry)
    digest = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}  # noqa: E731
    assert digest(tmp_path / "again") == digest(base / "out")


def test_exported_group_column_is_a_pseudonym_shared_by_a_subjects_images(grouped):
    base, registry = grouped
    ds = datasets.load_dataset(str(base / "out"), "subset_01")
    rows = [ex for split in ("train", "test") for ex in ds[split]]
    assert all(re.fullmatch(r"[0-9a-f]{16}", ex["group"]) for ex in rows)
    table_rows = [ex for ex in rows if ex["source"] == "toy_table"]
    raw_subjects = {line.split(",")[-1] for line in (base / "raw" / "toy_table" / "labels.csv").read_text().splitlines()[1:]}
    assert not {ex["group"] for ex in table_rows} & raw_subjects
    assert {ex["group"] for ex in table_rows} <= {subject_pseudonym(subject_key("toy_table", s, "")) for s in raw_subjects}
    assert len({ex["group"] for ex in table_rows}) < len(table_rows)  # some subjects hold two images
    groups = BuildReport.read(base / "out").configs["subset_01"].groups
    assert groups.across_splits == 0
    assert groups.train == len({ex["group"] for ex in ds["train"]})
    assert groups.test == len({ex["group"] for ex in ds["test"]})
    card = (base / "out" / "README.md").read_text()
    assert f"- Subjects (the `group` column): {groups.train} train, {groups.test} test; in both: 0." in card
    assert "| column `patient` of the label table |" in card and "| path `{group:p\\d+}_*` |" in card


def test_official_split_that_puts_a_subject_on_both_sides_keeps_it_out_of_train(grouped, tmp_path):
    base, registry = grouped
    raw = tmp_path / "raw"
    import shutil

    shutil.copytree(base / "raw", raw)
    train_scans = sorted((raw / "toy_folders" / "train" / "NORMAL").glob("p*_*.jpeg"))
    subject = train_scans[0].name.split("_")[0]
    on_train = [p for p in sorted((raw / "toy_folders" / "train").rglob(f"{subject}_*")) if p.is_file()]
    # more scans of the same patient, filed by the source's official split under test
    data = raw / "toy_folders" / "test" / "PNEUMONIA"
    for i, other in enumerate(sorted(data.iterdir())):
        other.rename(data / f"{subject}_followup{i}.jpeg")
    res = build(["subset_01"], raw, tmp_path / "out", registry=registry)
    conf = res.report.configs["subset_01"]
    led = conf.sources["toy_folders"]
    assert conf.groups.across_splits == 0 and led.groups.across_splits == 0
    assert led.dropped["subject_in_test"] == len(on_train) >= 1  # the official test side is kept whole
    assert all(ex[0].split("/")[-1].startswith(f"{subject}_") for ex in led.examples["subject_in_test"])
    assert main(["audit", str(tmp_path / "out")]) == 0


def test_audit_fails_on_an_export_whose_split_leaks(grouped, tmp_path, capsys):
    """The audit reads the exported rows: a test row given a train row's subject is reported, exit 1."""
    base, _ = grouped
    import shutil

    out = tmp_path / "out"
    shutil.copytree(base / "out", out)
    train_file = sorted((out / "subset_01").glob("train-*.parquet"))[0]
    test_file = sorted((out / "subset_01").glob("test-*.parquet"))[0]
    leaked = pq.read_table(train_file).column("group")[0].as_py()
    table = pq.read_table(test_file)
    groups = table.column("group").to_pylist()
    groups[0] = leaked
    table = table.set_column(table.schema.get_field_index("group"), "group", pa.array(groups, pa.string()))
    pq.write_table(table, test_file)
    assert main(["audit", str(out)]) == 1
    printed = capsys.readouterr().out
    assert f"group {leaked}:" in printed and "1 subjects across splits in 1 of" in printed
    assert main(["audit", str(base / "out"), "subset_01", "subset_02"]) == 0
    assert main(["audit", str(base / "out"), "subset_09"]) == 2
    assert "has no config 'subset_09'" in capsys.readouterr().err


def test_parquet_group_column_is_what_the_audit_reads(grouped):
    base, _ = grouped
    for f in sorted((base / "out").glob("subset_*/*.parquet")):
        assert "group" in pq.ParquetFile(f).schema_arrow.names
