"""The ledger's vocabulary and arithmetic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from medmat_builder.records import DROP_REASONS
from medmat_builder.report import ConfigReport, safe_ref

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
