"""How fast ``medmat`` starts: wall and CPU seconds of whole commands, each run as a new process.

Prints a markdown table (command, wall min / median of N runs, CPU median, target, met?) and, with
``--json FILE``, the same rows. Targets (issue 21): ``medmat --help`` <= 0.3 s, ``medmat sources list``
<= 0.6 s. Each command runs once before timing: bytecode is written (as an installed package has it), so a
run with ``PYTHONDONTWRITEBYTECODE`` set does not time compiling medmat's sources, and the registry caches
(``~/.cache/medmat/registry/``) are filled as a user's second run finds them; the row "(no cache)" times
``sources list`` with ``MEDMAT_NO_CACHE=1``, what a first run pays (before any cache is written). The
wall figure is the one the targets speak of; on a shared, loaded machine the CPU figure (user + sys of the
process) moves less.

    python bench/cli_startup_bench.py            # 7 runs of each command
    python bench/cli_startup_bench.py -n 3 --json startup.json
    git archive OLD medmat_builder sources.yaml setup.cfg | tar -x -C /tmp/old   # before/after in one run
    # (setup.cfg marks the tree as a checkout, whose sources.yaml is the default registry):
    python bench/cli_startup_bench.py --baseline /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: (arguments after ``python -m medmat_builder.cli``, target wall seconds or None, extra environment)
COMMANDS: list[tuple[list[str], float | None, dict[str, str]]] = [
    (["--help"], 0.3, {}),
    (["sources", "list"], 0.6, {}),
    (["sources", "list"], None, {"MEDMAT_NO_CACHE": "1"}),  # what a first run pays
    (["sources", "check"], None, {}),
    (["build", "--help"], None, {}),
    (["build", "subset_99"], None, {}),  # an unknown name: the error path
]


def run_once(argv: list[str], env: dict[str, str], src: Path = REPO) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one ``python -m medmat_builder.cli ARGV`` process run from ``src``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "medmat_builder.cli", *argv], cwd=src, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0  # reaped above
    return wall, usage.ru_utime + usage.ru_stime


def python_floor(env: dict[str, str], runs: int) -> list[float]:
    """Wall seconds of ``python -c pass``: what any command pays before medmat runs."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs of each command (default: 7)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="another source tree (medmat_builder/, sources.yaml, setup.cfg) timed the same way, runs interleaved")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    base_env = {**os.environ, "PYTHONPATH": str(args.baseline)} if args.baseline else None
    for tree, e in ((REPO, env), (args.baseline, base_env)):
        if tree is not None:  # write bytecode, fill the OS file cache and the registry caches
            warm = {k: v for k, v in e.items() if k != "PYTHONDONTWRITEBYTECODE"}
            for cmd, _, extra in COMMANDS:
                run_once(cmd, {**warm, **extra}, tree)
    rows = []
    floor = python_floor(env, args.runs)
    rows.append({"command": "python -c pass (floor)", "wall_min": min(floor), "wall_median": statistics.median(floor),
                 "cpu_median": None, "target": None, "met": None})
    for cmd, target, extra in COMMANDS:
        ours, theirs = [], []
        for _ in range(args.runs):  # interleaved, so that a drift of the machine's speed hits both alike
            ours.append(run_once(cmd, {**env, **extra}))
            if base_env is not None:
                theirs.append(run_once(cmd, {**base_env, **extra}, args.baseline))
        for label, runs, goal in (("baseline: ", theirs, None), ("", ours, target)):
            if not runs:
                continue
            walls, cpus = zip(*runs, strict=True)
            median = statistics.median(walls)
            note = "".join(f" ({'no cache' if k == 'MEDMAT_NO_CACHE' else f'{k}={v}'})" for k, v in extra.items())
            rows.append({"command": f"{label}medmat " + " ".join(cmd) + note,
                         "wall_min": min(walls), "wall_median": median,
                         "cpu_median": statistics.median(cpus), "target": goal,
                         "met": None if goal is None else median <= goal})
    print(f"{args.runs} runs each, {os.cpu_count()}-core machine, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| command | wall min s | wall median s | CPU median s | target s | met? |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        cpu = f"{r['cpu_median']:.3f}" if r["cpu_median"] is not None else "-"
        target = f"{r['target']:.1f}" if r["target"] is not None else "-"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "no")
        print(f"| {r['command']} | {r['wall_min']:.3f} | {r['wall_median']:.3f} | {cpu} | {target} | {met} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
