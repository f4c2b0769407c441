"""Worker processes under every ``multiprocessing`` start method: same export bytes, and they die with the build.

``fork`` is Linux's default up to Python 3.13, ``forkserver`` from 3.14, ``spawn`` is macOS's and Windows'
default. A worker started by a fork server is the server's child, not the build's, so it must watch the
build itself (``signals.worker_init``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_build import digest_tree
from tests.test_interrupt import wait_gone

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

BUILD_SCRIPT = """
import multiprocessing, sys
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1], force=True)
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.registry import load_registry
    build(None, sys.argv[2], sys.argv[3], BuildSettings(num_proc=2), registry=load_registry(sys.argv[4]))
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_build_with_workers_started_by_any_method_writes_the_same_bytes(tmp_path, method, mini_raw, mini_export):
    script = tmp_path / "build_with.py"
    script.write_text(BUILD_SCRIPT)
    out = tmp_path / "out"
    registry = REPO / "tests" / "fixtures" / "mini_registry.yaml"
    proc = subprocess.run([sys.executable, str(script), method, str(mini_raw), str(out), str(registry)], cwd=REPO,
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert digest_tree(out) == digest_tree(mini_export)  # the mini export was built with --num-proc 1


KILLED_SCRIPT = """
import multiprocessing, os, signal, sys
if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1], force=True)
    from medmat_builder.build import loader
    pool = loader.Loader(2).pool
    print(os.getpid(), flush=True)
    print(" ".join(str(pid) for pid in {pool.submit(os.getpid).result() for _ in range(8)}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_workers_started_by_any_method_die_with_a_killed_build(tmp_path, method):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), method], cwd=REPO, capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    build, line = proc.stdout.split("\n", 1)
    workers = [int(p) for p in line.split()]
    assert workers and int(build) not in workers
    assert wait_gone(workers) == [], f"workers {workers} outlived the build ({method})"


WATCH_SCRIPT = """
import os, sys
from medmat_builder.build import signals
pid = int(sys.argv[1])
handle = signals._open_pid(pid) if sys.argv[2] == "pidfd" else None
print("watching", flush=True)
signals._watch_pid(pid, handle, every=0.05)
"""


@pytest.mark.parametrize("way", ["pidfd", "poll"])
def test_a_watcher_exits_once_the_watched_process_has_ended(way):
    if way == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd on this system")
    watched = subprocess.Popen(["sleep", "60"])
    watcher = subprocess.Popen([sys.executable, "-c", WATCH_SCRIPT, str(watched.pid), way], cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline().strip() == "watching"
        assert watcher.poll() is None  # still running while the watched process lives
        watched.kill()
        watched.wait()  # reaped: gone for a poll as well as for a pidfd
        assert watcher.wait(timeout=60) == 1
    finally:
        for p in (watched, watcher):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_worker_of_a_build_that_is_already_gone_exits_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    proc = subprocess.run([sys.executable, "-c", "import sys; from medmat_builder.build import signals; "
                           "signals.worker_init(int(sys.argv[1])); print('still here')", str(gone.pid)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "still here" not in proc.stdout
