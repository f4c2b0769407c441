"""The end of a build: the visual report written in an idle decoding worker is the one written in place."""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from medmat_builder.build import finish, loader
from medmat_builder.publish.visual import REPORT_DIR
from medmat_builder.report import BuildReport


def _report_files(folder: Path) -> dict[str, str]:
    base = folder / REPORT_DIR
    return {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


def _staged(tmp_path: Path, export: Path, name: str) -> Path:
    """A copy of ``export`` without its visual report."""
    staged = tmp_path / name
    shutil.copytree(export, staged, ignore=shutil.ignore_patterns(REPORT_DIR, ".medmat"))
    return staged


def test_idle_pool_is_none_without_a_running_pool(monkeypatch):
    monkeypatch.setattr(loader.Loader, "_pools", {})
    assert loader.idle_pool() is None


def test_report_from_a_worker_is_the_report_made_here(tmp_path, monkeypatch, mini_export, mini_registry, mini_raw):
    report = BuildReport.read(mini_export)
    here, there = _staged(tmp_path, mini_export, "here"), _staged(tmp_path, mini_export, "there")
    monkeypatch.setattr(finish, "idle_pool", lambda: None)
    finish.start_visual_report(here, mini_registry, report, mini_raw).result()
    with ProcessPoolExecutor(1) as pool:
        monkeypatch.setattr(finish, "idle_pool", lambda: pool)
        future = finish.start_visual_report(there, mini_registry, report, mini_raw)
        future.result()
    assert _report_files(there) == _report_files(here) == _report_files(mini_export)


def test_an_error_in_the_worker_is_raised_by_the_future(tmp_path, monkeypatch, mini_export, mini_registry, mini_raw):
    staged = _staged(tmp_path, mini_export, "staged")
    (staged / REPORT_DIR).write_text("a file where the report's folder goes", encoding="utf-8")
    with ProcessPoolExecutor(1) as pool:
        monkeypatch.setattr(finish, "idle_pool", lambda: pool)
        future = finish.start_visual_report(staged, mini_registry, BuildReport.read(mini_export), mini_raw)
        with pytest.raises(OSError):
            future.result()
    assert os.path.isfile(staged / REPORT_DIR)
