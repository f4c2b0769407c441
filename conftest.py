"""Execute the documentation: every ```bash and ```python block of README.md and docs/*.md is a test.

Collected by Sybil (its Markdown parsers). A block runs unless the line before it is a marker
``<!-- skip: next "KIND: reason" -->`` with KIND in network, gpu, long, data (tests/test_docs.py checks
the markers). Each page runs in its own temporary copy of the repository, block after block in order,
so a block may use what an earlier block of the same page wrote (``./medmat``, ``outputs/...``) and no
block writes into the checkout:

- bash blocks run with ``bash -eo pipefail`` from the copy's root; ``python`` is the interpreter running
  the tests, ``medmat`` runs ``python -m medmat_builder.cli``, and the interpreter's ``bin`` folder
  (``accelerate``, ...) comes next on ``PATH``;
- python blocks run as a script with that interpreter, from the copy's root;
- ``HOME``, ``TMPDIR`` and the Hugging Face caches are private to the page, and the Hub is offline.

All blocks of a page share one xdist group, so ``pytest -n 2 --dist loadgroup`` runs a page on one
worker, in order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import pytest

try:  # the `dev` extra installs Sybil; without it the documentation is simply not collected
    from sybil import Sybil
    from sybil.parsers.markdown import CodeBlockParser
except ImportError:  # pragma: no cover
    Sybil = None

ROOT = Path(__file__).resolve().parent
DOC_PATTERNS = ["README.md", "docs/*.md"]
BLOCK_TIMEOUT_S = 600
# Read from the line before each block, not through Sybil's stateful skip parser: a block's own marker
# decides, whichever worker runs it.
SKIP_MARKER = re.compile(r'^<!-- skip: next "(?P<reason>(?:network|gpu|long|data): [^"]+)" -->$')
_IGNORE_ANYWHERE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
# what the documented commands write at the root (and .gitignore lists): a page starts without them
_IGNORE_AT_ROOT = {".venv", ".tiny_models", "medmat", "medmat_demo_raw", "medmat_raw", "outputs", "runs",
                   "build", "dist", ".whl", "lmms_tasks"}


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    ignored = set(_IGNORE_ANYWHERE(folder, names))
    if Path(folder).resolve() == ROOT:
        ignored |= _IGNORE_AT_ROOT & set(names)
    return ignored


def _setup(namespace: dict) -> None:
    """Give the page a private copy of the repository, a private HOME/TMPDIR/caches and a PATH."""
    base = Path(tempfile.mkdtemp(prefix="medmat-docs-"))
    work = base / "repo"
    shutil.copytree(ROOT, work, ignore=_copy_ignore, symlinks=True)
    shims = base / "bin"
    shims.mkdir()
    # wrappers, not links: a linked venv interpreter outside its folder would not find its site-packages
    for name, command in (("python", ""), ("python3", ""), ("medmat", " -m medmat_builder.cli")):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ)
    for key in ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "VIRTUAL_ENV"):
        env.pop(key, None)
    for name in ("home", "tmp", "hf", "xdg_cache"):
        (base / name).mkdir()
    env.update(
        PATH=os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=str(work),
        HOME=str(base / "home"),
        TMPDIR=str(base / "tmp"),
        XDG_CACHE_HOME=str(base / "xdg_cache"),
        HF_HOME=str(base / "hf"),
        HF_DATASETS_CACHE=str(base / "hf" / "datasets"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
    )
    namespace["_docs_base"] = base
    namespace["_docs_work"] = work
    namespace["_docs_env"] = env


def _teardown(namespace: dict) -> None:
    base = namespace.get("_docs_base")
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def _run(example, argv: list[str], source: str) -> None:
    ns = example.namespace
    try:
        proc = subprocess.run(
            argv, input=source, cwd=ns["_docs_work"], env=ns["_docs_env"], capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{example.path}:{example.line}: block still running after {exc.timeout} s") from exc
    if proc.returncode != 0:
        tail = (proc.stdout[-4000:] + "\n" + proc.stderr[-6000:]).strip()
        raise AssertionError(
            f"{example.path}:{example.line}: block exited {proc.returncode}\n--- block ---\n{source}\n"
            f"--- output (tail) ---\n{tail}"
        )


def _skip_if_marked(example) -> None:
    before = [line for line in example.document.text[: example.start].splitlines() if line.strip()]
    m = SKIP_MARKER.match(before[-1].strip()) if before else None
    if m:
        raise unittest.SkipTest(m["reason"])


def evaluate_bash(example) -> None:
    _skip_if_marked(example)
    _run(example, ["bash", "-eo", "pipefail", "-s"], example.parsed)


def evaluate_python(example) -> None:
    _skip_if_marked(example)
    _run(example, [sys.executable, "-"], example.parsed)


if Sybil is not None:
    pytest_collect_file = Sybil(
        parsers=[
            CodeBlockParser(language="bash", evaluator=evaluate_bash),
            CodeBlockParser(language="python", evaluator=evaluate_python),
        ],
        patterns=DOC_PATTERNS,
        setup=_setup,
        teardown=_teardown,
    ).pytest()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the group into the node id
def pytest_collection_modifyitems(config, items) -> None:
    """One xdist group per documentation page, so its blocks run on one worker in page order."""
    for item in items:
        path = Path(str(getattr(item, "path", "")))
        if path.suffix == ".md":
            try:
                rel = path.resolve().relative_to(ROOT)
            except ValueError:
                continue
            item.add_marker(pytest.mark.xdist_group(f"docs:{rel}"))
    # The node id suffix that --dist loadgroup schedules by, for every item with an xdist_group mark (the
    # docs' and tests' own): xdist 3.8 writes it to item._nodeid, which pytest 9 no longer reads (node ids
    # live in item._id), so without this the groups are silently ignored.
    if getattr(config.option, "loadgroup", False):
        for item in items:
            names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                            for m in item.iter_markers("xdist_group")})
            if names and "@" not in item.nodeid:
                _set_nodeid(item, f"{item.nodeid}@{'_'.join(names)}")


def _set_nodeid(item, nodeid: str) -> None:
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:  # pytest < 9
        item._nodeid = nodeid
