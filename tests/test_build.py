"""End to end on the mini registry: raw synthetic sources -> export -> load_dataset, and the ledger."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmat_builder.build import BuildError, BuildSettings, MissingSourcesError, UnknownLabelError, build, build_lock
from medmat_builder.records import LETTERS
from medmat_builder.report import BuildReport, FolderMiss, SkippedConfig, SplitCounts, UnreadFiles

REPO = Path(__file__).resolve().parents[1]


def digest_tree(root: Path) -> dict[str, str]:
    """The export's files (not medmat's own marker, lock and scratch space under .medmat/)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".medmat" not in p.relative_to(root).parts
    }


def pixels(example) -> str:
    return hashlib.sha256(example["image"].convert("RGB").tobytes()).hexdigest()


def test_export_loads_by_name_and_records_are_valid(mini_export):
    for config in ("subset_01", "subset_02"):
        ds = datasets.load_dataset(str(mini_export), config)
        assert set(ds) == {"train", "test"}
        for split in ds.values():
            for ex in split:
                assert 2 <= len(ex["options"]) <= 4
                assert ex["answer"] in "ABCD"[: len(ex["options"])]
                assert ex["options"]["ABCD".index(ex["answer"])] == ex["answer_label"]
                assert ex["question"].endswith("Answer with the option's letter from the given choices directly.")
                assert ex["subset"] == config and ex["id"].startswith(config + "-")
                assert ex["license"] in {"CC-BY-4.0", "CC-BY-NC-4.0", "CC0-1.0"}
        assert ds["train"][0]["modality"] in ("X-ray", "FP")


def test_every_row_carries_the_pixel_hash_of_its_stored_image(mini_export):
    """``image_hash`` is what training's leakage guard and ``medmat fill`` compare: the stored image's pixels."""
    from medmat_builder.images import pixel_hash

    for config in ("subset_01", "subset_02"):
        ds = datasets.load_dataset(str(mini_export), config, split="train").cast_column("image", datasets.Image(decode=False))
        assert len(ds) > 0
        for ex in ds:
            assert ex["image_hash"] == pixel_hash(Image.open(io.BytesIO(ex["image"]["bytes"])))
        assert len(set(ds["image_hash"])) == len(ds)  # duplicates are dropped, so no two rows share pixels


def test_single_label_test_split_is_balanced_and_no_leak(mini_export):
    ds = datasets.load_dataset(str(mini_export), "subset_01")
    counts = Counter(ds["test"]["answer_label"])
    assert len(set(counts.values())) == 1 and set(counts) == {"Normal", "COVID-19", "Pneumonia"}
    train = {pixels(e) for e in ds["train"]}
    test = {pixels(e) for e in ds["test"]}
    assert not train & test


def test_ledger_accounts_for_every_raw_record(mini_export, mini_raw):
    report = BuildReport.read(mini_export)
    for conf in report.configs.values():  # the synthetic sources hold no file their layouts skip
        assert all(src.unread_images.count == 0 for src in conf.sources.values()) and not conf.warnings
    led = report.configs["subset_01"].sources
    # toy_folders: 3 raw labels, 20 each except the dropped OTHER (1) -> 41 files
    assert led["toy_folders"].raw == 41 == len(list((mini_raw / "toy_folders").rglob("*.jpeg")))
    assert led["toy_folders"].dropped["unused_label"] == 1
    for conf in report.configs.values():
        for src in conf.sources.values():
            assert src.raw == src.kept.train + src.kept.test + sum(src.dropped.values()) > 0
    ds = datasets.load_dataset(str(mini_export), "subset_01")
    assert report.configs["subset_01"].num_examples == SplitCounts(train=ds["train"].num_rows, test=ds["test"].num_rows)


def test_multilabel_answers_are_label_sets(mini_export):
    ds = datasets.load_dataset(str(mini_export), "subset_02")
    multi = [e for e in ds["train"] if len(e["labels"]) > 1]
    assert ds["train"].num_rows > 0 and multi, "the mini registry's one-hot source gives label sets"
    for e in ds["train"]:
        assert e["answer_label"] == ", ".join(e["labels"])
        assert e["options"][LETTERS.index(e["answer"])] == e["answer_label"]
    assert all(", " in e["answer_label"] for e in multi)


def test_builds_are_byte_identical_across_runs_and_num_proc(tmp_path, mini_raw, mini_registry, mini_export):
    out = tmp_path / "again"
    build(None, mini_raw, out, BuildSettings(num_proc=2), registry=mini_registry)
    assert digest_tree(out) == digest_tree(mini_export)


def test_output_does_not_depend_on_where_raw_data_or_output_live(tmp_path, mini_raw, mini_registry, mini_export):
    elsewhere = tmp_path / "some" / "other" / "place"
    shutil.copytree(mini_raw, elsewhere)
    build(None, elsewhere, tmp_path / "out", registry=mini_registry)
    assert digest_tree(tmp_path / "out") == digest_tree(mini_export)
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert str(tmp_path).encode() not in data and str(mini_raw).encode() not in data, f


def test_missing_sources_stop_the_build_unless_partial(tmp_path, mini_raw_copy, mini_registry):
    shutil.rmtree(mini_raw_copy / "toy_table")
    with pytest.raises(MissingSourcesError) as err:
        build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    assert "toy_table (Toy table; needed by subset_01; access: registration)" in str(err.value)
    assert "--partial" in str(err.value)
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", partial=True, registry=mini_registry)
    rep = res.report.configs["subset_01"]
    assert rep.missing_sources == ["toy_table"] and rep.sources["toy_table"].raw == 0
    assert res.built == ["subset_01"]
    shutil.rmtree(mini_raw_copy / "toy_onehot")  # the only source of subset_02: nothing to build it from
    res = build(None, mini_raw_copy, tmp_path / "out2", partial=True, registry=mini_registry)
    assert res.built == ["subset_01"] and res.skipped == {"subset_02": "no source present"}
    on_disk = BuildReport.read(tmp_path / "out2")
    assert on_disk.skipped == {"subset_02": SkippedConfig(reason="no source present (--partial)", missing_sources=["toy_onehot"])}


def test_unknown_raw_label_is_an_error_or_counted_with_lenient(tmp_path, mini_raw_copy, mini_registry):
    src = next((mini_raw_copy / "toy_folders" / "train" / "NORMAL").iterdir())
    (mini_raw_copy / "toy_folders" / "train" / "EDEMA").mkdir()
    shutil.copy(src, mini_raw_copy / "toy_folders" / "train" / "EDEMA" / "x.jpeg")
    with pytest.raises(UnknownLabelError) as err:
        build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    assert "source toy_folders: raw label 'EDEMA' (1 records, e.g. train/EDEMA/x.jpeg)" in str(err.value)
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", BuildSettings(lenient=True), registry=mini_registry)
    assert res.report.configs["subset_01"].sources["toy_folders"].dropped["unknown_label"] == 1


def test_source_with_open_vocabulary_drops_unlisted_labels_and_counts_them(tmp_path, mini_raw_copy):
    """`unlisted_labels: drop` (an open vocabulary such as MeSH headings): no error, each label counted."""
    from medmat_builder.registry import load_registry

    text = (REPO / "tests" / "fixtures" / "mini_registry.yaml").read_text()
    text = text.replace("    labels: {NORMAL: Normal, PNEUMONIA: Pneumonia, OTHER: null}\n",
                        "    labels: {NORMAL: Normal, PNEUMONIA: Pneumonia, OTHER: null}\n    unlisted_labels: drop\n")
    (tmp_path / "registry.yaml").write_text(text)
    registry = load_registry(tmp_path / "registry.yaml")
    assert registry.source("toy_folders").unlisted_labels == "drop"
    src = next((mini_raw_copy / "toy_folders" / "train" / "NORMAL").iterdir())
    (mini_raw_copy / "toy_folders" / "train" / "EDEMA").mkdir()
    for i in range(2):
        shutil.copy(src, mini_raw_copy / "toy_folders" / "train" / "EDEMA" / f"x{i}.jpeg")
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=registry)
    led = res.report.configs["subset_01"].sources["toy_folders"]
    assert led.ignored_labels == {"EDEMA": 2}
    assert led.dropped["unused_label"] == 1 + 2  # OTHER (null) and the two EDEMA records
    assert led.raw == led.accounted


def test_corrupt_truncated_and_duplicate_images_are_counted(tmp_path, mini_raw_copy, mini_registry):
    # Train is under the cap, so every train candidate is opened: damage train files.
    normal = sorted((mini_raw_copy / "toy_folders" / "train" / "NORMAL").iterdir())
    normal[0].write_bytes(b"")
    data = normal[1].read_bytes()
    normal[1].write_bytes(data[: len(data) // 2])
    normal[2].write_bytes(b"not an image at all, just text")
    (normal[3].parent / "copy.jpeg").write_bytes(normal[3].read_bytes())  # same bytes, other name
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    led = res.report.configs["subset_01"].sources["toy_folders"]
    assert led.raw == 42 == led.accounted
    assert led.dropped["empty"] == 1 and led.dropped["truncated"] == 1 and led.dropped["corrupt"] == 1
    assert led.dropped["duplicate"] == 1
    assert led.examples["empty"][0][0] == "train/NORMAL/" + normal[0].name
    ds = datasets.load_dataset(str(tmp_path / "out"), "subset_01")
    assert not {pixels(e) for e in ds["train"]} & {pixels(e) for e in ds["test"]}
    assert len(set(Counter(ds["test"]["answer_label"]).values())) == 1


def test_duplicate_across_splits_never_leaks_into_train(tmp_path, mini_raw_copy, mini_registry):
    test_dir = mini_raw_copy / "toy_folders" / "test" / "PNEUMONIA"
    train_dir = mini_raw_copy / "toy_folders" / "train" / "PNEUMONIA"
    for f in sorted(test_dir.iterdir()):  # every test image also sits in train, resized and re-encoded
        im = Image.open(f).convert("RGB")
        copy = im.resize((im.width * 2, im.height * 2), Image.Resampling.BILINEAR)  # a near duplicate
        buf = io.BytesIO()
        copy.save(buf, format="PNG")
        (train_dir / f"dup_{f.stem}.jpeg").write_bytes(buf.getvalue())
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    led = res.report.configs["subset_01"].sources["toy_folders"]
    kept_test = res.report.configs["subset_01"].label_counts["test"]["Pneumonia"]
    assert led.dropped["near_duplicate"] >= kept_test > 0
    ds = datasets.load_dataset(str(tmp_path / "out"), "subset_01")
    assert not {pixels(e) for e in ds["train"]} & {pixels(e) for e in ds["test"]}


def test_rebuilding_one_config_keeps_the_others(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "out"
    build(None, mini_raw, out, registry=mini_registry)
    before = digest_tree(out / "subset_02")
    build(["subset_01"], mini_raw, out, registry=mini_registry)
    assert digest_tree(out / "subset_02") == before
    assert set(BuildReport.read(out).configs) == {"subset_01", "subset_02"}
    assert datasets.load_dataset(str(out), "subset_02")["test"].num_rows > 0


def test_carried_over_configs_report_their_rows(tmp_path, mini_raw, mini_registry, mini_export):
    """A config kept from an earlier build (whose report may have counted label occurrences) reports its parquet rows."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    shutil.copytree(mini_export, out)
    report = json.loads((out / "build_report.json").read_text())
    report["configs"]["subset_02"]["num_examples"] = {"train": 999, "test": 999}
    (out / "build_report.json").write_text(json.dumps(report))
    res = build(["subset_01"], mini_raw, out, registry=mini_registry)
    rows = {s: sum(pq.ParquetFile(f).metadata.num_rows for f in (out / "subset_02").glob(f"{s}-*.parquet")) for s in ("train", "test")}
    assert res.report.configs["subset_02"].num_examples == SplitCounts(**rows)


def test_concurrent_build_into_one_folder_is_refused(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "out"
    with build_lock(out.absolute()):
        with pytest.raises(BuildError, match="another medmat build is writing to"):
            build(None, mini_raw, out, registry=mini_registry)


def test_killed_build_leaves_previous_output_and_rerun_completes(tmp_path, mini_raw, mini_registry, mini_export):
    out = tmp_path / "out"
    shutil.copytree(mini_export, out)
    before = digest_tree(out)
    script = (
        "import sys; from medmat_builder.build.export import build; from medmat_builder.registry import load_registry;"
        f"build(None, {str(mini_raw)!r}, {str(out)!r}, registry=load_registry({str(REPO / 'tests/fixtures/mini_registry.yaml')!r}))"
    )
    killed_at = []
    for delay in (0.05, 0.6, 1.5):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
        deadline = time.time() + 60
        while time.time() < deadline and not list(out.glob(".medmat/staging-*")) and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at.append(delay)
        proc.wait()
        assert digest_tree(out) == before  # intact, whatever the moment
    assert killed_at, "the build finished before it could be killed"
    build(None, mini_raw, out, registry=mini_registry)
    assert digest_tree(out) == before
    assert not list(out.glob(".medmat/staging-*")) and sorted(os.listdir(tmp_path)) == ["out"]


def test_cli_demo_build_on_mini_registry(tmp_path):
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "medmat_builder.cli", "build", "--demo", "--data-dir", str(tmp_path / "raw"),
           "--out", str(tmp_path / "out"), "--registry", str(REPO / "tests/fixtures/mini_registry.yaml")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "subset_01" in proc.stdout and "wrote" in proc.stdout
    assert datasets.load_dataset(str(tmp_path / "out"), "subset_02")["train"].num_rows > 0


def test_image_files_no_record_reads_are_listed_in_the_report(tmp_path, mini_raw_copy, mini_registry):
    """Files a layout does not read are not records, but they are never silently ignored either."""
    img = next((mini_raw_copy / "toy_table" / "images").iterdir())
    shutil.copy(img, mini_raw_copy / "toy_table" / "images" / "99999.png")  # no table row names it
    (mini_raw_copy / "toy_folders" / "extra").mkdir()
    shutil.copy(next((mini_raw_copy / "toy_folders" / "train" / "NORMAL").iterdir()),
                mini_raw_copy / "toy_folders" / "extra" / "stray.jpeg")  # outside every {split}/{label}/
    (mini_raw_copy / "toy_folders" / "notes.txt").write_text("not an image")  # not image-like: not listed
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    conf = res.report.configs["subset_01"]
    assert conf.sources["toy_table"].unread_images == UnreadFiles(
        count=1, examples=["images/99999.png"],
        folders=[FolderMiss(folder="images", files=1, closest_pattern="images/{id}.png",
                            hint="its files match the pattern, but no table row or annotation names them")])
    assert conf.sources["toy_table"].unread_images.unexplained == 1
    assert conf.sources["toy_table"].read_images == conf.sources["toy_table"].raw
    folders = conf.sources["toy_folders"].unread_images
    assert folders.examples == ["extra/stray.jpeg"]
    assert folders.folders[0].folder == "extra" and folders.folders[0].files == 1
    assert any(w.startswith("source toy_table: 1 image files") and "images/99999.png" in w for w in conf.warnings)
    on_disk = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert on_disk["configs"]["subset_01"]["sources"]["toy_table"]["unread_images"]["unexplained"] == 1


def test_parquet_shards_keep_every_row_in_order_with_small_row_groups(tmp_path, monkeypatch):
    """A split written from its Arrow files: contiguous shards named {split}-NNNNN-of-NNNNN, rows in order,
    row groups of ROWS_PER_GROUP, and the features that load_dataset reads back."""
    from medmat_builder.build import parquet

    features = datasets.Features({"id": datasets.Value("string"), "n": datasets.Value("int32")})
    datasets.Dataset.from_dict({"id": [f"r{i:03d}" for i in range(250)], "n": list(range(250))},
                               features=features).save_to_disk(str(tmp_path / "arrow"))
    ds = datasets.load_from_disk(str(tmp_path / "arrow"))
    assert ds.cache_files  # read from files, as a prepared split is
    monkeypatch.setattr(parquet, "MAX_SHARD_BYTES", ds.data.nbytes // 3 + 1)
    monkeypatch.setattr(parquet, "ROWS_PER_GROUP", 40)
    (tmp_path / "out").mkdir()
    paths = parquet.write_split(ds, tmp_path / "out", "train")
    assert [p.name for p in paths] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    files = [pq.ParquetFile(p) for p in paths]
    assert [f.metadata.num_rows for f in files] == [84, 83, 83]  # contiguous, the first one row longer
    assert [f.metadata.row_group(0).num_rows for f in files] == [40, 40, 40]
    rows = [r for p in paths for r in pq.read_table(p).to_pylist()]
    assert rows == [{"id": f"r{i:03d}", "n": i} for i in range(250)]
    loaded = datasets.load_dataset("parquet", data_files=[str(p) for p in paths], split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded.features == features and loaded.num_rows == 250


def _arrow_split(tmp_path, rows: int = 250):
    """A split read from Arrow files (as a prepared split is), and the tables it was made of, in batches of 30."""
    features = datasets.Features({"id": datasets.Value("string"), "n": datasets.Value("int32")})
    datasets.Dataset.from_dict({"id": [f"r{i:03d}" for i in range(rows)], "n": list(range(rows))},
                               features=features).save_to_disk(str(tmp_path / "arrow"))
    ds = datasets.load_from_disk(str(tmp_path / "arrow"))
    table = ds.data.table
    return ds, [table.slice(i, 30) for i in range(0, rows, 30)]


def test_early_split_writes_the_bytes_write_split_writes(tmp_path, monkeypatch):
    """Shards written from the builder's tables while they are made are byte for byte those written
    afterwards from the Arrow files (other batching, same row groups), for one shard and for three."""
    from medmat_builder.build import parquet

    ds, tables = _arrow_split(tmp_path)
    monkeypatch.setattr(parquet, "ROWS_PER_GROUP", 40)
    for shards in (1, 3):
        monkeypatch.setattr(parquet, "MAX_SHARD_BYTES", ds.data.nbytes // shards + 1)
        late, early_dir = tmp_path / f"late{shards}", tmp_path / f"early{shards}"
        late.mkdir()
        expected = parquet.write_split(ds, late, "train")
        early = parquet.EarlySplit(early_dir, "train", ds.features.arrow_schema, ds.num_rows, shards)
        for table in tables:
            early.put(table)
        paths = early.finish(ds)
        assert paths is not None and [p.name for p in paths] == [p.name for p in expected]
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]


def test_early_split_with_a_wrong_shard_estimate_is_removed(tmp_path, monkeypatch):
    """A wrong estimate of the shard count (or of the rows) leaves no file: the caller writes the split again."""
    from medmat_builder.build import parquet

    ds, tables = _arrow_split(tmp_path)
    monkeypatch.setattr(parquet, "MAX_SHARD_BYTES", ds.data.nbytes // 2 + 1)  # two shards
    early = parquet.EarlySplit(tmp_path / "out", "train", ds.features.arrow_schema, ds.num_rows, 1)
    for table in tables:
        early.put(table)
    assert early.finish(ds) is None
    assert list((tmp_path / "out").iterdir()) == []
    short = parquet.EarlySplit(tmp_path / "short", "train", ds.features.arrow_schema, ds.num_rows + 5, 2)
    for table in tables:  # fewer rows than announced: an error, raised by finish, no file left
        short.put(table)
    with pytest.raises(RuntimeError):
        short.finish(ds)
    assert list((tmp_path / "short").iterdir()) == []


def test_early_split_abort_stops_the_thread(tmp_path):
    """abort (the build stopped) ends the writer's thread even with tables still queued."""
    from medmat_builder.build import parquet

    ds, tables = _arrow_split(tmp_path)
    early = parquet.EarlySplit(tmp_path / "out", "train", ds.features.arrow_schema, ds.num_rows, 1)
    for table in tables[:3]:
        early.put(table)
    early.abort()
    assert not early._thread.is_alive()


def _prepared(tmp_path, raw, registry, dest=None, name="subset_01"):
    """A builder of ``name`` prepared in one process (``dest``: its parquet_dest, as ``medmat build`` sets it)."""
    from medmat_builder.build import BuildSettings
    from medmat_builder.build.builder import MedMatBuilder

    work = tmp_path / ("export" if dest is not None else "plain")
    builder = MedMatBuilder(config_name=name, registry=registry, cache_dir=str(work / "cache"), raw_dir=str(raw),
                            settings=BuildSettings(num_proc=1))
    builder.parquet_dest = dest
    builder.download_and_prepare(output_dir=str(work / "prep"), download_mode="force_redownload",
                                 verification_mode="no_checks")
    return builder


@pytest.mark.parametrize("name", ["subset_01", "subset_02"])
def test_export_split_writes_what_write_split_writes_from_the_whole_split(tmp_path, mini_raw, mini_registry, name):
    """With parquet_dest the Arrow split holds null images (the image bytes are written once, into the
    parquet files), yet each split's files are byte for byte those write_split writes from the split the
    builder prepares without it, whose nbytes (the shard count) is that of the tables the writer was handed."""
    from medmat_builder.build import parquet
    from medmat_builder.publish.croissant import FileDigest

    plain = _prepared(tmp_path, mini_raw, mini_registry, name=name)
    export = _prepared(tmp_path, mini_raw, mini_registry, dest=tmp_path / "dest", name=name)
    try:
        for split in ("train", "test"):
            whole, hollow = plain.as_dataset(split=split), export.as_dataset(split=split)
            assert hollow.num_rows == whole.num_rows > 0 and hollow.features == whole.features
            assert set(hollow.data.column("image").to_pylist()) == {None}
            assert hollow.remove_columns("image").data.table.equals(whole.remove_columns("image").data.table)
            assert all(image["bytes"] for image in whole.data.column("image").to_pylist())
            early = export.early[split]
            paths, digests = export.export_split(split, hollow)
            assert early.nbytes == whole.data.nbytes
            assert digests == [FileDigest.of_file(p) for p in paths]  # taken while writing
            (tmp_path / "late" / split).mkdir(parents=True)
            expected = parquet.write_split(whole, tmp_path / "late" / split, split)
            assert [p.name for p in paths] == [p.name for p in expected]
            assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
    finally:
        plain.close()
        export.close()


def test_export_split_writes_the_split_again_when_the_shard_estimate_is_wrong(tmp_path, mini_raw, mini_registry,
                                                                                 monkeypatch):
    """A wrong shard estimate: the early files are dropped and the split is written again from the builder's
    tables (images read from the spool again), as write_split writes the whole split."""
    from medmat_builder.build import builder as builder_module
    from medmat_builder.build import parquet

    plain = _prepared(tmp_path, mini_raw, mini_registry)
    whole = plain.as_dataset(split="train")
    monkeypatch.setattr(parquet, "MAX_SHARD_BYTES", whole.data.nbytes // 2 + 1)  # two shards
    monkeypatch.setattr(builder_module, "estimated_shards", lambda image_bytes, rows: 1)
    export = _prepared(tmp_path, mini_raw, mini_registry, dest=tmp_path / "dest")
    try:
        paths, digests = export.export_split("train", export.as_dataset(split="train"))
        assert digests is None  # written again: hashed once in place
        (tmp_path / "late").mkdir()
        expected = parquet.write_split(whole, tmp_path / "late", "train")
        assert [p.name for p in paths] == [f"train-0000{i}-of-00002.parquet" for i in range(2)]
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
        assert sorted(p.name for p in (tmp_path / "dest").glob("train-*")) == [p.name for p in paths]
    finally:
        plain.close()
        export.close()


def test_a_hashing_file_writes_the_bytes_of_a_path_and_their_digest(tmp_path, monkeypatch):
    """Shards written through HashingFile are byte for byte those written to a path, and the digest taken
    while writing is FileDigest.of_file of the finished file (one shard and three)."""
    from medmat_builder.build import parquet
    from medmat_builder.publish.croissant import FileDigest

    ds, _ = _arrow_split(tmp_path)
    monkeypatch.setattr(parquet, "ROWS_PER_GROUP", 40)
    monkeypatch.setattr(parquet.HashingFile, "QUEUED", 1)  # the writer waits for the hashing thread
    for shards in (1, 3):
        monkeypatch.setattr(parquet, "MAX_SHARD_BYTES", ds.data.nbytes // shards + 1)
        (tmp_path / f"plain{shards}").mkdir()
        expected = parquet.write_split(ds, tmp_path / f"plain{shards}", "train")
        paths = parquet.split_paths(tmp_path / f"hashed{shards}", "train", shards)
        paths[0].parent.mkdir()
        digests: list[FileDigest] = []
        parquet._write_shards(parquet._batches(ds), ds.features.arrow_schema, paths, ds.num_rows, digests)
        assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in expected]
        assert digests == [FileDigest.of_file(p) for p in paths]


def test_a_hashing_file_raises_the_error_of_its_write_thread(tmp_path):
    """A write that fails in HashingFile's write thread (a full disk) is raised in the writer's thread: by the
    next write and by close; a closed file refuses writes."""
    import errno
    import time

    from medmat_builder.build import parquet

    class FullDisk:
        closed = False

        def write(self, block):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True

    def failing(name: str) -> parquet.HashingFile:
        sink = parquet.HashingFile(tmp_path / name)
        sink._file.close()
        sink._file = FullDisk()
        sink.write(b"x" * (2 * parquet.HashingFile.JOIN))  # a large block: handed to the threads at once
        return sink

    sink = failing("a.parquet")
    with pytest.raises(OSError, match="No space left"):
        sink.close()
    assert sink.closed and sink._file.closed
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"more")

    sink = failing("b.parquet")
    for _ in range(500):  # the write thread takes the block and fails
        if sink._error is not None:
            break
        time.sleep(0.01)
    with pytest.raises(OSError, match="No space left"):
        sink.write(b"y")
    with pytest.raises(OSError, match="No space left"):
        sink.close()


def test_staged_digests_keep_the_digests_taken_while_writing(tmp_path):
    """StagedDigests.add with known digests keeps them (the file is not read again); without, hashes the file."""
    from medmat_builder.build.digests import StagedDigests
    from medmat_builder.publish.croissant import FileDigest

    (tmp_path / "c").mkdir()
    a, b = tmp_path / "c" / "a.parquet", tmp_path / "c" / "b.parquet"
    a.write_bytes(b"aaa")
    b.write_bytes(b"bbbb")
    staged = StagedDigests(tmp_path)
    try:
        staged.add([a], [FileDigest("0" * 64, 3)])
        staged.add([b])
        assert staged.result() == {"c/a.parquet": FileDigest("0" * 64, 3), "c/b.parquet": FileDigest.of_file(b)}
    finally:
        staged.close()
