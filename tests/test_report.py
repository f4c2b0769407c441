"""The ledger's vocabulary and arithmetic."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from medmat_builder.records import DROP_REASONS
from medmat_builder.report import (
    REPORT_NAME,
    REPORT_VERSION,
    SCHEMA_NAME,
    BuildReport,
    ConfigReport,
    ReportError,
    report_schema,
    safe_ref,
)

PACKAGE = Path(__file__).resolve().parents[1] / "medmat_builder"


def test_every_drop_reason_used_in_code_is_documented():
    used = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "drop_reason" and isinstance(node.value, ast.Constant):
                used.add(node.value.value)
    assert used and used <= set(DROP_REASONS), used - set(DROP_REASONS)


def test_ledger_check_catches_lost_records():
    rep = ConfigReport(config="subset_01")
    led = rep.ledger("a")
    led.raw = 3
    led.keep("train")
    led.drop("corrupt", "x.png")
    with pytest.raises(AssertionError, match="source a: 3 raw records but 2 kept\\+dropped"):
        rep.check()
    with pytest.raises(ValueError, match="unknown drop reason"):
        led.drop("because", "x.png")


def test_dicom_paths_never_reach_the_report():
    ref = safe_ref("train/Doe^John_12345/IM0001.dcm:row 3")
    assert "Doe" not in ref and "12345" not in ref and ref.startswith("dicom:")


def test_report_file_round_trips_with_its_version_and_schema(mini_export):
    """What a build writes reads back into the typed report and writes the same bytes again; the schema lies beside it."""
    text = (mini_export / REPORT_NAME).read_text()
    report = BuildReport.read(mini_export)
    assert report.to_json() == text and json.loads(text)["version"] == REPORT_VERSION == 1
    assert (mini_export / SCHEMA_NAME).read_text() == report_schema()
    schema = json.loads(report_schema())
    assert schema["title"] == "BuildReport" and {"version", "settings", "configs", "skipped"} <= set(schema["properties"])
    led = report.configs["subset_01"].sources["toy_folders"]
    assert led.raw == led.accounted and report.configs["subset_01"].config == "subset_01"


def test_a_report_of_another_version_or_shape_is_refused(tmp_path):
    (tmp_path / REPORT_NAME).write_text(json.dumps({"version": 2, "configs": {}}))
    with pytest.raises(ReportError, match="not a build report of version 1"):
        BuildReport.read(tmp_path)
    (tmp_path / REPORT_NAME).write_text(json.dumps({"configs": {"subset_01": {"sources": {"a": {"raw": "many"}}}}}))
    with pytest.raises(ReportError, match=r"configs\.subset_01\.sources\.a\.raw"):
        BuildReport.read(tmp_path)
    with pytest.raises(ReportError, match="not found"):
        BuildReport.read(tmp_path / "nowhere")


def test_the_schema_in_the_docs_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / SCHEMA_NAME
    assert doc.read_text() == report_schema(), (
        "regenerate it: python -c 'from medmat_builder.report import report_schema; "
        f"print(report_schema(), end=\"\")' > docs/{SCHEMA_NAME}")
