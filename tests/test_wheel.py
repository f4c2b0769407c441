"""The wheel works away from the checkout: build it, install it into a fresh virtual environment, and from a
folder outside the repository check the registry, build two demo configs and load them with ``datasets``.

Offline: ``pip wheel --no-build-isolation`` with the project's setuptools, a venv without pip whose
site-packages also sees the project's environment (a ``.pth`` line), ``pip install --no-deps --no-index``.
About 30 s; ``-m "not wheel"`` deselects it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What a wheel is built from (an sdist holds the same: setup.cfg, setup.py and MANIFEST.in).
BUILD_INPUTS = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "sources.yaml",
                "dataset_cards", "training", "medmat_builder")
CONFIGS = ("subset_25", "subset_26")

pytestmark = pytest.mark.wheel


def run(cmd: list[str], cwd: Path, log: list[str]) -> str:
    """Run ``cmd`` without the checkout on PYTHONPATH; keep the command and its output for the report."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    lines = out.rstrip().splitlines()
    if proc.returncode == 0 and len(lines) > 12:  # a failure is shown whole
        lines = lines[:12] + [f"... ({len(lines) - 12} more lines)"]
    shown = "\n".join(lines)
    log.append(f"$ {' '.join(str(c) for c in cmd)}  (in {cwd})\n{shown}\n[exit {proc.returncode}]")
    assert proc.returncode == 0, "\n\n".join(log)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A wheel of this checkout installed into a fresh venv under a temporary folder."""
    base = tmp_path_factory.mktemp("wheel")
    log: list[str] = []
    src = base / "src"  # a clean copy: no build/ or egg-info left in the checkout, no stale files
    src.mkdir()
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"))
        else:
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(base / "dist"), str(src)], base, log)
    wheel = next((base / "dist").glob("medmat-*.whl"))

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, log)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    base, log).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}  # the project's environment
    (site / "_medmat_project_env.pth").write_text("".join(f"{p}\n" for p in sorted(ours)), encoding="utf-8")
    # --ignore-installed: the project's environment may hold medmat (editable) too; leave it alone
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        base, log)
    work = base / "elsewhere"  # outside the checkout
    work.mkdir()
    return {"python": python, "medmat": python.parent / "medmat", "site": site, "work": work, "log": log,
            "wheel": wheel}


def test_the_wheel_carries_the_registry_and_the_card_templates(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert {"medmat_builder/_data/sources.yaml", "medmat_builder/_data/dataset_cards/README.md.j2",
            "medmat_builder/_data/dataset_cards/subset.md.j2", "medmat_builder/train/trainer.py",
            "medmat_builder/evaluate/cli.py", "medmat_builder/_data/training/recipes/tiny_cpu.yaml"} <= names
    packaged = zipfile.ZipFile(installed["wheel"]).read("medmat_builder/_data/sources.yaml")
    assert packaged == (REPO / "sources.yaml").read_bytes()


def test_installed_medmat_checks_builds_and_loads_outside_the_checkout(installed):
    log, work, python, medmat = installed["log"], installed["work"], installed["python"], installed["medmat"]
    where = run([str(python), "-c", "import medmat_builder, medmat_builder.resources as r; "
                 "print(medmat_builder.__file__); print(r.checkout_dir()); print(r.registry_path())"], work, log)
    module, checkout, registry = where.split("\n")[:3]
    assert Path(module).is_relative_to(installed["site"]) and not Path(module).is_relative_to(REPO)
    assert checkout == "None" and Path(registry) == installed["site"] / "medmat_builder/_data/sources.yaml"

    out = run([str(medmat), "sources", "check"], work, log)
    assert "ok: 53 subsets" in out

    out = run([str(medmat), "build", *CONFIGS, "--demo", "--data-dir", "raw", "--out", "medmat"], work, log)
    assert f"({len(CONFIGS)} configs built)" in out
    card = (work / "medmat" / "README.md").read_text(encoding="utf-8")  # rendered from the packaged templates
    assert "## Configs" in card and all(f"\n### {c}\n" in card for c in CONFIGS)  # README.md.j2, subset.md.j2

    code = ("import sys, datasets, medmat_builder\n"
            f"for c in {list(CONFIGS)!r}:\n"
            "    ds = datasets.load_dataset('medmat', c)\n"
            "    print(c, ds['train'].num_rows, ds['test'].num_rows)\n"
            "print('imported', medmat_builder.__file__)\n")
    env_cache = work / "hf_cache"
    out = run([str(python), "-c", f"import os; os.environ['HF_DATASETS_CACHE'] = {str(env_cache)!r}\n" + code],
              work, log)
    rows = {line.split()[0]: (int(line.split()[1]), int(line.split()[2])) for line in out.splitlines()
            if line.startswith("subset_")}
    assert set(rows) == set(CONFIGS) and all(train > 0 and test > 0 for train, test in rows.values())
    assert f"imported {installed['site'] / 'medmat_builder' / '__init__.py'}" in out

    for module in ("medmat_builder.train", "medmat_builder.evaluate"):  # the training and evaluation code
        out = run([str(python), "-m", module, "--help"], work, log)
        assert f"usage: python -m {module}" in out
    out = run([str(medmat), "tiny-model", "--out", "tiny"], work, log)  # names a recipe the wheel carries
    command = next(line for line in out.splitlines() if line.startswith("train it: "))
    recipe = Path(command.split("--config ", 1)[1].split()[0])
    assert command.startswith("train it: python -m medmat_builder.train --config ")
    assert recipe == installed["site"] / "medmat_builder/_data/training/recipes/tiny_cpu.yaml" and recipe.is_file()
    assert not (REPO / "medmat_builder" / "_data").exists()  # the build wrote nothing into the checkout
    print("\n\n".join(log))  # the commands and their output (pytest -s shows them)
