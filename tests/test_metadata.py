"""Hub-grade metadata of an export: the card's YAML fields and the Croissant file (checksums, date,
creator, Responsible-AI fields, ``mlcroissant`` validation without warnings), byte-identical rebuilds.

The expectations are written from the conventions themselves (the Hub's task list, size categories and
license ids; the ``source_datasets`` rule of ``datasets``' old metadata validator), not from medmat's code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from medmat_builder.publish import validate_croissant
from medmat_builder.publish import card as cards
from medmat_builder.publish import provenance
from medmat_builder.registry import load_registry
from medmat_builder.report import BuildReport

FIXTURES = Path(__file__).parent / "fixtures"

#: The Hub's task categories and their task ids (``PIPELINE_DATA`` of huggingface.js
#: packages/tasks/src/pipelines.ts), for the categories an image VQA dataset can claim.
HUB_TASKS = {
    "visual-question-answering": {"visual-question-answering"},
    "image-classification": {"multi-label-image-classification", "multi-class-image-classification"},
    "object-detection": {"face-detection", "vehicle-detection"},
    "image-segmentation": {"instance-segmentation", "semantic-segmentation", "panoptic-segmentation"},
    "multiple-choice": {"multiple-choice-qa", "multiple-choice-coreference-resolution"},
    "question-answering": {"extractive-qa", "open-domain-qa", "closed-domain-qa"},
}
#: SPDX id -> the Hub's license id, for the ids the registries here use; anything else is ``other``.
HUB_LICENSES = {"CC-BY-4.0": "cc-by-4.0", "CC-BY-NC-4.0": "cc-by-nc-4.0", "CC0-1.0": "cc0-1.0",
                "CC-BY-3.0": "cc-by-3.0", "unknown": "unknown"}
#: Two configs of the real registry: Kaggle terms (no Hub id) + CC-BY-3.0, and a segmentation subset.
DEMO_CONFIGS = ["subset_21", "subset_43"]


def _hub_size_category(n: int) -> str:
    """The Hub's size category by its boundaries (n<1K, 1K<n<10K, ...)."""
    for exp, name in ((3, "n<1K"), (4, "1K<n<10K"), (5, "10K<n<100K"), (6, "100K<n<1M"), (7, "1M<n<10M"),
                      (8, "10M<n<100M"), (9, "100M<n<1B")):
        if n < 10 ** exp:
            return name
    raise AssertionError(n)


def _header(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text(encoding="utf-8").split("---\n")[1])


def _parquet_column(folder: Path, column: str) -> set[str]:
    return {v for f in folder.glob("subset_*/*.parquet") for v in pq.read_table(f, columns=[column]).column(column).to_pylist()}


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("subset_*/*.parquet"))


def _build_demo(base: Path) -> Path:
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.demo import MINIMAL_PER_LABEL, write_demo_sources

    registry = load_registry()
    keys = sorted({k for n in DEMO_CONFIGS for k in registry.subset(n).sources})
    if not (base / "raw").is_dir():
        write_demo_sources(base / "raw", registry, keys=keys, per_label=MINIMAL_PER_LABEL)
    build(DEMO_CONFIGS, base / "raw", base / "medmat", BuildSettings(num_proc=1), registry=registry)
    return base / "medmat"


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    """``subset_21`` and ``subset_43`` of the real registry, built from the minimal demo sources."""
    return _build_demo(tmp_path_factory.mktemp("meta_demo"))


@pytest.fixture(params=["mini", "demo"])
def export(request, mini_export, small_demo) -> Path:
    return mini_export if request.param == "mini" else small_demo


# ---------------------------------------------------------------- card YAML


def test_card_header_follows_the_hub_conventions(export):
    header = _header(export)
    assert header["pretty_name"] == "Med-MAT (rebuilt with medmat)"
    # task categories are Hub categories; each task id belongs to one of the card's categories
    assert set(header["task_categories"]) <= set(HUB_TASKS)
    allowed_ids = set().union(*(HUB_TASKS[c] for c in header["task_categories"]))
    assert header["task_ids"] and set(header["task_ids"]) <= allowed_ids
    assert {"visual-question-answering", "image-classification"} <= set(header["task_categories"])
    assert {"visual-question-answering", "multi-class-image-classification"} <= set(header["task_ids"])
    # size from the rows actually in the parquet files
    assert header["size_categories"] == [_hub_size_category(_rows(export))]
    # one source_datasets entry per source found in the rows, each as datasets' validator accepts it
    sources = _parquet_column(export, "source")
    assert header["source_datasets"] == [f"extended|other-{k}" for k in sorted(sources)]
    assert all(s in ("original", "extended") or s.startswith("extended|") for s in header["source_datasets"])
    # license: the set of the rows' licenses as Hub ids, `other` (with name and link) for the rest
    expected = {HUB_LICENSES.get(lic, "other") for lic in _parquet_column(export, "license")}
    licenses = header["license"] if isinstance(header["license"], list) else [header["license"]]
    assert set(licenses) == expected and len(licenses) == len(expected)
    assert ("license_name" in header) == ("other" in expected)
    if "other" in expected:
        assert (header["license_name"], header["license_link"]) == ("medmat-per-source", "licenses.csv")
        assert (export / header["license_link"]).is_file()


def test_card_of_the_demo_configs_holds_their_tasks_and_licenses(small_demo):
    header = _header(small_demo)
    # subset_21 is single-label, subset_43 segmentation (answered with boxes)
    assert header["task_categories"] == ["image-classification", "multiple-choice", "object-detection",
                                         "visual-question-answering"]
    assert header["task_ids"] == ["multi-class-image-classification", "multiple-choice-qa", "visual-question-answering"]
    # Kaggle competition rules have no Hub id; CC-BY-3.0 (leukemia) and CC-BY-4.0 (busi_seg) do
    assert header["license"] == ["cc-by-3.0", "cc-by-4.0", "other"]
    assert header["source_datasets"] == ["extended|other-busi_seg", "extended|other-histopathologic_cancer",
                                         "extended|other-leukemia"]


def test_card_body_links_the_paper_and_tables_every_source_license(export):
    text = (export / "README.md").read_text(encoding="utf-8")
    body = text.split("---\n", 2)[2]
    # the Hub tags a card arxiv:<id> from a link to the paper in its text
    assert "(https://huggingface.co/papers/2412.20070)" in body and "(https://arxiv.org/abs/2412.20070)" in body
    registry = load_registry(FIXTURES / "mini_registry.yaml") if export.parent.name.startswith("mini") else load_registry()
    rows = {line.split(" | ")[0].strip("| `"): line for line in body.splitlines() if line.startswith("| `")
            and line.count(" | ") == 6}
    sources = sorted(_parquet_column(export, "source"))
    assert sorted(rows) == sources
    for key in sources:
        s = registry.source(key)
        cells = [c.strip() for c in rows[key].strip("|").split(" | ")]
        assert s.license in cells[2] and cells[3] == f"`{HUB_LICENSES.get(s.license, 'other')}`"
        assert cells[4] == s.access and cells[5] == ("yes" if s.redistributable else "no")


def test_license_is_other_with_name_and_link_only_for_terms_without_hub_id(tmp_path, mini_registry, mini_export):
    report = BuildReport.read(mini_export)
    assert cards.card_data(mini_registry, report.only(["subset_02"])).license == "cc0-1.0"
    data = cards.card_data(mini_registry, report.only(["subset_02"])).to_dict()
    assert "license_name" not in data and "license_link" not in data
    text = (FIXTURES / "mini_registry.yaml").read_text().replace("license: CC0-1.0", "license: Toy terms (research use)")
    (tmp_path / "reg.yaml").write_text(text)
    data = cards.card_data(load_registry(tmp_path / "reg.yaml"), report).to_dict()
    assert data["license"] == ["cc-by-4.0", "cc-by-nc-4.0", "other"]
    assert (data["license_name"], data["license_link"]) == ("medmat-per-source", "licenses.csv")


@pytest.mark.parametrize("n,category", [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (9_999, "1K<n<10K"),
                                        (10_000, "10K<n<100K"), (150_000, "100K<n<1M"), (1_000_000, "1M<n<10M"),
                                        (10**8 - 1, "10M<n<100M"), (10**8, "100M<n<1B")])
def test_size_category_boundaries(n, category):
    assert cards.size_category(n) == category == _hub_size_category(n)


def test_task_ids_per_kind_of_subset():
    registry = load_registry()
    kinds = {registry.subset(n).kind: n for n in registry.subset_names}
    assert cards.tasks_of(registry, [kinds["multi-label"]]) == (
        ["image-classification", "multiple-choice", "visual-question-answering"],
        ["multi-label-image-classification", "multiple-choice-qa", "visual-question-answering"])
    assert cards.tasks_of(registry, [kinds["detection"]]) == (
        ["object-detection", "visual-question-answering"], ["visual-question-answering"])
    for kind, name in kinds.items():  # every id is one the Hub knows, under a category of the card
        categories, ids = cards.tasks_of(registry, [name])
        assert set(ids) <= set().union(*(HUB_TASKS[c] for c in categories)), kind


# ---------------------------------------------------------------- Croissant


def test_croissant_validates_with_no_warning(export):
    path = export / "croissant.json"
    assert validate_croissant(path, strict=True) == []
    cli = Path(sys.executable).parent / "mlcroissant"
    if cli.exists():  # the same check through the command line
        done = subprocess.run([str(cli), "validate", "--jsonld", str(path)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "warning" not in (done.stdout + done.stderr).lower(), done.stderr


def test_croissant_checksums_every_file_of_the_export(export):
    meta = json.loads((export / "croissant.json").read_text(encoding="utf-8"))
    objects = {d["@id"]: d for d in meta["distribution"] if d["@type"] == "cr:FileObject"}
    # .medmat/ holds the build's lock; report/ is the local visual report, never uploaded (docs/report.md)
    on_disk = sorted(str(p.relative_to(export)) for p in export.rglob("*")
                     if p.is_file() and p.name != "croissant.json" and not p.relative_to(export).parts[0].startswith(".")
                     and p.relative_to(export).parts[0] != "report")
    assert sorted(objects) == on_disk
    for rel, obj in objects.items():
        data = (export / rel).read_bytes()
        assert obj["contentUrl"] == rel
        assert obj["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert obj["contentSize"] == f"{len(data)} B", rel
    file_sets = [d for d in meta["distribution"] if d["@type"] == "cr:FileSet"]
    assert [f["includes"] for f in file_sets] == [f"{c}/*.parquet" for c in sorted(r["@id"] for r in meta["recordSet"])]


def test_known_digests_are_used_only_while_the_file_keeps_its_size(tmp_path, mini_export):
    from medmat_builder.publish.croissant import FileDigest, export_files

    configs = sorted(p.name for p in mini_export.glob("subset_*"))
    real = export_files(mini_export, configs)
    assert real == {rel: FileDigest.of_bytes((mini_export / rel).read_bytes()) for rel in real}
    rel = next(r for r in real if r.endswith(".parquet"))
    taken = FileDigest("0" * 64, real[rel].size)  # as if hashed when written: used, the file is not read
    assert export_files(mini_export, configs, known={rel: taken})[rel] == taken
    stale = FileDigest("0" * 64, real[rel].size + 1)  # the file changed size since: read again
    assert export_files(mini_export, configs, known={rel: stale}) == real


def test_croissant_names_date_creator_paper_and_responsible_ai_fields(export):
    meta = json.loads((export / "croissant.json").read_text(encoding="utf-8"))
    assert meta["datePublished"] == provenance.RELEASE_DATE.isoformat()
    assert meta["creator"]["name"].startswith("FreedomIntelligence") and meta["creator"]["url"]
    assert "http://mlcommons.org/croissant/RAI/1.0" in meta["conformsTo"]
    for key in ("rai:dataCollection", "rai:dataCollectionType", "rai:personalSensitiveInformation",
                "rai:dataLimitations", "rai:dataBiases", "rai:dataUseCases", "rai:dataPreprocessingProtocol"):
        assert meta[key], key
    def text(value) -> str:  # JSON-LD writes a one-item list as the item
        return " ".join(value) if isinstance(value, list) else value

    assert "de-identified" in text(meta["rai:personalSensitiveInformation"])
    assert "clinical" in text(meta["rai:dataUseCases"])


def test_source_date_epoch_sets_date_published(monkeypatch, mini_registry, mini_export):
    from medmat_builder.publish.croissant import croissant_metadata

    report = BuildReport.read(mini_export)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1735689600")  # 2025-01-01T00:00:00Z
    assert croissant_metadata(mini_registry, report)["datePublished"] == "2025-01-01"
    assert provenance.date_published() == dt.date(2025, 1, 1)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(provenance.ReleaseDateError, match="SOURCE_DATE_EPOCH='yesterday'.*git log"):
        croissant_metadata(mini_registry, report)


# ---------------------------------------------------------------- determinism


def test_two_exports_write_the_same_bytes(tmp_path, small_demo):
    again = _build_demo(tmp_path)
    def files(folder: Path) -> list[str]:  # what the export holds, less the build's own .medmat/ folder
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and not p.relative_to(folder).parts[0].startswith("."))

    assert files(small_demo) == files(again)
    for rel in files(again):
        assert (small_demo / rel).read_bytes() == (again / rel).read_bytes(), rel
    for name in ("README.md", "croissant.json", "licenses.csv"):
        assert str(tmp_path) not in (again / name).read_text(encoding="utf-8")


def test_strict_validation_refuses_a_warning(tmp_path, mini_export):
    meta = json.loads((mini_export / "croissant.json").read_text(encoding="utf-8"))
    del meta["datePublished"]  # mlcroissant: "datePublished is recommended" (a warning, not an error)
    path = tmp_path / "croissant.json"
    path.write_text(json.dumps(meta), encoding="utf-8")
    assert any("datePublished" in w for w in validate_croissant(path))
    with pytest.raises(ValueError, match="datePublished"):
        validate_croissant(path, strict=True)


def test_metadata_bench_prints_every_row():
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(repo / "bench" / "metadata_bench.py"), "--mb", "1", "--repeat", "1"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for measure in ("sha256 rate: MB/s", "checksum every file: s", "card + licenses.csv + croissant.json: s"):
        assert measure in done.stdout, done.stdout


def test_a_source_left_out_of_a_partial_build_is_left_out_of_the_metadata(tmp_path, mini_raw_copy, mini_registry):
    from medmat_builder.build import build

    shutil.rmtree(mini_raw_copy / "toy_table")  # subset_01 is built from toy_folders alone
    out = tmp_path / "out"
    build(None, mini_raw_copy, out, registry=mini_registry, partial=True)
    assert _parquet_column(out, "source") == {"toy_folders", "toy_onehot"}
    header = _header(out)
    assert header["license"] == ["cc-by-4.0", "cc0-1.0"]  # not toy_table's CC-BY-NC-4.0
    assert header["source_datasets"] == ["extended|other-toy_folders", "extended|other-toy_onehot"]
    meta = json.loads((out / "croissant.json").read_text(encoding="utf-8"))
    assert meta["license"] == ["CC-BY-4.0", "CC0-1.0"]
    body = (out / "README.md").read_text(encoding="utf-8").split("---\n", 2)[2]
    assert "| `toy_folders` |" in body and "| `toy_table` | [Toy table]" not in body


def test_croissant_made_in_worker_processes_is_the_same_and_raises_the_same(tmp_path, monkeypatch, mini_registry,
                                                                             mini_export):
    """``medmat build`` makes croissant.json in its idle decoding workers: the same bytes as in the main
    process, and an invalid metadata error comes back with its message."""
    from concurrent.futures import ProcessPoolExecutor

    from medmat_builder.publish import croissant

    report = BuildReport.read(mini_export / "build_report.json")
    here, there = tmp_path / "here", tmp_path / "there"
    for folder in (here, there):
        shutil.copytree(mini_export, folder)
    with ProcessPoolExecutor(1) as pool:
        pool.submit(croissant.preload).result()
        croissant.write_croissant(there, mini_registry, report, pool=pool)
        croissant.write_croissant(here, mini_registry, report)
        assert (there / "croissant.json").read_bytes() == (here / "croissant.json").read_bytes()
        with pytest.raises(croissant.CroissantError, match="not a number of seconds"):
            pool.submit(_raise_croissant_error).result()


def _raise_croissant_error() -> None:
    from medmat_builder.publish.croissant import CroissantError

    raise CroissantError("Croissant metadata is invalid:\nnot a number of seconds")
