"""The scan's per-record shortcuts (label mappings worked out once per distinct raw labels) count like the long way."""

from __future__ import annotations

from medmat_builder.build.scan import scan_candidates
from medmat_builder.records import RawRecord
from medmat_builder.report import ConfigReport


def test_repeated_raw_labels_are_mapped_and_counted_per_record(tmp_path, mini_registry):
    subset = mini_registry.subset("subset_01")
    source = mini_registry.source("toy_folders").model_copy(update={"unlisted_labels": "drop"})
    root = tmp_path / "toy_folders"
    labels = [("NORMAL",), ("EDEMA", "NORMAL"), ("NORMAL",), ("EDEMA", "NORMAL"), ("OTHER",), ("EDEMA",), ("OTHER",)]
    records = []
    for i, labs in enumerate(labels):
        path = f"train/{'_'.join(labs)}/x{i}.jpeg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")
        records.append(RawRecord(source.key, path, path, labs))
    report = ConfigReport(config=subset.name)
    got = scan_candidates(subset, [(source, root)], report, scan=lambda s, r: records)
    led = report.ledger(source.key)
    assert [c.labels for c in got] == [("Normal",)] * 4
    assert led.ignored_labels == {"EDEMA": 3}  # once per record, also where another label was kept
    assert led.dropped == {"unused_label": 3} and led.raw == 7


def test_records_in_the_usual_case_are_taken_at_once_as_one_by_one(tmp_path, mini_registry):
    """Clean records (plain files, known labels) go through the bulk path; the same records one by one give the
    same candidates, and any unusual record (drop reason, mask, unknown or ignored label, no id) sends the whole
    source through the one-by-one path."""
    from medmat_builder.build.scan import _plain_records, _usable_records
    from medmat_builder.images.hashes import image_ids
    from medmat_builder.layouts import FileIndex, shared_indexes
    from medmat_builder.safe_paths import RawTree

    subset = mini_registry.subset("subset_01")
    source = mini_registry.source("toy_folders")
    root = tmp_path / "toy_folders"
    records = []
    for i, labs in enumerate([("NORMAL",), ("PNEUMONIA",), ("NORMAL",)] * 5):
        path = f"train/{labs[0]}/x{i}.jpeg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")
        records.append(RawRecord(source.key, path, path, labs, split="train" if i % 2 else None))
    variants = {
        "clean": records,
        "dropped": records[:3] + [RawRecord(source.key, "gone", "gone.jpeg", ("NORMAL",), drop_reason="missing_image")],
        "unknown label": records[:3] + [RawRecord(source.key, records[0].image, records[0].image, ("NOPE",))],
        "no labels": records[:3] + [RawRecord(source.key, records[1].image, records[1].image, ())],
        "not walked": records[:3] + [RawRecord(source.key, "other.jpeg", "other.jpeg", ("NORMAL",))],
        "no id": records[:3] + [RawRecord(source.key, "./x.jpeg", "./x.jpeg", ("NORMAL",))],
    }
    with shared_indexes():
        index = FileIndex.of(root)
        for name, recs in variants.items():
            ids = image_ids(source.key, [r.image for r in recs])
            bulk = _plain_records(subset, source, recs, ids, index.plain_files)
            report = ConfigReport(config=subset.name)
            ledger, unknown = report.ledger(source.key), {}
            one_by_one = _usable_records(subset, source, recs, ids, RawTree(root), index, ledger, set(), unknown)
            if name == "clean":
                assert bulk == one_by_one and len(bulk[0]) == len(recs)
            else:
                assert bulk is None, name
                dropped = name in ("dropped", "unknown label", "no labels")
                assert len(one_by_one[0]) == len(recs) - dropped, name


def test_file_checks_left_for_later_fill_the_report_as_during_the_scan(tmp_path, mini_registry):
    """With ``later``, each source's file ledger and folder-link check wait in that list; run afterwards
    (warnings added meanwhile, as the fill's would be), the report is the one a scan that ran them gives."""
    from medmat_builder.build.scan import run_file_checks

    subset = mini_registry.subset("subset_01")
    outside = tmp_path / "outside"
    outside.mkdir()
    sources = []
    for key in ("toy_folders", "toy_folders"):
        source = mini_registry.source(key)
        root = tmp_path / f"raw{len(sources)}"
        for i, lab in enumerate(("NORMAL", "PNEUMONIA", "NORMAL")):
            (root / "train" / lab).mkdir(parents=True, exist_ok=True)
            (root / "train" / lab / f"x{i}.jpeg").write_bytes(b"x")
        (root / "stray").mkdir()
        (root / "stray" / "lost.jpeg").write_bytes(b"x")  # matches no pattern: a warning
        (root / "train" / "more").symlink_to(outside, target_is_directory=True)  # a link out: a warning
        sources.append((source, root))

    def scan(source, root):
        return [RawRecord(source.key, p, p, (p.split("/")[1],)) for p in sorted(
            str(f.relative_to(root)) for f in root.glob("train/*/*.jpeg"))]

    def scanned(later):
        report = ConfigReport(config=subset.name)
        report.warnings.append("before")
        cands = scan_candidates(subset, sources, report, scan=scan, later=later)
        return report, cands

    now, cands_now = scanned(None)
    checks: list = []
    report, cands = scanned(checks)
    assert len(checks) == 2 and report.warnings == ["before"]
    report.warnings.append("after")
    run_file_checks(report, checks)
    assert not checks
    assert report.warnings == now.warnings + ["after"] and len(now.warnings) == 5
    assert report.model_dump() == {**now.model_dump(), "warnings": now.warnings + ["after"]}
    assert [c.id for c in cands] == [c.id for c in cands_now]
