"""A rebuilt export is read afresh: no stale ``datasets`` cache for local folders."""

from __future__ import annotations

import datasets

from medmat_builder.build import build
from medmat_builder.demo import write_demo_sources
from medmat_builder.loading import load_split


def test_rebuilt_export_is_never_read_from_a_stale_cache(tmp_path, mini_registry, monkeypatch):
    monkeypatch.setenv("MEDMAT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "medmat"
    write_demo_sources(tmp_path / "raw_small", mini_registry, per_label=10)
    build(["subset_01"], tmp_path / "raw_small", out, registry=mini_registry)
    first = load_split(str(out), "subset_01", "train").num_rows
    write_demo_sources(tmp_path / "raw_big", mini_registry, per_label=30)
    build(["subset_01"], tmp_path / "raw_big", out, registry=mini_registry)
    second = load_split(str(out), "subset_01", "train").num_rows
    assert second > first
    assert second == datasets.Dataset.from_parquet(str(next((out / "subset_01").glob("train-*.parquet")))).num_rows


def test_plain_load_dataset_sees_a_rebuild_too(tmp_path, mini_registry):
    """The export's README carries dataset_info (exact parquet sizes), which datasets hashes into its cache key."""
    cache = str(tmp_path / "hf_cache")
    out = tmp_path / "medmat"
    write_demo_sources(tmp_path / "raw_small", mini_registry, per_label=10)
    build(["subset_01"], tmp_path / "raw_small", out, registry=mini_registry)
    first = datasets.load_dataset(str(out), "subset_01", split="train", cache_dir=cache).num_rows
    write_demo_sources(tmp_path / "raw_big", mini_registry, per_label=30)
    build(["subset_01"], tmp_path / "raw_big", out, registry=mini_registry)
    assert datasets.load_dataset(str(out), "subset_01", split="train", cache_dir=cache).num_rows > first
