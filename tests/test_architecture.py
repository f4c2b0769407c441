"""The shape of the package: a one-way flow without import cycles, public library APIs only, small modules.

The import graph is read from the source (``ast``), every import counted: module level, inside
functions and under ``TYPE_CHECKING``, and importing ``a.b.c`` counts as importing the packages
``a.b`` and ``a`` too (Python runs their ``__init__`` first).
"""

from __future__ import annotations

import ast
import importlib
import re
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medmat_builder"
ROOT = "medmat_builder"

#: The flow, bottom to top: a module may import modules of its own package, or of packages of a lower
#: rank (never sideways, never up).
RANKS: dict[str, int] = {
    "records": 0, "safe_paths": 0, "loading": 0, "tiny_models": 0, "scripts": 0, "resources": 0, "lazy": 0,
    "images": 1,
    "layouts": 2, "report": 2,
    "registry": 3,
    "fetch": 4, "planner": 4, "publish": 4,
    "build": 5, "demo": 5,
    "train": 6, "api": 6,
    "evaluate": 7,
    "cli": 8,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports (their parent packages included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    out: set[str] = set()
    for target in targets:
        if target != ROOT and not target.startswith(ROOT + "."):
            continue
        parts = target.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    out = {t for t in out if t in known and t != name}
    # a module's own parent packages are run before it: not an import of the module's making
    return {t for t in out if not name.startswith(t + ".")}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def top_package(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_counts_late_imports_and_parent_packages(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from medmat_builder.build.vqa import LETTERS\n")
    found = imported("medmat_builder.x", module, {"medmat_builder.build", "medmat_builder.build.vqa"})
    assert found == {"medmat_builder.build", "medmat_builder.build.vqa"}


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_imports_follow_the_flow():
    """Within a package anything goes (without cycles); across packages only downwards."""
    graph = import_graph()
    unranked = sorted({top_package(m) for m in graph} - set(RANKS) - {""})
    assert not unranked, f"give the new top-level modules or packages {unranked} a rank in RANKS"
    wrong = [f"{src} -> {dst}" for src, dsts in graph.items() for dst in dsts
             if top_package(src) and top_package(dst) and top_package(src) != top_package(dst)
             and RANKS[top_package(src)] <= RANKS[top_package(dst)]]
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_the_ground_floor_imports_nothing_of_ours():
    graph = import_graph()
    assert graph[f"{ROOT}.records"] == set()
    assert all(not dsts for name, dsts in graph.items() if RANKS.get(top_package(name)) == 0
               and top_package(name) not in ("safe_paths",)), "records, loading, scripts and tiny_models stand alone"


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (one job each): {long}"


# --------------------------------------------------------------------------- public library APIs only
FORBIDDEN_MODULES = ("re._parser", "re._constants", "re._compiler", "sre_parse", "sre_constants", "sre_compile")


def _attribute_chain(node: ast.AST) -> list[str]:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
        return names[::-1]
    return []


def private_uses(path: Path) -> list[str]:
    """Uses of what ``datasets``, ``huggingface_hub`` or ``re`` keep private, in one source file."""
    import datasets
    import huggingface_hub

    public = {"datasets": datasets, "huggingface_hub": huggingface_hub}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, None] = {}  # ordered, once each (a chain a.b.c is also visited as a.b)
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if node.module.startswith(FORBIDDEN_MODULES) or node.module in ("re",) and any(
                    a.name.startswith("_") for a in node.names):
                found.setdefault(f"{where}: from {node.module} import ...")
            elif root == "datasets" and node.module != "datasets":
                found.setdefault(f"{where}: from {node.module} (an internal module of datasets)")
            elif root in public and any(a.name.startswith("_") for a in node.names):
                found.setdefault(f"{where}: a private name of {root}")
            elif root == "huggingface_hub" and any(p.startswith("_") for p in node.module.split(".")):
                found.setdefault(f"{where}: from {node.module} (a private module of huggingface_hub)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(FORBIDDEN_MODULES) or alias.name.startswith("datasets."):
                    found.setdefault(f"{where}: import {alias.name}")
        elif isinstance(node, ast.Attribute):
            chain = _attribute_chain(node)
            if len(chain) >= 2 and chain[0] in public:
                value = getattr(public[chain[0]], chain[1], None)
                if chain[1].startswith("_") or isinstance(value, types.ModuleType):
                    found.setdefault(f"{where}: {'.'.join(chain[:2])} (not in {chain[0]}'s top-level API)")
            if len(chain) >= 2 and chain[0] == "re" and chain[1].startswith("_"):
                found.setdefault(f"{where}: re.{chain[1]}")
            if node.attr.startswith(("_to_yaml", "_from_yaml")):
                found.setdefault(f"{where}: .{node.attr} (a private method of datasets)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("glob", "rglob"):
            pattern = "".join(v.value for a in node.args[:1] for v in ([a] if isinstance(a, ast.Constant) else getattr(a, "values", []))
                              if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if re.search(r"medmat-|-\*\.arrow|\.arrow$", pattern):
                found.setdefault(f"{where}: globs {pattern!r}, a name datasets gives its own shards")
    return list(found)


def test_the_private_api_check_catches_what_the_old_code_did(tmp_path):
    old = tmp_path / "old.py"
    old.write_text(
        "from re import _parser\n"
        "from re import _constants as c\n"
        "import datasets\n"
        "from datasets.naming import filenames_for_dataset_split\n"
        "def f(features, prep, split):\n"
        "    datasets.utils.logging.is_progress_bar_enabled()\n"
        "    prep.glob(f'medmat-{split}*.parquet')\n"
        "    return features._to_yaml_list()\n"
    )
    found = private_uses(old)
    assert len(found) == 6, found
    clean = tmp_path / "clean.py"
    clean.write_text("import datasets\nfrom huggingface_hub import DatasetCard\n"
                     "def f(ds, out):\n    datasets.disable_progress_bars()\n    out.glob('train-*.parquet')\n")
    assert private_uses(clean) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_public_apis_of_datasets_huggingface_hub_and_re(path):
    assert private_uses(path) == []


def test_every_module_imports():
    """Every module imports (so no import is left behind by a move, even a late one)."""
    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)
