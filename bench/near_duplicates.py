"""Measure near-duplicate detection on realistic look-alike scans: old rule (phash within 6 bits) beside the new one.

Run from the repository root::

    python bench/near_duplicates.py                         # 2,000 and 10,000 distinct scans per modality
    python bench/near_duplicates.py --sizes 500 --copies 40 # a quick look (about a minute)

What is measured, every figure from the same run:

* ``medmat_builder.images.lookalikes`` draws N distinct scans per modality (chest X-ray, fundus, dermoscopy,
  CT slice; each with its own anatomy, positioning, exposure and detail) and, for a seeded sample of
  ``--copies`` of them per copy kind, a copy (byte-identical, metadata stripped, PNG saved as JPEG, JPEG
  re-encoded at quality 75-95, resized 0.75-1.25x, resized and re-encoded, filed under the other
  class). Every file goes through ``medmat_builder.images.load_image_bytes``, as in a build, which
  gives the pixel hash, perceptual hash and thumbnail. The smaller sizes are the first scans of the
  largest pool, and the copies are made of scans that are in every pool;
* each rule sees the distinct scans one by one, as a build fills a split: an image that the rule calls
  a (near) duplicate of one already kept is a **false drop**; else it is kept. Then each copy is
  checked against what was kept: **caught** when the rule calls it a duplicate (for ``other_class``
  that is a label conflict in a build). ``old`` is the previous rule (same pixels, or a perceptual hash
  within 6 bits of any kept image, by a scan of all kept hashes); ``new`` is
  ``medmat_builder.images.duplicates.DuplicateIndex`` with its default thresholds;
* **proposed** is the number of (image, kept image) pairs whose hashes were close enough to be
  compared (old: pairs within 6 bits; new: pairs within the candidate radius, whose thumbnails are
  then compared); **us/img** is the time of the check and add per distinct scan;
* for the new rule, the margins behind its thresholds: the highest edge correlation of any two
  distinct scans among the candidate pairs, and per copy kind the lowest edge correlation and the
  largest hash distance of a copy to its original;
* the index alone at up to 100,000 hashes (the pools' hashes plus copies of them with 12-20 random
  bits flipped, so they stay as clustered as look-alike scans are): time per "all within r bits"
  query, multi-index hashing against a numpy scan of every hash, and the entries each query looks at.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from medmat_builder.images import load_image_bytes  # noqa: E402
from medmat_builder.images import DuplicateIndex, NearDuplicateRule
from medmat_builder.images.duplicates import PHASH_RADIUS, edge_correlation
from medmat_builder.images.lookalikes import (  # noqa: E402
    COPY_KINDS,
    MODALITIES,
    lookalike_copy,
    lookalike_pixels,
    lookalike_scan,
)
from medmat_builder.images.phash_index import TABLE_FROM, PhashIndex

OLD_RADIUS = 6


@dataclass
class Prints:
    """What the build keeps per image: pixel hash, perceptual hash, thumbnail; plus the label."""

    pixel: list[str]
    phash: np.ndarray
    thumbs: np.ndarray
    labels: list[str]
    sides: np.ndarray | None = None  # shorter side per image, where the run needs it

    def side(self, i: int) -> int | None:
        return None if self.sides is None else int(self.sides[i])


def _fingerprint_scan(args: tuple) -> tuple[str, int, bytes, str, int]:
    """``(modality, index, seed, kind, copy_seed[, small_side])``: the look-alike scan (or its copy),
    or with ``small_side`` the scan scaled down to that shorter side (a copy is then that small picture
    resized 0.75-1.25x and saved as JPEG at quality 75-95)."""
    modality, index, seed, kind, copy_seed = args[:5]
    if len(args) > 5:
        return _fingerprint_small(modality, index, seed, kind, copy_seed, args[5])
    scan = lookalike_scan(modality, index, seed=seed)
    if kind is not None:
        scan = lookalike_copy(scan, kind, seed=copy_seed)
    img = load_image_bytes(scan.data, f"{modality}-{index}{scan.ext}")
    return img.pixel_hash, img.phash, img.thumbnail, scan.label, min(img.width, img.height)


def _fingerprint_small(modality: str, index: int, seed: int, kind: str | None, copy_seed: int,
                       side: int) -> tuple[str, int, bytes, str, int]:
    from PIL import Image

    pixels, label = lookalike_pixels(modality, index, seed=seed)
    img = Image.fromarray(pixels)
    scale = side / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if kind is None:
        img.save(buf, format="PNG")
    else:
        rng = np.random.default_rng([17, seed, index, side, copy_seed])
        f = rng.uniform(0.75, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 1.25)
        img = img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.BILINEAR)
        img.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    loaded = load_image_bytes(buf.getvalue(), f"{modality}-{index}-{side}")
    return loaded.pixel_hash, loaded.phash, loaded.thumbnail, label, min(loaded.width, loaded.height)


def _fingerprints(jobs: list[tuple], num_proc: int, cache: Path | None = None) -> Prints:
    """Fingerprints of the scans that ``jobs`` name; kept in ``cache`` (keyed by the generator and loader
    source, so a changed generator or loader is never served stale figures)."""
    path = None
    if cache is not None:
        code = hashlib.sha256()
        for mod in ("lookalikes.py", "images.py"):
            code.update((REPO / "medmat_builder" / mod).read_bytes())
        code.update(repr(jobs).encode())
        path = cache / f"prints-{code.hexdigest()[:24]}.npz"
        if path.is_file():
            with np.load(path) as z:
                return Prints(list(z["pixel"]), z["phash"], z["thumbs"], list(z["labels"]),
                              z["sides"] if "sides" in z else None)
    prints = _compute(jobs, num_proc)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, pixel=np.array(prints.pixel), phash=prints.phash, thumbs=prints.thumbs,
                 labels=np.array(prints.labels), sides=prints.sides)
        os.replace(tmp, path)
    return prints


def _compute(jobs: list[tuple], num_proc: int) -> Prints:
    if num_proc > 1:
        with ProcessPoolExecutor(num_proc) as pool:
            out = list(pool.map(_fingerprint_scan, jobs, chunksize=32))
    else:
        out = [_fingerprint_scan(j) for j in jobs]
    return Prints(
        [o[0] for o in out],
        np.array([o[1] for o in out], dtype=np.uint64),
        np.stack([np.frombuffer(o[2], dtype=np.uint8) for o in out]) if out else np.zeros((0, 1024), np.uint8),
        [o[3] for o in out],
        np.array([o[4] for o in out], dtype=np.int64),
    )


# ----------------------------------------------------------------------------------------- rules
class OldRule:
    """The previous rule: same pixels, or any kept perceptual hash within 6 bits (a scan of all of them)."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.hashes = np.zeros(1024, dtype=np.uint64)
        self.n = 0
        self.proposed = 0

    def check(self, pixel: str, phash: int, thumb: bytes, side: int | None = None) -> bool:
        if pixel in self.exact:
            return True
        if not self.n:
            return False
        close = int((np.bitwise_count(self.hashes[: self.n] ^ np.uint64(phash)) <= OLD_RADIUS).sum())
        self.proposed += close
        return close > 0

    def add(self, pixel: str, phash: int, thumb: bytes, side: int | None = None) -> None:
        self.exact.add(pixel)
        if self.n == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
        self.hashes[self.n] = np.uint64(phash)
        self.n += 1


class NewRule:
    def __init__(self) -> None:
        self.index = DuplicateIndex(NearDuplicateRule())

    @property
    def proposed(self) -> int:
        return self.index.proposed

    def check(self, pixel: str, phash: int, thumb: bytes, side: int | None = None) -> bool:
        return self.index.check(pixel, phash, thumb, side) is not None

    def add(self, pixel: str, phash: int, thumb: bytes, side: int | None = None) -> None:
        self.index.add(pixel, phash, thumb, side)


@dataclass
class Outcome:
    false_drops: int
    kept: int
    seconds: float
    proposed: int
    caught: dict[str, tuple[int, int]]


def run_rule(rule, distinct: Prints, n: int, copies: dict[str, Prints]) -> Outcome:
    drops = 0
    t0 = time.process_time()
    for i in range(n):
        pixel, phash, thumb, side = distinct.pixel[i], int(distinct.phash[i]), distinct.thumbs[i].tobytes(), distinct.side(i)
        if rule.check(pixel, phash, thumb, side):
            drops += 1
        else:
            rule.add(pixel, phash, thumb, side)
    seconds = time.process_time() - t0
    proposed = rule.proposed
    caught = {}
    for kind, pr in copies.items():
        hits = sum(rule.check(pr.pixel[j], int(pr.phash[j]), pr.thumbs[j].tobytes(), pr.side(j))
                   for j in range(len(pr.pixel)))
        caught[kind] = (hits, len(pr.pixel))
    return Outcome(drops, n - drops, seconds, proposed, caught)


def margins(distinct: Prints, n: int, copies: dict[str, Prints], originals: np.ndarray) -> tuple[float, dict]:
    """Highest edge correlation among distinct candidate pairs; per copy kind (lowest correlation, largest distance)."""
    index = PhashIndex(PHASH_RADIUS)
    best = -1.0
    for i in range(n):
        entries, _ = index.within(int(distinct.phash[i]))
        if len(entries):
            corr = edge_correlation(distinct.thumbs[i], distinct.thumbs[entries])
            if np.isfinite(corr).any():
                best = max(best, float(np.nanmax(corr)))
        index.add(int(distinct.phash[i]))
    per_kind = {}
    for kind, pr in copies.items():
        dist = np.bitwise_count(pr.phash ^ distinct.phash[originals]).astype(int)
        corr = np.array([edge_correlation(pr.thumbs[j], distinct.thumbs[originals[j]])[0] for j in range(len(pr.pixel))])
        per_kind[kind] = (float(np.nanmin(corr)), int(dist.max()))
    return best, per_kind


# ----------------------------------------------------------------------------------------- index scaling
def index_scaling(hashes: np.ndarray, sizes: list[int], queries: int = 2000) -> list[tuple]:
    """Per size: multi-index us/query (bucket table forced), numpy scan us/query, the default index
    (scan below TABLE_FROM hashes, table above), entries found per query."""
    rng = np.random.default_rng(5)
    top = max(sizes)
    extra = max(0, top - len(hashes))  # clustered filler: pool hashes with 12-20 random bits flipped
    flips = np.zeros(extra, dtype=np.uint64)
    order = np.argsort(rng.random((extra, 64)), axis=1)
    count = rng.integers(12, 21, size=extra)
    for k in range(20):
        use = count > k
        flips[use] |= np.uint64(1) << order[use, k].astype(np.uint64)
    pool_arr = np.concatenate([hashes, hashes[rng.integers(0, len(hashes), size=extra)] ^ flips])[:top]
    rows = []
    for n in sizes:
        qs = [int(q) for q in pool_arr[rng.integers(0, n, size=queries)] ^ np.uint64(1 << 7)]  # near, not equal
        timing = {}
        for name, table_from in (("table", 1), ("default", TABLE_FROM)):
            index = PhashIndex(PHASH_RADIUS, table_from=table_from)
            for h in pool_arr[:n]:
                index.add(int(h))
            if name == "table":
                index.compact()
            t0 = time.process_time()
            found = sum(len(index.within(q)[0]) for q in qs)
            timing[name] = (time.process_time() - t0) / queries
        arr = pool_arr[:n]
        t0 = time.process_time()
        for q in qs:
            np.flatnonzero(np.bitwise_count(arr ^ np.uint64(q)) <= PHASH_RADIUS)
        t_scan = (time.process_time() - t0) / queries
        rows.append((n, timing["table"], t_scan, timing["default"], found / queries))
    return rows


# ----------------------------------------------------------------------------------------- main
def _rate(a: int, b: int) -> str:
    return f"{100.0 * a / b:.2f}%" if b else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,10000", help="distinct scans per modality (comma-separated)")
    ap.add_argument("--copies", type=int, default=300, help="copies per copy kind and modality")
    ap.add_argument("--modalities", default=",".join(MODALITIES))
    ap.add_argument("--num-proc", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--index-sizes", default="10000,100000,300000,1000000",
                    help="sizes for the index-only timing ('' to skip)")
    ap.add_argument("--small-sides", default="64,96", help="shorter sides for the small-image run ('' to skip)")
    ap.add_argument("--small-n", type=int, default=1000, help="distinct scans per modality in the small-image run")
    ap.add_argument("--small-copies", type=int, default=200, help="copies per modality in the small-image run")
    ap.add_argument("--cache", default="/tmp/medmat-bench/near-duplicates",
                    help="folder keeping the scans' fingerprints between runs ('' for none)")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    modalities = [m for m in args.modalities.split(",") if m]
    rule = NearDuplicateRule()
    print(f"new rule: same pixels, or perceptual hash within {rule.phash_radius} bits (multi-index) and "
          f"edge correlation of 32x32 thumbnails >= {rule.min_edge_correlation}; old rule: same pixels, or "
          f"perceptual hash within {OLD_RADIUS} bits")
    header = (f"| modality | N | rule | false drops | copies caught | " + " | ".join(COPY_KINDS)
              + " | proposed pairs | us/img |")
    rows: list[str] = []
    margin_rows: list[str] = []
    all_hashes = []
    for modality in modalities:
        t0 = time.perf_counter()
        cache = Path(args.cache) if args.cache else None
        distinct = _fingerprints([(modality, i, args.seed, None, 0) for i in range(sizes[-1])], args.num_proc, cache)
        rng = np.random.default_rng([11, args.seed, MODALITIES.index(modality)])
        originals = rng.choice(sizes[0], size=min(args.copies, sizes[0]), replace=False)
        copies = {
            kind: _fingerprints([(modality, int(i), args.seed, kind, args.seed) for i in originals], args.num_proc, cache)
            for kind in COPY_KINDS
        }
        gen_s = time.perf_counter() - t0
        all_hashes.append(distinct.phash)
        print(f"{modality}: {sizes[-1]:,} distinct + {len(originals) * len(COPY_KINDS):,} copies generated and "
              f"loaded in {gen_s:.0f} s", flush=True)
        for n in sizes:
            for name, make in (("old", OldRule), ("new", NewRule)):
                out = run_rule(make(), distinct, n, copies)
                hit = sum(h for h, _ in out.caught.values())
                tot = sum(t for _, t in out.caught.values())
                kinds = " | ".join(_rate(*out.caught[k]) for k in COPY_KINDS)
                rows.append(f"| {modality} | {n:,} | {name} | {_rate(out.false_drops, n)} ({out.false_drops}) | "
                            f"{_rate(hit, tot)} ({hit}/{tot}) | {kinds} | {out.proposed:,} | "
                            f"{1e6 * out.seconds / n:.0f} |")
            best, per_kind = margins(distinct, n, copies, originals)
            margin_rows.append(
                f"| {modality} | {n:,} | {best:.3f} | "
                + " | ".join(f"{per_kind[k][0]:.3f} / {per_kind[k][1]}" for k in COPY_KINDS) + " |")
            print(rows[-2], rows[-1], sep="\n", flush=True)
    print("\nFalse drops of distinct scans, copies caught (all kinds, then per kind), candidate pairs, check time:")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print("\n".join(rows))
    print(f"\nMargins of the new rule: highest edge correlation between two distinct scans among candidate pairs "
          f"(threshold {rule.min_edge_correlation}); per copy kind, lowest edge correlation to its original / "
          f"largest hash distance (radius {rule.phash_radius}):")
    print("| modality | N | distinct max corr | " + " | ".join(COPY_KINDS) + " |")
    print("|" + "---|" * (3 + len(COPY_KINDS)))
    print("\n".join(margin_rows))
    if args.small_sides:
        small_sides = [int(s) for s in args.small_sides.split(",")]
        print(f"\nSmall images: the first {args.small_n:,} scans per modality scaled down to a shorter side of "
              f"{', '.join(map(str, small_sides))} px; copies: {args.small_copies} of them resized 0.75-1.25x and saved "
              f"as JPEG (quality 75-95); pairs with an image under {rule.small_side} px are confirmed at 16x16 "
              f"(edge correlation >= {rule.min_coarse_edge_correlation}):")
        print("| modality | side | rule | false drops | copies caught | proposed pairs | us/img |")
        print("|---|---|---|---|---|---|---|")
        cache = Path(args.cache) if args.cache else None
        for modality in modalities:
            rng = np.random.default_rng([13, args.seed, MODALITIES.index(modality)])
            originals = rng.choice(args.small_n, size=min(args.small_copies, args.small_n), replace=False)
            for side in small_sides:
                distinct = _fingerprints([(modality, i, args.seed, None, 0, side) for i in range(args.small_n)],
                                         args.num_proc, cache)
                copies = {"resized_jpeg": _fingerprints(
                    [(modality, int(i), args.seed, "resized_jpeg", args.seed, side) for i in originals], args.num_proc, cache)}
                for name, make in (("old", OldRule), ("new", NewRule)):
                    out = run_rule(make(), distinct, args.small_n, copies)
                    hit, tot = out.caught["resized_jpeg"]
                    print(f"| {modality} | {side} | {name} | {_rate(out.false_drops, args.small_n)} ({out.false_drops}) | "
                          f"{_rate(hit, tot)} ({hit}/{tot}) | {out.proposed:,} | {1e6 * out.seconds / args.small_n:.0f} |",
                          flush=True)
    if args.index_sizes:
        index_sizes = [int(s) for s in args.index_sizes.split(",")]
        print(f"\nCandidate index alone (radius {PHASH_RADIUS}), pool hashes plus clustered filler:")
        print(f"| hashes | multi-index us/query | numpy scan us/query | scan / multi-index | PhashIndex default "
              f"(table from {TABLE_FROM:,}) us/query | entries found/query |")
        print("|---|---|---|---|---|---|")
        for n, t_mih, t_scan, t_default, found in index_scaling(np.concatenate(all_hashes), index_sizes):
            print(f"| {n:,} | {1e6 * t_mih:.0f} | {1e6 * t_scan:.0f} | {t_scan / t_mih:.2f} | {1e6 * t_default:.0f} | "
                  f"{found:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
