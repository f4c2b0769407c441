"""setuptools hook: the wheel carries the registry, the card templates and the training recipes (metadata
lives in setup.cfg).

``sources.yaml``, ``dataset_cards/`` and ``training/recipes/`` stay at the repository root (the one copy anybody edits); at
wheel-build time they are copied into ``medmat_builder/_data/`` inside the build folder, where
:mod:`medmat_builder.resources` finds them once installed. Editable installs read the checkout directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FILES = ("sources.yaml", "dataset_cards", "training/recipes")  # = medmat_builder.resources.DATA_FILES


class BuildPyWithData(build_py):
    """``build_py`` plus a copy of :data:`DATA_FILES` into ``<build_lib>/medmat_builder/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout
            return
        target = Path(self.build_lib) / "medmat_builder" / "_data"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in DATA_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
            elif src.is_file():
                shutil.copy2(src, target / name)
            else:
                raise SystemExit(f"{src} is missing: build the wheel from a checkout or an sdist (MANIFEST.in)")


setup(cmdclass={"build_py": BuildPyWithData})
