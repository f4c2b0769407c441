"""Errors a user can act on: every bad invocation of ``medmat`` ends with one ``error:`` line on stderr that
says what to do, exit status 2 for a usage error and 1 for a failure, and no traceback (``-v`` shows it).

Each invocation runs as its own process (``python -m medmat_builder.cli``), as a user would run it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medmat_builder.cli import errors
from medmat_builder.cli.main import main, make_parser
from medmat_builder.registry import RegistryError, load_registry
from medmat_builder.registry.loading import _UniqueKeyLoader, _construct_mapping

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "sources.yaml"


def medmat(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "medmat_builder.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=120)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line (asserting there is exactly one, on stderr, and no traceback)."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def bad_paths(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bad")
    (base / "a_file").write_text("not a folder\n")
    (base / "broken.yaml").write_text("version: 1\nsubsets: []\nsources:\n  - key: x\n   name: y\n")
    raw = base / "raw"
    (raw / "CT_Kidney").mkdir(parents=True)  # sources.yaml wants RAW/ct_kidney (subset_02)
    (raw / "CT_Kidney" / "x.png").write_bytes(b"")
    return {"base": base, "file": base / "a_file", "broken": base / "broken.yaml", "raw": raw}


# (argv, exit status, fragment of the error line); "{x}" is a path from ``bad_paths``
CASES = [
    (["build", "subset_99", "--demo"], 2,
     "unknown config 'subset_99': expected one of subset_01 .. subset_53; did you mean subset_49"),
    (["sources", "list", "--subset", "subset_99"], 2, "unknown config 'subset_99'"),
    (["sources", "show", "kermany"], 2, "unknown source 'kermany'; did you mean kermany_oct?"),
    (["fetch", "kermany_octt", "--data-dir", "{base}"], 2, "did you mean kermany_oct?"),
    (["fetch", "--subset", "subset_1000", "--data-dir", "{base}"], 2, "unknown config 'subset_1000'"),
    (["fetch", "kermany_oct", "--retries", "-1", "--data-dir", "{base}"], 2, "--retries -1: give 0 (one attempt)"),
    (["fetch", "kermany_oct"], 2, "give --data-dir RAW"),
    (["fetch", "kermany_oct", "--data-dir", "{file}"], 2, "is a file"),
    (["plan", "--target", "subset_99"], 2, "unknown config 'subset_99': the planner knows"),
    (["plan", "--target", "subset_28", "--mix", "pair", "--members", "subset_255"], 2, "subset_255"),
    (["audit", "{base}"], 2, "holds no config (no CONFIG/*.parquet)"),
    (["audit", "{base}/nowhere"], 2, "is not an export folder"),
    (["publish", "{base}/nowhere", "--repo-id", "org/name", "--dry-run"], 2, "{base}/nowhere does not exist"),
    (["publish", "{base}", "--repo-id", "org/name/x", "--dry-run"], 2, "--repo-id 'org/name/x': give ORG/NAME"),
    (["export-task", "subset_99", "--dataset", "{base}", "--out", "{base}/tasks"], 2, "did you mean subset_49"),
    (["build", "subset_01", "--data-dir", "{base}/nowhere", "--out", "{base}/out"], 2,
     "--data-dir {base}/nowhere does not exist"),
    (["build", "subset_01", "--data-dir", "{file}", "--out", "{base}/out"], 2, "is not a folder"),
    (["build", "subset_02", "--data-dir", "{raw}", "--out", "{file}"], 2, "is a file"),
    (["build", "subset_02", "--data-dir", "{raw}", "--out", "{base}/out"], 1,
     "raw folder {raw}/ct_kidney not found; did you mean {raw}/CT_Kidney?"),
    (["build", "subset_01", "--num-proc", "0", "--demo"], 2, "--num-proc 0"),
    (["sources", "check", "--registry", "{base}/missing.yaml"], 2, "registry file {base}/missing.yaml not found"),
    (["--registry", "{base}/missing.yaml", "sources", "list"], 2, "registry file {base}/missing.yaml not found"),
    (["sources", "--registry", "{base}", "check"], 2, "cannot be read"),
    (["build", "--demo", "--registry", "{broken}"], 1, "{broken}, line 5, column 4: not valid YAML"),
]


@pytest.mark.parametrize(("argv", "code", "fragment"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_invocation_is_one_line_with_what_to_do(argv, code, fragment, bad_paths, tmp_path):
    fill = {k: str(v) for k, v in bad_paths.items()}
    proc = medmat(*(a.format(**fill) for a in argv), cwd=tmp_path)
    line = error_line(proc)
    assert fragment.format(**fill) in line, line
    assert proc.returncode == code, (proc.returncode, line)


def test_unknown_command_and_option_are_argparse_usage_errors(tmp_path):
    for argv in (["biuld"], ["sources", "list", "--subsett", "x"]):
        proc = medmat(*argv, cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        last = proc.stderr.splitlines()[-1]  # argparse: the usage, then one error line
        assert last.startswith("medmat") and ": error: " in last and ("biuld" in last or "--subsett" in last), last


def test_invalid_registry_check_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = REGISTRY.read_text(encoding="utf-8")
    bad.write_text(text.replace("access: open", "access: opne", 2), encoding="utf-8")
    proc = medmat("sources", "check", "--registry", str(bad), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"error: {bad} is invalid (2 problems):" and len(lines) == 3, proc.stderr
    assert all("field 'access'" in line for line in lines[1:])
    other = medmat("build", "--demo", "--registry", str(bad), cwd=tmp_path)  # elsewhere: one line
    assert f"{bad} is invalid (2 problems): source " in error_line(other) and other.returncode == 1


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_global_options_go_before_or_after_the_command(where, tmp_path):
    missing = str(tmp_path / "nope.yaml")
    opts = ["--registry", missing, "-v"]
    argv = {"before": [*opts, "sources", "check"], "between": ["sources", *opts, "check"],
            "after": ["sources", "check", *opts]}[where]
    args = make_parser().parse_args(argv)
    assert args.registry == missing and args.verbose is True
    assert make_parser().parse_args(["sources", "check"]).registry is None  # one default
    for command in (["build"], ["fetch"], ["plan", "--target", "subset_28"], ["publish", "d", "--repo-id", "o/n"],
                    ["audit", "d"], ["export-task", "c", "--dataset", "d", "--out", "o"], ["sources", "list"]):
        for argv in ([*command, "--registry", missing], ["--registry", missing, *command]):
            assert make_parser().parse_args(argv).registry == missing, argv


def test_every_command_takes_the_global_options():
    """A command added later without ``parents=[common_options()]`` fails here (train/eval pass all on)."""
    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{path} {name}", sub
                    yield from walk(sub, f"{path} {name}")

    for path, sub in walk(make_parser(), "medmat"):
        if path in ("medmat train", "medmat eval"):
            continue
        options = {s for a in sub._actions for s in a.option_strings}
        assert {"--registry", "-v", "--verbose"} <= options, path


def test_unexpected_error_is_one_line_and_the_traceback_comes_with_v(monkeypatch, capsys):
    from medmat_builder.cli import sources

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(sources, "run", boom)
    assert main(["sources", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected ZeroDivisionError: division by zero (rerun with -v" in err
    assert "Traceback" not in err
    assert main(["sources", "list", "-v"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_exit_codes_of_known_errors():
    from medmat_builder.safe_paths import UnsafePathError

    assert errors.exit_code(UnsafePathError("--out x is a file")) == 2
    assert errors.exit_code(RegistryError("x is invalid")) == 1
    assert errors.exit_code(FileNotFoundError(2, "No such file or directory", "x.csv")) == 1
    assert errors.message(FileNotFoundError(2, "No such file or directory", "x.csv")) == "No such file or directory: x.csv"
    assert errors.exit_code(ValueError("bug")) is None
    with pytest.raises(KeyError):  # a lookup is still a KeyError for the code that catches one
        load_registry().subset("subset_99")


def test_retry_counter_reads_right(monkeypatch, tmp_path):
    from medmat_builder.fetch import FetchError, download

    module = sys.modules["medmat_builder.fetch.download"]

    def drop(url, part, *, timeout, log):
        raise module._Incomplete("connection dropped at 10 bytes")

    monkeypatch.setattr(module, "_download_once", drop)
    for retries, expected in ((0, ["(attempt 1 of 1)"]),
                              (2, ["(attempt 1 of 3); resuming", "(attempt 2 of 3); resuming", "(attempt 3 of 3)"])):
        log: list[str] = []
        with pytest.raises(FetchError, match=f"failed {retries + 1} time"):
            download("https://example.org/a.zip", tmp_path / "a.zip", sha256=None, source="s", retries=retries,
                     log=log.append)
        assert len(log) == len(expected) and all(m.endswith(e) for e, m in zip(expected, log)), log


def test_libyaml_loader_gives_the_same_registry_as_the_pure_python_one():
    assert yaml.__with_libyaml__, "PyYAML without libyaml: the registry loads with the slow pure-Python parser"
    assert _UniqueKeyLoader.__mro__[1] is yaml.CSafeLoader

    class PureUnique(yaml.SafeLoader):
        pass

    PureUnique.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    text = REGISTRY.read_text(encoding="utf-8")
    assert yaml.load(text, Loader=_UniqueKeyLoader) == yaml.load(text, Loader=PureUnique)  # noqa: S506
    for loader in (_UniqueKeyLoader, PureUnique):
        with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
            yaml.load("a: 1\na: 2\n", Loader=loader)  # noqa: S506


def test_help_imports_no_heavy_library():
    code = ("import contextlib, io, sys\nfrom medmat_builder.cli.main import make_parser\nmake_parser().format_help()\n"
            "for cmd in ('sources', 'build', 'fetch', 'plan', 'publish', 'audit', 'export-task', 'tiny-model'):\n"
            "    try:\n        with contextlib.redirect_stdout(io.StringIO()):\n"
            "            make_parser().parse_args([cmd, '--help'])\n    except SystemExit:\n        pass\n"
            "heavy = ('torch', 'datasets', 'pyarrow', 'PIL', 'numpy', 'pandas', 'matplotlib', 'transformers',"
            " 'huggingface_hub', 'medmat_builder.build', 'medmat_builder.registry')\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", proc.stdout  # nothing heavy was imported


def test_sources_list_imports_no_heavy_library():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys, io, contextlib\nfrom medmat_builder.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['sources', 'list'])\n"
            "print(','.join(m for m in ('torch', 'datasets', 'pyarrow', 'PIL', 'numpy', 'pandas') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_values_spelled_out_in_the_cli_agree_with_their_packages():
    import dataclasses

    from medmat_builder.cli import fetch as fetch_cmd
    from medmat_builder.cli import publish as publish_cmd
    from medmat_builder.fetch import ExtractLimits
    from medmat_builder.publish.hub import RESTRICTED_MODES

    assert publish_cmd.RESTRICTED_MODES == RESTRICTED_MODES
    assert vars(fetch_cmd.DEFAULT_LIMITS) == dataclasses.asdict(ExtractLimits())


def test_registry_cache_gives_the_same_registry_and_holds_only_data(monkeypatch, tmp_path):
    from medmat_builder.registry import cache

    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    text = REGISTRY.read_text(encoding="utf-8")
    path = cache.cache_path(text)
    assert path is not None and not path.exists()
    fresh = load_registry(REGISTRY, cache=True)  # parses the YAML, writes the cache
    assert path.is_file() and json_of(path) == yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    again = load_registry(REGISTRY, cache=True)  # from the cache, validated again
    assert again == fresh and again.model_dump() == fresh.model_dump()
    path.write_text("{not json")  # a damaged cache is ignored and rewritten
    assert load_registry(REGISTRY, cache=True) == fresh and json_of(path) == yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    # an edit is a new key: the old entry is never read for the new text
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("access: open", "access: opne", 1), encoding="utf-8")
    with pytest.raises(RegistryError, match="field 'access'"):
        load_registry(edited, cache=True)
    # data JSON cannot hold exactly (an integer key) is not cached
    assert cache.parsed("a: {1: x}\n", lambda t: yaml.safe_load(t)) == {"a": {1: "x"}}
    assert not cache.cache_path("a: {1: x}\n").exists()
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert cache.cache_path(text) is None and load_registry(REGISTRY, cache=True) == fresh
    monkeypatch.delenv(cache.NO_CACHE_ENV)
    path.unlink()
    load_registry(REGISTRY)  # without cache=True (every command but `medmat sources`): nothing written
    assert not path.exists()


def json_of(path: Path) -> object:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def test_sources_check_data_dir_names_a_folder_close_to_a_missing_one(bad_paths, tmp_path):
    raw = bad_paths["raw"]
    proc = medmat("sources", "check", "--data-dir", str(raw), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert f"raw data in {raw}: 0 of " in proc.stdout and " sources unpacked; missing: " in proc.stdout
    assert f"warning: raw folder {raw}/ct_kidney not found; did you mean {raw}/CT_Kidney? (ct_kidney)" in proc.stdout
    proc = medmat("sources", "check", "--data-dir", str(raw / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2 and error_line(proc) == f"error: --data-dir {raw / 'nowhere'} does not exist"


def test_loading_a_config_an_export_lacks_names_the_close_ones(tmp_path):
    """What ``medmat train`` / ``medmat eval`` (and training/sft.py, eval/evaluate.py) report for a wrong name."""
    from medmat_builder.loading import check_config

    for name in ("subset_01", "subset_02"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train-00000-of-00001.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match=r"config 'subset_2' not found in .*; did you mean subset_02, subset_01\? "
                                         r"\(it holds subset_01, subset_02\)"):
        check_config(tmp_path, "subset_2")
    check_config(tmp_path, "subset_01")  # there: nothing to say
    check_config(tmp_path / "subset_01", "x")  # not laid out as an export: left to datasets
