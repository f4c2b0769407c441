"""Every written config loads: a config that would end with an empty split (or, single-label, a label
without test record) is never written; the build stops with the reason in numbers, or --partial skips it.

That all 53 configs build and load from the minimal archive is shown by ``tests/test_demo_build.py``,
whose export (the ``demo_export`` fixture) is written from exactly that archive.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import datasets
import pytest

from medmat_builder.build import UnloadableConfigError, build
from medmat_builder.demo import MINIMAL_PER_LABEL, write_demo_sources
from medmat_builder.registry import load_registry
from medmat_builder.report import BuildReport

REGISTRY = load_registry()


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_smaller_archive_writes_only_configs_that_load(tmp_path):
    """One record fewer per label than the minimal archive: the 9:1 split leaves some configs without test
    records. Without --partial the build stops with one line saying why and writes nothing; with it, those
    configs are skipped and said so, and the others are written whole."""
    configs = ["subset_04", "subset_08", "subset_13"]  # builds; a label without test record; no test record
    keys = {k for name in configs for k in REGISTRY.subset(name).sources}
    write_demo_sources(tmp_path / "raw", REGISTRY, keys=keys, per_label=MINIMAL_PER_LABEL - 1)
    with pytest.raises(UnloadableConfigError) as err:
        build(configs, tmp_path / "raw", tmp_path / "out", registry=REGISTRY)
    message = str(err.value)
    assert "\n" not in message and message.startswith("subset_08: test would have no 'Benign dermal' item: 0 of its 5 ")
    assert "--partial" in message and not (tmp_path / "out").exists()
    res = build(configs, tmp_path / "raw", tmp_path / "out", partial=True, registry=REGISTRY)
    assert res.built == ["subset_04"]
    assert res.skipped["subset_13"] == "subset_13: test would be empty: 0 candidates (all 40 usable records fell in train)"
    report = BuildReport.read(tmp_path / "out")
    assert sorted(report.skipped) == sorted(res.skipped)
    for name, why in res.skipped.items():
        assert report.skipped[name].reason == why and why.startswith(f"{name}: ")
        assert not (tmp_path / "out" / name).exists() and name not in report.configs
    card = (tmp_path / "out" / "README.md").read_text()
    for name in res.built:
        assert f"config_name: {name}\n" in card
        assert list((tmp_path / "out" / name).glob("train-*.parquet")) and list((tmp_path / "out" / name).glob("test-*.parquet"))
    assert not any(f"config_name: {name}\n" in card for name in res.skipped)
    for name in res.built:
        ds = datasets.load_dataset(str(tmp_path / "out"), name, cache_dir=str(tmp_path / "cache"))
        assert ds["train"].num_rows > 0 and ds["test"].num_rows > 0, name


def test_a_config_emptied_on_purpose_fails_and_the_previous_output_stays(tmp_path, mini_raw_copy, mini_registry, mini_export):
    out = tmp_path / "out"
    shutil.copytree(mini_export, out)
    before = digest_tree(out)
    test_images = sorted((mini_raw_copy / "toy_onehot" / "test").iterdir())
    for f in test_images:  # every test image of subset_02's only source is unreadable
        f.write_bytes(b"not an image")
    with pytest.raises(UnloadableConfigError) as err:
        build(None, mini_raw_copy, out, registry=mini_registry)
    n = len(test_images)
    assert str(err.value) == (f"subset_02: test would be empty: {n} candidates, {n} dropped as corrupt; nothing was "
                              "written (pass --partial to build the other configs without it)")
    assert digest_tree(out) == before
    res = build(None, mini_raw_copy, out, partial=True, registry=mini_registry, force=True)  # subset_01 is unchanged
    assert res.built == ["subset_01"] and res.skipped == {"subset_02": f"subset_02: test would be empty: {n} candidates, {n} dropped as corrupt"}
    assert BuildReport.read(out).skipped["subset_02"].sources["toy_onehot"].dropped == {"corrupt": n}
    assert not (out / "subset_02").exists()
