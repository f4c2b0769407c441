"""How ``medmat`` starts fast without changing what it does: :func:`~medmat_builder.cli.main.main` builds only the
parser of the command given, and ``medmat sources list`` prints from :mod:`~medmat_builder.registry.listing`,
which is used only while everything that validated the registry is unchanged."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medmat_builder.cli.main import SUBCOMMANDS, command_of, main, make_parser
from medmat_builder.registry import cache, listing, load_registry

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "sources.yaml"

ARGVS = [
    [], ["-h"], ["--help"], ["-v"], ["bogus"], ["--bogus", "sources", "list"], ["sources"], ["sources", "-h"],
    ["sources", "list", "-h"], ["sources", "list"], ["-v", "sources", "list", "--subset", "subset_28"],
    ["--registry", "x.yaml", "sources", "check", "--data-dir", "r"], ["sources", "--registry", "x", "list"],
    ["--registry"], ["--reg", "y", "plan", "--target", "subset_28"], ["build", "--help"], ["build", "subset_99"],
    ["build", "--demo", "-v", "--num-proc", "2"], ["fetch", "--bogus"], ["train", "--help"], ["eval", "--x", "1"],
    ["tiny-model", "--help"], ["export-task", "-h"], ["report", "-h"], ["fill", "-h"], ["audit", "d"],
    ["publish", "-h"], ["plan", "-h"],
]


def _parse(factory, argv: list[str]) -> tuple:
    """What parsing ``argv`` gives: the namespace (``func`` by name) or the exit status, and what was printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = vars(factory(argv).parse_args(argv))
            func = args.pop("func", None)
            result = (args, func and f"{func.__module__}.{func.__name__}")
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_the_parser_of_one_command_reads_argv_as_the_full_parser(argv):
    full = _parse(lambda _: make_parser(), argv)
    assert _parse(lambda a: make_parser(only=command_of(a)), argv) == full


def test_every_command_is_named_with_the_help_its_module_gives():
    full = make_parser()
    stubs = make_parser(full=False)
    helps = [[(a.dest, a.help) for a in p._subparsers._group_actions[0]._choices_actions] for p in (full, stubs)]
    assert helps[0] == helps[1] == [(name, text) for name, (_, text) in SUBCOMMANDS.items()]
    assert full.format_help() == stubs.format_help()


def test_a_command_imports_no_other_command(tmp_path):
    code = ("import sys, io, contextlib\nfrom medmat_builder.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['sources', 'list'])\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('medmat_builder.cli.'))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), cache.CACHE_DIR_ENV: str(tmp_path)}
    env.pop(cache.NO_CACHE_ENV, None)
    for _ in range(2):  # the first run loads the registry in full and leaves the list; the second prints from it
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["medmat_builder.cli.errors", "medmat_builder.cli.main",
                                       "medmat_builder.cli.sources"]
    code = code.replace("cli.')", "') or m in ('pydantic', 'yaml')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "pydantic" not in proc.stdout.split() and "yaml" not in proc.stdout.split()
    assert "medmat_builder.registry.listing" in proc.stdout.split(), proc.stdout


@pytest.fixture
def cache_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    return tmp_path / "cache"


def _listed(argv: list[str], capsys) -> str:
    assert main(["sources", "list", *argv]) == 0
    return capsys.readouterr().out


def test_sources_list_prints_the_same_from_the_cache(cache_dir, capsys, monkeypatch):
    text = REGISTRY.read_text(encoding="utf-8")
    entry = listing.entry_path(text)
    assert entry is not None and not entry.exists()
    reg = load_registry(REGISTRY)  # without cache=True: nothing is written
    assert not entry.exists() and listing.rows(REGISTRY) is None
    expected = {a: _listed(a.split(), capsys) for a in ("", "--subset subset_28", "--subset 28", "--subset subset_05")}
    assert entry.is_file()  # written by the full load of the first run
    assert listing.rows(REGISTRY) == [listing.Row(s.number, s.key, s.access, s.redistributable, s.license, s.subsets)
                                      for s in sorted(reg.sources, key=lambda s: s.number)]
    assert [r.key for r in listing.rows(REGISTRY, "subset_28")] == [s.key for s in reg.sources_of("subset_28")]
    assert listing.rows(REGISTRY, "28") is None and listing.rows(REGISTRY, "subset_99") is None  # the full load answers

    def no_full_load(*args, **kwargs):
        raise AssertionError("the registry was loaded in full")

    monkeypatch.setattr("medmat_builder.registry.load_registry", no_full_load)
    for argv in ("", "--subset subset_28", "--subset subset_05"):
        assert _listed(argv.split(), capsys) == expected[argv]
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")  # the cache off: the list loads the registry in full
    assert main(["sources", "list"]) == 1 and "the registry was loaded in full" in capsys.readouterr().err


def test_an_edited_or_invalid_registry_is_never_listed_from_an_old_entry(cache_dir, capsys, tmp_path):
    text = REGISTRY.read_text(encoding="utf-8")
    load_registry(REGISTRY, cache=True)
    assert listing.rows(REGISTRY) is not None
    edited = tmp_path / "sources.yaml"
    edited.write_text(text.replace("access: open", "access: registration", 1), encoding="utf-8")
    assert listing.rows(edited) is None  # another text, another entry
    assert main(["sources", "list", "--registry", str(edited)]) == 0
    assert sorted(r.access for r in listing.rows(edited)) != sorted(r.access for r in listing.rows(REGISTRY))
    capsys.readouterr()
    edited.write_text(text.replace("access: open", "access: opne", 1), encoding="utf-8")
    assert main(["sources", "list", "--registry", str(edited)]) == 1  # invalid: the full load reports it
    assert "field 'access'" in capsys.readouterr().err
    assert listing.rows(edited) is None and not listing.entry_path(edited.read_text(encoding="utf-8")).exists()
    edited.write_bytes(b"\xff\xfe not utf-8")
    assert listing.rows(edited) is None


def test_an_entry_is_used_only_with_the_code_and_libraries_that_wrote_it(cache_dir, monkeypatch, tmp_path):
    load_registry(REGISTRY, cache=True)
    entry = listing.entry_path(REGISTRY.read_text(encoding="utf-8"))
    files = json.loads(entry.read_text(encoding="utf-8"))["code_files"]
    assert {"registry/schema.py", "registry/checks.py", "layouts/base.py"} <= set(files)
    copy = tmp_path / "package"  # the same code elsewhere: an entry of identical code is valid
    for name in files:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(listing._package_dir() / name, copy / name)
    monkeypatch.setattr(listing, "_package_dir", lambda: copy)
    assert listing.rows(REGISTRY) is not None
    with (copy / "registry" / "schema.py").open("a", encoding="utf-8") as f:
        f.write("\n# an edit that may change what validates\n")
    assert listing.rows(REGISTRY) is None
    (copy / "registry" / "schema.py").unlink()
    assert listing.rows(REGISTRY) is None
    monkeypatch.undo()
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(cache_dir))
    assert listing.rows(REGISTRY) is not None
    monkeypatch.setattr(listing, "LIBRARIES", (*listing.LIBRARIES, "json"))  # another library (or installation)
    assert listing.rows(REGISTRY) is None
    monkeypatch.setattr(listing, "LIBRARIES", ("no_such_library_medmat",))
    assert listing.rows(REGISTRY) is None
    monkeypatch.undo()
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(cache_dir))
    monkeypatch.setattr(listing.sys, "version", sys.version + " (another build)")
    assert listing.rows(REGISTRY) is None


def test_a_damaged_or_foreign_entry_is_a_miss_and_is_rewritten(cache_dir, capsys):
    load_registry(REGISTRY, cache=True)
    entry = listing.entry_path(REGISTRY.read_text(encoding="utf-8"))
    good = json.loads(entry.read_text(encoding="utf-8"))
    for damaged in ("{not json", json.dumps(good)[:-40], "[]", json.dumps({**good, "format": 0}),
                    json.dumps({**good, "registry_sha256": "0" * 64}), json.dumps({**good, "code_files": []}),
                    json.dumps({**good, "code_files": ["../sources.yaml", *good["code_files"]]}),
                    json.dumps({**good, "code_sha256": "0" * 64}), json.dumps({**good, "sources": [[1, "x"]]})):
        entry.write_text(damaged, encoding="utf-8")
        assert listing.rows(REGISTRY) is None, damaged
        assert main(["sources", "list"]) == 0 and capsys.readouterr().out.count("\n") == len(good["sources"]) + 1
        assert json.loads(entry.read_text(encoding="utf-8")) == good  # rewritten by the full load
    assert [p.name for p in cache_dir.iterdir() if p.name.startswith(".tmp-")] == []
