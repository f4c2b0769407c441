"""The page-cache policies of bench/build_bench.py: eviction and warming really change what is cached."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import mmap
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("build_bench", REPO / "bench" / "build_bench.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_bench"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def _resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (mincore over a private mapping; touches no page)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)
        start = ctypes.c_char.from_buffer(mm)
        try:
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vec)
        finally:
            del start  # the exported buffer must be released before the mapping closes
            mm.close()
    if rc != 0:
        pytest.skip(f"mincore failed: {os.strerror(ctypes.get_errno())}")
    return sum(v & 1 for v in vec)


def _fs_type(path: Path) -> str:
    """The filesystem type holding ``path`` (longest mount point of /proc/self/mountinfo)."""
    best, kind = "", ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        mount = left.split()[4]
        if str(path).startswith(mount) and len(mount) > len(best):
            best, kind = mount, right.split()[0]
    return kind


def test_cold_evicts_files_and_warm_reads_them(tmp_path):
    bench = _bench()
    if _fs_type(tmp_path) in ("tmpfs", "ramfs", "overlay", ""):
        pytest.skip(f"{_fs_type(tmp_path) or 'unknown'} filesystem: its pages cannot be evicted")
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    files = []
    for i in range(3):
        f = src / f"img{i}.bin"
        f.write_bytes(os.urandom(64 * 1024))  # dirty pages: eviction must write them back first
        files.append(f)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.parquet").write_bytes(b"p" * 8192)

    bench.prepare_cache("cold", src.parent, [], out)
    assert [_resident_pages(f) for f in files] == [0, 0, 0]
    assert _resident_pages(out / "x.parquet") == 0  # earlier outputs are evicted too

    bench.prepare_cache("warm", src.parent, [str(f) for f in files[:2]], out)
    assert [_resident_pages(f) for f in files] == [16, 16, 0]  # kept files only (64 KiB = 16 pages)


def test_evict_counts_files_and_unknown_policy_says_what_to_use(tmp_path):
    bench = _bench()
    (tmp_path / "d").mkdir()
    for name in ("a", "d/b", "d/c"):
        (tmp_path / name).write_bytes(b"x")
    assert bench.evict(tmp_path) == 3
    with pytest.raises(ValueError, match="cold, warm"):
        bench.prepare_cache("lukewarm", tmp_path, [], tmp_path)
    assert set(bench.CACHE_POLICIES) == {"cold", "warm"}
    assert bench.parse_args([]).cache == "cold"
    assert bench.parse_args(["--cache", "warm"]).cache == "warm"
