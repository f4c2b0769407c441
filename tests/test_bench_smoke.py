"""Smoke tests of the benches: a --quick run produces every row of the table (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_bench_prints_the_full_table(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "build_bench.py"), "--quick", "--data-dir", str(tmp_path / "cache"),
         "--json", str(out), "--num-proc", "2", "--repeat", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    # --repeat 3: the builds and the decode floor ran three times, interleaved, each reported by its median run
    assert proc.stderr.count("medmat build --num-proc 1 (cold cache) (run ") == 3
    assert "decode floor (cold cache) (run 3 of 3)" in proc.stderr
    by_name = {r["measure"]: r for r in rows}
    runs = dict(part.split(": ") for part in
                by_name["runs, interleaved (seconds of wall each; the median run is reported)"]["value"].split("; "))
    assert set(runs) == {"medmat --num-proc 1", "medmat --num-proc 2", "decode floor"}
    for name, row in (("medmat --num-proc 1", "medmat --num-proc 1: wall s (CPU s; load average at end)"),
                      ("decode floor", "decode floor: wall s (CPU s) (read + decode kept files once, 1 process)")):
        walls = sorted(float(w) for w in runs[name].split(" / "))
        assert len(walls) == 3 and float(by_name[row]["value"].split()[0]) == walls[1]
    measures = [r["measure"] for r in rows]
    for expected in (
        "raw images (MB)",
        "kept images (MB)",
        "page cache before each contender (--cache)",
        "tree listing before any contender (rglob + stat): wall s; MB read (cold metadata)",
        "prime build (first read, not compared), --num-proc 2: wall s (CPU s; MB read)",
        "prime build: main thread wall s = on CPU + queued for a core + blocked (disk, threads, workers)",
        "floor: wall s (read kept files once)",
        "floor: MB read from disk (cold: about the kept MB; warm: about 0)",
        "medmat --num-proc 1: wall - CPU/processes s; MB read from disk",
        "decode floor: wall s (CPU s) (read + decode kept files once, 1 process)",
        "medmat --num-proc 1: wall s (CPU s; load average at end)",
        "medmat --num-proc 2: wall s (CPU s; load average at end)",
        "medmat: MB read / kept MB",
        "medmat: peak PSS MB (process tree; prime build, --num-proc 2)",
        "ratio medmat/floor wall",
        "ratio medmat/decode floor wall (--num-proc 1)",
        "ratio medmat/decode floor wall (--num-proc 2)",
        "ratio medmat/decode floor CPU (--num-proc 2)",
        "speed-up --num-proc 2 vs 1 (one config)",
        "export byte-identical --num-proc 1 vs 2",
        "ImageFolder-then-select: wall s (CPU s)",
        "ratio ImageFolder-then-select/medmat wall",
        "ImageFolder+decode: wall s (CPU s)",
    ):
        assert expected in measures, (expected, measures)
    assert any(m.startswith("demo build (3 configs)") for m in measures)
    # Memory is sampled in the untimed prime and demo builds only (sampling slows a timed contender)
    pss = [r for r in rows if "peak PSS" in r["measure"]]
    assert {r["measure"].split(":")[0] for r in pss} == {"medmat", "demo build (3 configs)"}
    assert all(float(r["value"]) > 0 for r in pss), pss
    same = next(r for r in rows if r["measure"] == "export byte-identical --num-proc 1 vs 2")
    assert same["value"] == "yes" and same["met"] == "yes"
    for r in rows:  # a target not met says why; a met one says nothing
        assert r["met"] in ("", "yes", "NO") and bool(r["why"]) == (r["met"] == "NO"), r
    # The printed table is the same table, under a header that names the page-cache policy (cold by default).
    assert "| measure" in proc.stdout and "ratio medmat/floor wall" in proc.stdout
    assert "value (cold page cache)" in proc.stdout and "Page cache: cold" in proc.stdout
    assert next(r for r in rows if r["measure"].startswith("page cache before"))["value"] == "cold"
    kept = next(r for r in rows if r["measure"] == "kept images (MB)")
    raw = next(r for r in rows if r["measure"] == "raw images (MB)")
    assert 0 < int(kept["value"].split()[0]) <= int(raw["value"].split()[0]) == 300
    # Every medmat and floor figure is a number (the run really measured something).
    for r in rows:
        if "wall s" in r["measure"] and r["n"] != "demo":
            assert float(r["value"].split()[0].rstrip(";")) >= 0


def test_bench_refuses_a_repeat_below_one():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "build_bench.py"), "--repeat", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--repeat must be at least 1 (got 0)" in proc.stderr


def test_quick_scan_bench_measures_both_trees(tmp_path):
    out = tmp_path / "scan.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "scan_bench.py"), "--quick", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flat, nested = json.loads(out.read_text())
    assert nested["files"] == 2 * flat["files"] and nested["records"] == flat["records"] == flat["files"]
    assert "| tree | files | records |" in proc.stdout


def test_quick_leakage_guard_bench_prints_both_guards(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "leakage_guard_bench.py"), "--rows", "60",
                           "--test-rows", "20", "--leaks", "5", "--side", "64"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "guard |" not in line]
    assert [r[0].strip() for r in rows] == ["before (decode)", "after (stored bytes)", "after (image_hash column)"]
    assert all(r[1].strip() == "60" and r[-1].strip() == "5" for r in rows)  # every guard drops the 5 planted copies


def test_quick_serial_bench_measures_each_phase_against_a_baseline(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "serial_bench.py"), "--quick", "--data-dir", str(tmp_path / "cache"),
         "--baseline", str(REPO), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["phase"] for r in result["rows"]] == ["walk", "scan", "split", "total", "gc"]
    assert all({"baseline", "this checkout", "baseline / this"} <= set(r) for r in result["rows"])
    assert result["same"] is True
    assert "same candidates and splits in every run: yes" in proc.stdout


def test_quick_serial_bench_times_whole_builds_to_the_first_decoded_image(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "serial_bench.py"), "--quick", "--build", "--data-dir",
         str(tmp_path / "cache"), "--baseline", str(REPO), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["phase"]: r for r in result["rows"]}
    assert list(rows) == ["first result: wall", "first result: main CPU", "build: wall", "build: main CPU",
                          "workers: CPU"]
    for name in ("baseline", "this checkout"):
        assert 0 < rows["first result: main CPU"][name] <= rows["build: main CPU"][name]
        assert 0 < rows["first result: wall"][name] < rows["build: wall"][name]
        assert rows["workers: CPU"][name] > 0  # --num-proc 2: images decoded in worker processes
    assert result["same"] is True and "same exported bytes in every run: yes" in proc.stdout


def test_serial_bench_refuses_a_baseline_that_is_no_checkout(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "serial_bench.py"), "--baseline", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "is not a medmat checkout" in proc.stderr


def test_quick_build_timeline_marks_every_step_and_the_tail(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "build_timeline.py"), "--quick", "--data-dir", str(tmp_path / "cache"),
         "--json", str(out), "--num-proc", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["measure"]: r["value"] for r in json.loads(out.read_text())}
    wall = float(rows["build wall s"])
    first, last = (float(v) for v in rows["first decoded image / last decoded image: s from the start"].split(" (")[0]
                   .split(" / "))
    assert 0 < first <= last < wall
    for step in ("scan_candidates", "split_candidates", "Fill.run (call 1)", "Fill.run (call 2)",
                 "write_export_metadata", "wait for the visual report", "swap_configs"):
        assert f"{step}: start - end s (duration)" in rows, (step, list(rows))
    writers = [m for m in rows if m.startswith("parquet writer ")]
    assert sorted(w.split()[2].rstrip(":") for w in writers) == ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    tail = float(rows["tail: last decoded image to the end, s (share of the wall)"].split()[0])
    assert abs(tail - (wall - last)) < 0.02  # each of the three is printed rounded to 0.01 s
