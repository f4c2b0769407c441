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
