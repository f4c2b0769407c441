"""Reruns keep what is unchanged (complete output, same inputs), and what a build shows: progress and tables."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import datasets
import pytest

from medmat_builder.build import build, config_tables
from medmat_builder.build.resume import FILE, Fingerprints
from medmat_builder.cli.main import main
from medmat_builder.registry import load_registry
from medmat_builder.report import BuildReport

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = ["subset_01", "subset_02"]


def shard_ids(out: Path) -> dict[str, tuple[int, int]]:
    """Inode and modification time of every shard: unchanged when a config is kept as it is."""
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("subset_*/*"))}


@pytest.fixture()
def first(tmp_path, mini_raw_copy, mini_registry):
    out = tmp_path / "out"
    res = build(CONFIGS, mini_raw_copy, out, registry=mini_registry)
    assert res.built == CONFIGS and res.unchanged == []
    return mini_raw_copy, out


def test_rerun_keeps_unchanged_configs_and_force_rebuilds(first, mini_registry):
    raw, out = first
    before = shard_ids(out)
    card = (out / "README.md").read_bytes()
    # croissant.json: kept files hashed as they are linked, rebuilt ones as they are written; the
    # visual report: raw paths found by scanning for kept configs, noted by the build for rebuilt ones
    described = {rel: (out / rel).read_bytes() for rel in ("croissant.json", "report/subset_01.html",
                                                           "report/subset_02.html", "report/raw_paths.json")}
    res = build(CONFIGS, raw, out, registry=mini_registry)
    assert res.built == [] and res.unchanged == CONFIGS
    assert shard_ids(out) == before  # not rewritten
    assert (out / "README.md").read_bytes() == card
    assert {rel: (out / rel).read_bytes() for rel in described} == described
    assert sorted(res.report.configs) == CONFIGS
    assert sorted(Fingerprints(out / ".medmat").configs) == CONFIGS
    res = build(CONFIGS, raw, out, registry=mini_registry, force=True)
    assert res.built == CONFIGS and res.unchanged == []
    assert shard_ids(out) != before
    assert (out / "README.md").read_bytes() == card  # same inputs, same bytes
    assert {rel: (out / rel).read_bytes() for rel in described} == described


def test_a_changed_raw_file_rebuilds_only_its_config(first, mini_registry):
    raw, out = first
    before = shard_ids(out)
    img = next((raw / "toy_onehot" / "train").iterdir())
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # only its time changes
    res = build(CONFIGS, raw, out, registry=mini_registry)
    assert res.built == ["subset_02"] and res.unchanged == ["subset_01"]
    after = shard_ids(out)
    assert {k: v for k, v in after.items() if k.startswith("subset_01")} == \
        {k: v for k, v in before.items() if k.startswith("subset_01")}
    assert datasets.load_dataset(str(out), "subset_02")["test"].num_rows > 0
    meta = json.loads((out / "croissant.json").read_text(encoding="utf-8"))  # kept and rebuilt files alike
    sums = {d["@id"]: d["sha256"] for d in meta["distribution"] if d["@type"] == "cr:FileObject"}
    assert {rel for rel in sums if rel.endswith(".parquet")} == set(after)
    assert all(hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha for rel, sha in sums.items())


def test_a_changed_registry_entry_rebuilds_only_its_config(first, tmp_path):
    raw, out = first
    text = (FIXTURES / "mini_registry.yaml").read_text(encoding="utf-8")
    assert text.count("Classify this lung X-ray.") == 1  # an instruction of subset_01
    changed = tmp_path / "registry.yaml"
    changed.write_text(text.replace("Classify this lung X-ray.", "Classify this X-ray of the lungs."), encoding="utf-8")
    res = build(CONFIGS, raw, out, registry=load_registry(changed))
    assert res.built == ["subset_01"] and res.unchanged == ["subset_02"]


def test_incomplete_output_is_rebuilt(first, mini_registry):
    raw, out = first
    shard = next((out / "subset_01").glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    res = build(CONFIGS, raw, out, registry=mini_registry)
    assert res.built == ["subset_01"] and res.unchanged == ["subset_02"]
    assert datasets.load_dataset(str(out), "subset_01")["train"].num_rows == res.report.configs["subset_01"].num_examples.train


def test_fingerprints_are_written_only_after_the_commit(first, mini_registry, monkeypatch):
    raw, out = first
    (raw / "toy_onehot" / "train.xlsx").touch()
    from medmat_builder.build import export

    def fail(*args, **kwargs):
        raise RuntimeError("stopped before the swap")

    monkeypatch.setattr(export, "swap_configs", fail)
    with pytest.raises(RuntimeError):
        build(CONFIGS, raw, out, registry=mini_registry)
    assert "subset_02" not in Fingerprints(out / ".medmat").configs  # forgotten: rebuilt next time
    assert (out / ".medmat" / FILE).is_file()
    monkeypatch.undo()
    res = build(CONFIGS, raw, out, registry=mini_registry)
    assert res.built == ["subset_02"]


def test_cli_says_which_configs_were_kept(first, capsys, mini_registry):
    raw, out = first
    args = ["build", *CONFIGS, "--data-dir", str(raw), "--out", str(out), "--registry",
            str(FIXTURES / "mini_registry.yaml")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for name in CONFIGS:
        assert f"{name}  unchanged: complete output, same inputs; kept (--force rebuilds)" in printed
    assert "(0 configs built)" in printed
    assert main([*args, "--force"]) == 0
    assert "(2 configs built)" in capsys.readouterr().out


# --------------------------------------------------------------------------- progress and closing tables
def test_closing_table_gives_kept_per_split_and_dropped_per_reason(mini_export):
    report = BuildReport.read(mini_export / "build_report.json")
    rep = report.configs["subset_01"]
    lines = config_tables(report, ["subset_01"])
    kept, drops = rep.num_examples, rep.dropped()
    assert lines[0] == f"subset_01  kept: train {kept.train}, test {kept.test}  dropped: {sum(drops.values())}"
    assert lines[1].split() == ["source", "raw", "train", "test", "dropped"]
    rows = {line.split()[0]: line.split(None, 4) for line in lines[2:]}
    assert set(rows) == {*rep.sources, "total"}
    for key, led in rep.sources.items():
        _, raw, train, test, dropped = rows[key]
        assert (int(raw), int(train), int(test)) == (led.raw, led.kept.train, led.kept.test)
        assert dropped == (", ".join(f"{r}={n}" for r, n in sorted(led.dropped.items())) or "-")
        assert int(raw) == int(train) + int(test) + sum(led.dropped.values())  # each row adds up
    _, raw, train, test, dropped = rows["total"]
    assert (int(train), int(test)) == (kept.train, kept.test)
    assert dropped == ", ".join(f"{r}={n}" for r, n in sorted(drops.items()))
    both = config_tables(report, ["subset_01", "subset_02"])
    assert both[len(lines)] == "" and both[len(lines) + 1].startswith("subset_02  kept: train ")


def test_cli_prints_the_tables_and_no_bars_when_stderr_is_not_a_terminal(tmp_path, mini_raw, capsys):
    args = ["build", "subset_02", "--data-dir", str(mini_raw), "--out", str(tmp_path / "out"),
            "--registry", str(FIXTURES / "mini_registry.yaml")]
    assert main(args) == 0
    cap = capsys.readouterr()
    report = BuildReport.read(tmp_path / "out" / "build_report.json")
    for line in config_tables(report, ["subset_02"]):
        assert line in cap.out.splitlines()
    assert "\r" not in cap.err and "record/s" not in cap.err and "image/s" not in cap.err
    assert cap.err == ""
    shutil.rmtree(tmp_path / "out")
    assert main([*args, "--progress", "on"]) == 0  # forced on: one counter per stage, with its rate
    err = capsys.readouterr().err
    for stage, unit in (("scan", "record"), ("decode", "image"), ("write", "row")):
        assert f"subset_02 {stage}" in err and f"{unit}/s" in err


def test_progress_is_shown_by_default_on_a_terminal(tmp_path, mini_raw):
    """``--progress auto``: counters per stage when standard error is a terminal (a pseudo-terminal here)."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal has a size
    cmd = [sys.executable, "-m", "medmat_builder.cli", "build", "subset_02", "--data-dir", str(mini_raw),
           "--out", str(tmp_path / "out"), "--registry", str(FIXTURES / "mini_registry.yaml")]
    env = {**os.environ, "PYTHONPATH": str(FIXTURES.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, cwd=FIXTURES.parents[1], env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    assert proc.wait() == 0
    text = shown.decode(errors="replace")
    for stage, unit in (("scan", "record"), ("decode", "image"), ("write", "row")):
        assert f"subset_02 {stage}" in text and f"{unit}/s" in text, text
    assert "subset_02  kept: train" in out and "\r" not in out  # the tables go to stdout, without bars


def test_listings_taken_aside_are_those_taken_here(mini_raw, tmp_path):
    """The folder listings a build takes in a process of its own (with workers) are those it would take itself,
    in whatever order they are read, and a folder missing or added later is listed here."""
    from medmat_builder.build.resume import ListingsAside, folder_listing

    folders = sorted(p for p in mini_raw.iterdir() if p.is_dir())
    gone = tmp_path / "no_such_folder"
    aside = ListingsAside([*folders, gone, folders[0]])
    for folder in [*reversed(folders), gone]:
        assert folder in aside
        assert aside[folder] == folder_listing(folder)
    assert tmp_path not in aside
    assert aside[tmp_path] == folder_listing(tmp_path)


def test_inputs_fingerprints_do_not_depend_on_the_processes(tmp_path, mini_raw, mini_registry):
    """With one process the listings are taken before any work, with two in a process of their own meanwhile:
    the stored fingerprints are the same, and a rerun with the other count keeps every config."""
    from medmat_builder.build import BuildSettings

    stored = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        build(CONFIGS, mini_raw, out, BuildSettings(num_proc=n), registry=mini_registry)
        stored[n] = Fingerprints(out / ".medmat").configs
    assert stored[1] == stored[2] and sorted(stored[1]) == CONFIGS
    res = build(CONFIGS, mini_raw, tmp_path / "out1", BuildSettings(num_proc=2), registry=mini_registry)
    assert res.unchanged == CONFIGS
