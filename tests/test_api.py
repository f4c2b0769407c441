"""The Python API (``import medmat_builder as mm``): the same objects and the same results as the commands."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

import medmat_builder as mm
from medmat_builder import resources
from medmat_builder.build import BuildResult
from medmat_builder.cli import main
from medmat_builder.planner import Mixture, Planner, PlannerError
from medmat_builder.registry import Registry, load_registry
from medmat_builder.safe_paths import UnsafePathError

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini_registry.yaml"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def test_importing_the_package_loads_nothing_heavy():
    code = ("import sys, medmat_builder as mm; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('medmat_builder', 'datasets', 'pyarrow', 'pydantic', 'yaml', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['medmat_builder']"


def test_the_api_names_are_the_library_objects():
    assert mm.Planner is Planner and mm.Mixture is Mixture and mm.Registry is Registry and mm.BuildResult is BuildResult
    assert mm.planner_from_registry is __import__("medmat_builder.planner", fromlist=["x"]).planner_from_registry
    assert {"build_configs", "load_registry", "plan_mixture", "planner_from_registry"} <= set(dir(mm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mm.nope  # noqa: B018


def test_resources_come_from_the_checkout():
    assert resources.checkout_dir() == REPO
    assert mm.registry_path() == REPO / "sources.yaml" and mm.cards_dir() == REPO / "dataset_cards"
    with pytest.raises(ValueError, match="not a packaged data file"):
        resources.data_path("README.md")


def test_resources_fall_back_to_the_packaged_copies(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "medmat_builder"  # an installed layout: no project files beside it
    monkeypatch.setattr(resources, "PACKAGE_DIR", package)
    monkeypatch.setattr(resources, "PACKAGED_DATA_DIR", package / "_data")
    assert resources.checkout_dir() is None
    assert resources.registry_path() == package / "_data" / "sources.yaml"
    assert resources.cards_dir() == package / "_data" / "dataset_cards"


def test_load_registry_is_what_the_cli_loads(registry):
    reg = mm.load_registry()
    assert isinstance(reg, Registry) and len(reg.subsets) == 53 and reg.subset_names == registry.subset_names
    mini = mm.load_registry(MINI)
    assert [s.name for s in mini.subsets] == [s.name for s in load_registry(MINI).subsets]


def test_build_configs_writes_what_medmat_build_writes(tmp_path):
    result = mm.build_configs("subset_02", out=tmp_path / "api", data_dir=tmp_path / "raw_api", demo=True,
                              registry=MINI)
    assert isinstance(result, BuildResult) and result.built == ["subset_02"]
    assert main(["build", "subset_02", "--demo", "--data-dir", str(tmp_path / "raw_cli"),
                 "--out", str(tmp_path / "cli"), "--registry", str(MINI)]) == 0
    assert digest(tmp_path / "api") == digest(tmp_path / "cli") != {}
    ds = datasets.load_dataset(str(tmp_path / "api"), "subset_02")
    assert ds["train"].num_rows == result.report.configs["subset_02"].num_examples.train > 0


def test_build_configs_checks_its_paths_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="give data_dir"):
        mm.build_configs(["subset_02"], out=tmp_path / "out", registry=MINI)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not medmat's")
    with pytest.raises(UnsafePathError):
        mm.build_configs(["subset_02"], out=mine, data_dir=tmp_path / "raw", demo=True, registry=MINI)
    assert not (tmp_path / "raw").exists() and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_plan_mixture_is_the_mixture_medmat_plan_writes(tmp_path, registry, capsys):
    assert main(["plan", "--target", "subset_28", "--mix", "wo-area", "--budget", "6000",
                 "--out", str(tmp_path / "m.yaml")]) == 0
    mixture = mm.plan_mixture("subset_28", "wo-area", budget=6000, registry=registry)
    assert isinstance(mixture, Mixture) and mixture.to_yaml() == Mixture.load(tmp_path / "m.yaml").to_yaml()
    assert mixture.total == 6000 and "subset_28" not in {e.config for e in mixture.configs}
    planner = mm.planner_from_registry(registry)
    assert mm.plan_mixture("subset_28", registry=planner) == planner.mixture("subset_28", "related")
    with pytest.raises(PlannerError, match="needs member configs"):
        mm.plan_mixture("subset_28", "pair", registry=planner)
