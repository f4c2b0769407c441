"""Builds stopped at known points by SIGTERM or SIGKILL: no debris, no orphan, the previous output loads.

Each killed build is a ``medmat build`` subprocess paused at a stage by the test hook
(``MEDMAT_PAUSE_AT``/``MEDMAT_PAUSE_FILE``, see :mod:`medmat_builder.build.signals`) with ``TMPDIR``
pointing into the test's folder, so the spool would be seen if it were left there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from medmat_builder.build import build
from medmat_builder.safe_paths import pid_alive
from medmat_builder.build.spool import Spool, sweep_stale_spools
from medmat_builder.build.swap import JOURNAL, card_without_sizes, recover_swap
from medmat_builder.images import UndecodableNameError, image_id
from medmat_builder.report import BuildReport
from medmat_builder.safe_paths import claim, exclusive_lock

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini_registry.yaml"
CONFIGS = ["subset_01", "subset_02"]


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


def wait_gone(pids: list[int], seconds: float = 30) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def rows(out: Path) -> dict[str, dict[str, int]]:
    """Rows per config and split, through load_dataset (which also checks them against the card)."""
    got = {}
    for name in CONFIGS:
        ds = datasets.load_dataset(str(out), name, cache_dir=str(out.parent / "hf-cache"))
        got[name] = {split: ds[split].num_rows for split in ("train", "test")}
    return got


@pytest.fixture(scope="module")
def previous(tmp_path_factory, mini_raw, mini_registry) -> tuple[Path, dict]:
    """An export of both configs (default seed), and its rows per config and split."""
    out = tmp_path_factory.mktemp("previous") / "out"
    build(CONFIGS, mini_raw, out, registry=mini_registry)
    return out, rows(out)


def start(out: Path, raw: Path, tmp: Path, stage: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    flag = tmp / f"paused-{stage}"
    env = {**os.environ, "TMPDIR": str(tmp), "MEDMAT_PAUSE_AT": stage, "MEDMAT_PAUSE_FILE": str(flag),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "medmat_builder.cli", "build", *CONFIGS, "--data-dir", str(raw), "--out", str(out),
           "--registry", str(MINI), *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not flag.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out_, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
            proc.kill()
            pytest.fail(f"the build never reached {stage} (rc {proc.returncode}): {out_}{err}")
        time.sleep(0.02)
    return proc, flag


@pytest.mark.parametrize(("stage", "sig", "group"), [
    ("scan", signal.SIGTERM, False),
    ("decode", signal.SIGTERM, False),
    ("decode", signal.SIGINT, True),  # Ctrl-C: the whole process group, workers included
    ("decode", signal.SIGKILL, False),
    ("write", signal.SIGINT, False),
    ("write", signal.SIGKILL, False),
    ("swap", signal.SIGTERM, False),
    ("swap", signal.SIGKILL, False),
])
def test_a_stopped_build_leaves_no_debris_and_the_export_loads(tmp_path, previous, mini_raw, mini_registry, stage, sig,
                                                               group, caplog):
    old_out, old_rows = previous
    out = tmp_path / "out"
    shutil.copytree(old_out, out)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # another seed: the rebuilt configs differ from the previous ones; --force: nothing is kept as unchanged
    proc, _ = start(out, mini_raw, tmp, stage, "--num-proc", "2", "--seed", "7", "--force")
    workers = children_of(proc.pid)
    if stage == "decode":
        assert workers, "the decoding workers should be running"
    if group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert wait_gone(workers) == [], "orphan workers outlived the build"
    assert not list(tmp.glob("medmat-spool-*")), "the spool was left in TMPDIR"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + sig, stdout + stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines == [f"build stopped by {signal.Signals(sig).name}: temporary files removed, workers stopped; "
                         f"every config in {out} loads, as before or as rebuilt (run the same command again to "
                         "finish)"], stderr
        assert not list((out / ".medmat").glob("staging-*"))  # cleaned up at once
    # no process keeps the lock: it can be taken right away
    with exclusive_lock(out / ".medmat", "busy"):
        pass
    # every config loads, whole: the previous one, or (after the swap began) the new one
    got = rows(out)
    if stage != "swap":
        assert got == old_rows
    else:
        assert got["subset_02"] == old_rows["subset_02"]  # not reached
    # the next build succeeds (and reports a lock left by a killed process)
    caplog.set_level(logging.WARNING)
    res = build(CONFIGS, mini_raw, out, registry=mini_registry)
    assert sorted(res.built + res.unchanged) == CONFIGS
    if stage == "swap":
        assert "subset_01" in res.built  # swapped to the stopped build's seed: its fingerprint was forgotten
    assert rows(out) == old_rows  # back to the default seed, whole
    assert not list((out / ".medmat").glob("staging-*")) and not list((out / ".medmat").glob("swap-*"))
    if sig == signal.SIGKILL:
        assert "left by process" in caplog.text and str(proc.pid) in caplog.text


WORKER_SCRIPT = """
import os, signal, sys
from medmat_builder.build import loader, signals
if sys.argv[1] == "watchdog":  # as on a system without prctl
    signals._set_parent_death_signal = lambda signum: False
pool = loader.Loader(2).pool
print(" ".join(str(pid) for pid in {pool.submit(os.getpid).result() for _ in range(8)}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("way", ["prctl", "watchdog"])
def test_workers_die_with_a_killed_parent(way):
    proc = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, way], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    workers = [int(p) for p in proc.stdout.split()]
    assert workers and os.getpid() not in workers
    assert wait_gone(workers) == [], f"workers {workers} outlived their parent ({way})"


def test_signals_wait_for_a_commit_step_to_finish():
    from medmat_builder.build.signals import BuildInterrupted, deferred, interruptible

    steps = []
    with pytest.raises(BuildInterrupted) as info, interruptible():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            steps.append("after the signal")  # the step is not cut in half
        steps.append("never")
    assert steps == ["after the signal"] and info.value.exit_code == 143


def test_spool_is_never_visible_and_stale_ones_are_removed(tmp_path, caplog):
    spool = Spool(str(tmp_path))
    assert os.listdir(tmp_path) == []  # unlinked at once, used by its descriptor
    off, n = spool.put(b"abc")
    off2, n2 = spool.put(b"defg")
    assert spool.get(off2, n2) == b"defg" and spool.get(off, n) == b"abc"
    spool.close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f"medmat-spool-{dead_pid}-x1y2z3.bin"
    stale.write_bytes(b"\0" * 10)
    live = tmp_path / f"medmat-spool-{os.getpid()}-abcdef.bin"
    live.write_bytes(b"\0")
    other = tmp_path / "medmat-spool-notapid.bin"
    other.write_bytes(b"\0")
    caplog.set_level(logging.WARNING)
    assert sweep_stale_spools(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    assert f"a spool left by process {dead_pid}, which is no longer running" in caplog.text


def test_a_lock_names_its_holder_and_a_dead_holder_is_reported(tmp_path, caplog):
    state = tmp_path / ".medmat"
    script = ("import sys, time; from medmat_builder.safe_paths import exclusive_lock\n"
              f"with exclusive_lock({str(state)!r}, 'busy'):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    from medmat_builder.safe_paths import FolderBusyError

    with pytest.raises(FolderBusyError, match=f"is held by process {proc.pid}"):
        with exclusive_lock(state, "busy"):
            pass
    proc.kill()
    proc.wait()
    caplog.set_level(logging.WARNING)
    with exclusive_lock(state, "busy"):
        assert (state / "lock").read_text() == str(os.getpid())
    assert f"left by process {proc.pid}, which is no longer running" in caplog.text
    assert (state / "lock").read_text() == ""  # released: no holder named


def test_a_swap_killed_between_its_renames_is_put_back(tmp_path):
    owned = claim(tmp_path / "out", "export")
    with owned.lock():
        parked = owned.state / "swap-new-subset_01"
        parked.mkdir()
        (parked / "train-00000-of-00001.parquet").write_bytes(b"new")
        (owned.state / JOURNAL).write_text(json.dumps({"name": "subset_01", "new": parked.name,
                                                       "old": "swap-old-subset_01"}))
        done = recover_swap(owned)
    assert "put its new folder back" in done
    assert (owned.path / "subset_01" / "train-00000-of-00001.parquet").read_bytes() == b"new"
    assert not (owned.state / JOURNAL).exists() and not parked.exists()


def test_builds_commit_without_the_atomic_exchange_too(tmp_path, mini_raw, mini_registry, monkeypatch, previous):
    from medmat_builder.build import swap

    monkeypatch.setattr(swap, "exchange", lambda a, b: False)  # a file system without RENAME_EXCHANGE
    out = tmp_path / "out"
    shutil.copytree(previous[0], out)
    res = build(CONFIGS, mini_raw, out, registry=mini_registry, force=True)
    assert res.built == CONFIGS and rows(out) == previous[1]
    assert not list((out / ".medmat").glob("swap-*"))


def test_card_without_sizes_drops_only_the_named_configs(previous):
    card = (previous[0] / "README.md").read_text(encoding="utf-8")
    relaxed = card_without_sizes(card, ["subset_01"])
    assert relaxed is not None and "config_name: subset_02" in relaxed
    assert relaxed.count("num_examples") == card.count("num_examples") - 2
    assert relaxed.split("\n---\n", 1)[1] == card[4:].split("\n---\n", 1)[1]  # the body is kept


def test_a_file_name_that_is_not_utf8_is_dropped_not_fatal(tmp_path, mini_raw_copy, mini_registry):
    folder = mini_raw_copy / "toy_folders" / "train" / "NORMAL"
    src = next(folder.iterdir())
    bad = os.fsencode(folder) + b"/bad-\xff\xfe-name.jpeg"
    shutil.copy(src, bad)
    name = os.fsdecode(b"bad-\xff\xfe-name.jpeg")
    with pytest.raises(UndecodableNameError, match=r"bad-\\xff\\xfe-name.jpeg: file name is not valid UTF-8"):
        image_id("toy_folders", f"train/NORMAL/{name}")
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    led = res.report.configs["subset_01"].sources["toy_folders"]
    assert led.dropped["undecodable_name"] == 1 and led.accounted == led.raw
    assert led.examples["undecodable_name"][0][0] == "train/NORMAL/bad-\\xff\\xfe-name.jpeg"
    written = BuildReport.read(tmp_path / "out" / "build_report.json")
    assert written.configs["subset_01"].sources["toy_folders"].dropped["undecodable_name"] == 1
    assert datasets.load_dataset(str(tmp_path / "out"), "subset_01")["train"].num_rows > 0
