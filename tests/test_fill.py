"""Hub round trip (issue 17): ``medmat publish --dry-run --save`` writes the text-only payload, ``medmat fill``
puts the restricted images back from the raw archives, and the result is the local build again.

A demo build of four configs of the real registry: subset_25 (every source redistributable), subset_26
and subset_28 (mixed) and subset_47 (segmentation, one restricted source). The trainer and the evaluator
refuse the payload in one line naming ``medmat fill`` and run on the filled copy.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmat_builder.build.refill import FILL_REASONS, FILL_REPORT_NAME, _scan_source
from medmat_builder.cli import main
from medmat_builder.images import pixel_hash
from medmat_builder.registry import load_registry

CONFIGS = ["subset_25", "subset_26", "subset_28", "subset_47"]
REPO = Path(__file__).resolve().parent.parent


def _tables(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.glob("subset_*/*.parquet"))}


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of an export or fill output but medmat's state and the fill report."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".medmat" not in p.parts and p.name != FILL_REPORT_NAME}


def _rows(folder: Path, config: str) -> list[dict]:
    rows = []
    for f in sorted((folder / config).glob("*.parquet")):
        rows += pq.read_table(f, columns=["id", "source", "image", "image_hash"]).to_pylist()
    return rows


@pytest.fixture(scope="module")
def trip(tmp_path_factory) -> dict[str, Path]:
    """raw/ (demo sources), medmat/ (local build), payload/ (publish --dry-run --save), filled/ (medmat fill)."""
    from medmat_builder.build import build
    from medmat_builder.demo import MINIMAL_PER_LABEL, write_demo_sources

    base = tmp_path_factory.mktemp("trip") / f"fill-{uuid.uuid4().hex[:8]}"  # unique: datasets caches by folder name
    registry = load_registry()
    keys = {k for c in CONFIGS for k in registry.subset(c).sources}
    write_demo_sources(base / "raw", registry, keys=keys, per_label=MINIMAL_PER_LABEL)
    build(CONFIGS, base / "raw", base / "medmat", registry=registry)
    assert main(["publish", str(base / "medmat"), "--repo-id", "org/medmat", "--dry-run",
                 "--save", str(base / "payload")]) == 0
    assert main(["fill", str(base / "payload"), "--data-dir", str(base / "raw"), "--out", str(base / "filled")]) == 0
    return {name: base / name for name in ("raw", "medmat", "payload", "filled")}


def test_payload_is_text_only_for_restricted_sources(trip):
    registry = load_registry()
    rows = [r for c in CONFIGS for r in _rows(trip["payload"], c)]
    stripped = [r for r in rows if r["image"] is None]
    assert stripped and len(stripped) < len(rows)
    assert {r["source"] for r in stripped} == {r["source"] for r in rows if not registry.source(r["source"]).redistributable}
    assert all(r["image_hash"] for r in rows)  # every row keeps what fill verifies against
    assert not any(r["image"] is None for r in _rows(trip["payload"], "subset_25"))
    assert (trip["payload"] / "README.md").is_file() and (trip["payload"] / "licenses.csv").is_file()


def test_fill_gives_back_the_local_build(trip, capsys):
    assert _tables(trip["filled"]) == _tables(trip["medmat"])  # byte-identical parquet, every config and split
    # complete, so the card, licenses.csv and croissant.json are the build's again (not the payload's)
    assert _files(trip["filled"]) == _files(trip["medmat"])
    assert (trip["payload"] / "README.md").read_bytes() != (trip["medmat"] / "README.md").read_bytes()
    report = json.loads((trip["filled"] / FILL_REPORT_NAME).read_text())
    assert report["metadata"] == "regenerated"
    missing = sum(r["image"] is None for c in CONFIGS for r in _rows(trip["payload"], c))
    total = sum(len(_rows(trip["medmat"], c)) for c in CONFIGS)
    assert (report["filled"], report["rows"], report["with_image"], report["not_filled"]) == (missing, total, total, {})
    assert report["configs"]["subset_25"]["filled"] == 0 and report["configs"]["subset_47"]["filled"] > 0


def test_filled_payload_loads_with_the_same_rows_and_pixels(trip):
    from datasets import load_dataset

    for config in ("subset_26", "subset_47"):
        for split in ("train", "test"):
            local = load_dataset(str(trip["medmat"]), config, split=split)
            filled = load_dataset(str(trip["filled"]), config, split=split)
            assert filled["id"] == local["id"] and filled["image_hash"] == local["image_hash"]
            for row in filled.cast_column("image", filled.features["image"].__class__(decode=False)):
                assert pixel_hash(Image.open(io.BytesIO(row["image"]["bytes"]))) == row["image_hash"]


def test_trainer_and_evaluator_refuse_the_payload_and_run_on_the_filled(trip, tmp_path, capsys):
    pytest.importorskip("trl")
    from medmat_builder import train as sft
    from medmat_builder.evaluate.cli import main as evaluate_main
    from medmat_builder.evaluate.testing import tiny_model

    model = tiny_model(tmp_path / "llava")
    recipe = REPO / "training" / "recipes" / "tiny_cpu.yaml"

    def train(data: Path, out: str):
        return sft.main(["--config", str(recipe), "--dataset_name", str(data), "--model_name_or_path", str(model),
                         "--output_dir", str(tmp_path / out), "--train_configs", "subset_25", "subset_26",
                         "--max_steps", "2", "--per_device_train_batch_size", "2", "--samples_per_config", "8"])

    def evaluate(data: Path, out: str):
        return evaluate_main(["--model_name_or_path", str(model), "--dataset_name", str(data), "--configs",
                              "subset_28", "--mode", "likelihood", "--limit", "4", "--output_dir", str(tmp_path / out)])

    for run in (train, evaluate):
        with pytest.raises(SystemExit) as info:
            run(trip["payload"], f"refused-{run.__name__}")
        message = str(info.value.code)
        assert "\n" not in message and "medmat fill" in message and "rows have no image" in message, message
    assert train(trip["filled"], "trained") == 0
    manifest = json.loads((tmp_path / "trained" / sft.DATA_MANIFEST).read_text())
    assert manifest["records"] == {"subset_25": 8, "subset_26": 8}
    assert evaluate(trip["filled"], "evaluated") == 0
    results = json.loads((tmp_path / "evaluated" / "results.json").read_text())
    assert results["configs"]["subset_28"]["n"] == 4


# ------------------------------------------------------------------------------------- what cannot be filled
def _raw_file(raw: Path, source_key: str, row_id: str) -> Path:
    source = load_registry().source(source_key)
    index = _scan_source(source, raw)
    return raw / source.folder / index.records[row_id.rpartition("-")[2]].image


def test_every_row_not_filled_is_counted_with_its_reason(trip, tmp_path, capsys):
    """Corrupt -> unreadable, changed -> hash_mismatch, deleted -> not_found, folder gone -> raw_missing,
    a source the registry lacks -> unknown_source, no hash -> no_hash; the rest is filled."""
    raw = tmp_path / "raw"
    shutil.copytree(trip["raw"], raw)
    payload = tmp_path / "payload"
    shutil.copytree(trip["payload"], payload, ignore=shutil.ignore_patterns(".medmat"))
    rows = [r for r in _rows(payload, "subset_28") if r["image"] is None]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    first, second, *_ = sorted(by_source, key=lambda k: (-len(by_source[k]), k))  # restricted sources of subset_28
    corrupt, changed, deleted = by_source[first][:3]
    data = _raw_file(raw, first, corrupt["id"])
    data.write_bytes(data.read_bytes()[:40])  # cut short
    img_path = _raw_file(raw, first, changed["id"])
    img = Image.open(img_path)
    img.load()
    fmt = img.format
    img = img.convert("RGB").rotate(90, expand=True)  # a valid image, other pixels
    img.save(img_path, format=fmt)
    _raw_file(raw, first, deleted["id"]).unlink()
    shutil.rmtree(raw / load_registry().source(second).folder)

    # one row claims a source the registry does not know, one lost its hash
    damaged = {corrupt["id"], changed["id"], deleted["id"]}
    for path in sorted((payload / "subset_28").glob("*.parquet")):
        table = pq.read_table(path)
        ids = table.column("id").to_pylist()
        sources, hashes = table.column("source").to_pylist(), table.column("image_hash").to_pylist()
        free = [i for i, (s, img) in enumerate(zip(sources, table.column("image").to_pylist()))
                if img is None and s != second and ids[i] not in damaged]
        if len(free) >= 2:
            break
    sources[free[0]], hashes[free[1]] = "no_such_source", ""
    unknown_id, nohash_id = ids[free[0]], ids[free[1]]
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("source"), "source", pa.array(sources, pa.string()))
    table = table.set_column(table.schema.get_field_index("image_hash"), "image_hash", pa.array(hashes, pa.string()))
    pq.write_table(table, path)

    out = tmp_path / "filled"
    capsys.readouterr()
    # two decoding processes: the same rows in the same order as one
    assert main(["fill", str(payload), "--data-dir", str(raw), "--out", str(out), "--num-proc", "2"]) == 1  # incomplete
    printed = capsys.readouterr().out
    report = json.loads((out / FILL_REPORT_NAME).read_text())
    second_rows = [r["id"] for r in by_source[second] if r["id"] not in (unknown_id, nohash_id)]
    expected = {"unreadable": [corrupt["id"]], "hash_mismatch": [changed["id"]], "not_found": [deleted["id"]],
                "raw_missing": second_rows, "unknown_source": [unknown_id], "no_hash": [nohash_id]}
    got = {reason: sorted(r["id"] for r in rows) for reason, rows in report["rows_not_filled"].items()}
    assert got == {k: sorted(v) for k, v in expected.items()}
    assert report["configs"]["subset_28"]["not_filled"] == {k: len(v) for k, v in expected.items()}
    assert report["filled"] + sum(report["not_filled"].values()) == sum(
        r["image"] is None for c in CONFIGS for r in _rows(payload, c))  # nothing silently lost
    assert report["metadata"] == "copied"  # some rows are still text-only: the payload's card stays
    assert (out / "README.md").read_bytes() == (payload / "README.md").read_bytes()
    assert set(report["reasons"]) == set(expected) and set(expected) <= set(FILL_REASONS)
    for reason, n in report["configs"]["subset_28"]["not_filled"].items():
        assert f"{reason}: {n}" in printed
    assert report["rows_not_filled"]["unreadable"][0]["detail"]  # the decoder's reason, e.g. truncated
    still = {r["id"] for r in _rows(out, "subset_28") if r["image"] is None}
    assert still == {i for v in expected.values() for i in v}  # the others were filled
    assert _tables(out)["subset_26/test-00000-of-00001.parquet"] == _tables(trip["medmat"])["subset_26/test-00000-of-00001.parquet"]


def test_fill_and_save_refuse_folders_they_did_not_write(trip, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["fill", str(trip["payload"]), "--data-dir", str(trip["raw"]), "--out", str(foreign)]) == 2
    assert main(["publish", str(trip["medmat"]), "--repo-id", "org/m", "--dry-run", "--save", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "keep" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    out = capsys.readouterr().err
    assert out.count("error:") == 2 and "medmat did not write" in out
    assert main(["fill", str(tmp_path / "nowhere"), "--data-dir", str(trip["raw"]), "--out", str(tmp_path / "o")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    # a second fill into the same output replaces it (an earlier `medmat fill` output)
    assert main(["fill", str(trip["payload"]), "--data-dir", str(trip["raw"]), "--out", str(trip["filled"])]) == 0
    assert _tables(trip["filled"]) == _tables(trip["medmat"])


def test_rows_without_image_counts_null_and_empty_images():
    import pyarrow as pa
    from datasets import Dataset

    from medmat_builder.loading import MissingImagesError, require_images, rows_without_image

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    column = pa.array([{"bytes": b"png", "path": None}, None, {"bytes": None, "path": None},
                       {"bytes": None, "path": "a.png"}], type=image)
    ds = Dataset(pa.table({"id": ["a", "b", "c", "d"], "image": column}))
    assert rows_without_image(ds) == 2
    with pytest.raises(MissingImagesError, match=r"^DIR subset_01/test: 2 of 4 rows have no image .*`medmat fill DIR"):
        require_images(ds, "DIR", "subset_01", "test")
    require_images(ds.remove_columns("image"), "DIR", "subset_01", "test")  # nothing to check


def test_cli_names_the_fill_report_as_the_module_writes_it():
    from medmat_builder.build.refill import FILL_REPORT_NAME as written
    from medmat_builder.cli.fill import FILL_REPORT_NAME as named

    assert named == written
