"""Shared fixtures: the mini registry, its synthetic raw sources and a built export (session-wide)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medmat_builder.demo import write_demo_sources
from medmat_builder.registry import Registry, load_registry

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def mini_registry() -> Registry:
    return load_registry(FIXTURES / "mini_registry.yaml")


@pytest.fixture(scope="session")
def mini_raw(tmp_path_factory, mini_registry) -> Path:
    raw = tmp_path_factory.mktemp("mini") / "raw"
    write_demo_sources(raw, mini_registry, per_label=20)
    return raw


@pytest.fixture()
def mini_raw_copy(tmp_path, mini_raw) -> Path:
    """A private copy of the mini raw sources that a test may damage."""
    dst = tmp_path / "raw"
    shutil.copytree(mini_raw, dst)
    return dst


@pytest.fixture(scope="session")
def mini_export(tmp_path_factory, mini_raw, mini_registry) -> Path:
    from medmat_builder.build import build

    out = tmp_path_factory.mktemp("mini_out") / "medmat"
    build(None, mini_raw, out, registry=mini_registry)
    return out


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory) -> Path:
    """``medmat build --demo`` of all configs of the real registry: ``raw/`` and ``medmat/`` under one folder.

    Written from the *minimal* demo archive (:data:`~medmat_builder.demo.MINIMAL_PER_LABEL` records per
    label), so the tests that build and load every config also prove that each one is written whole
    and loads from the smallest archive that can make it (``tests/test_loadable.py`` shows one record
    fewer cannot).
    """
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.demo import MINIMAL_PER_LABEL

    base = tmp_path_factory.mktemp("demo")
    registry = load_registry()
    write_demo_sources(base / "raw", registry, per_label=MINIMAL_PER_LABEL)
    build(None, base / "raw", base / "medmat", BuildSettings(num_proc=1), registry=registry)
    return base


def pytest_sessionfinish(session, exitstatus):
    """Join Arrow's reader threads before interpreter teardown (see medmat_builder.cli.release_arrow_threads)."""
    from medmat_builder.scripts import release_arrow_threads

    release_arrow_threads()
