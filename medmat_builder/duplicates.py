"""Exact and near duplicate images: the perceptual hash proposes, a pixel-level comparison confirms.

Scans of one modality look alike (every chest X-ray has two dark lungs in a bright thorax), so a
perceptual hash alone cannot tell a re-encoded copy from another patient's scan: at 6 bits of 64 it
dropped a third to two thirds of distinct look-alike scans (``bench/near_duplicates.py``). The rule:

1. **Exact duplicate**: the same decoded pixels (``pixel_hash``, see :mod:`medmat_builder.images`),
   whatever the file format or metadata. Always a duplicate.
2. **Candidates**: kept images whose 64-bit perceptual hash (``phash``) is at most
   :data:`PHASH_RADIUS` bits away. They are found with multi-index hashing (:class:`PhashIndex`: four
   16-bit bands; two hashes within ``r`` bits agree to within ``r // 4`` bits on at least one band),
   so a query looks at a few hundred buckets instead of every kept hash.
3. **Confirmation**: the *edge correlation* of the two 32x32 grey thumbnails the hashes were computed
   from (:func:`edge_correlation`) is at least :data:`MIN_EDGE_CORRELATION`. The edge image is the
   thumbnail's 4-neighbour Laplacian: it drops the exposure offset and the smooth layout that all
   scans of a modality share, and the correlation (Pearson) drops contrast. A resized or re-encoded
   copy keeps its edges where they were; another patient's scan, however alike, has its edges
   elsewhere. Thumbnails without edges (blank images) match only each other, by mean grey level.

Both thresholds come from the measurement in ``bench/near_duplicates.py`` (docs/performance.md).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from medmat_builder.images import THUMBNAIL_SIDE

#: Kept images whose perceptual hash is at most this many bits (of 64) away are candidates. Copies
#: measured at 0-8 bits (8,400 copies; re-encoded ones at most 4, resized CT slices up to 8); the
#: radius leaves 2 bits above that, since the thumbnail comparison, not the hash, decides.
PHASH_RADIUS = 10
#: A candidate is a near duplicate when the edge correlation of the thumbnails is at least this.
#: Measured (bench/near_duplicates.py, 10,000 distinct scans and 2,100 copies per modality): copies
#: (re-encoded at quality 75-95, resized 0.75-1.25x) at or above 0.963; distinct look-alike candidate
#: pairs at most 0.922 (CT slices; 0.90 chest X-rays, 0.81 fundus, 0.77 dermoscopy). The threshold
#: sits nearer the copies: a false drop loses a patient, a missed copy only leaves a duplicate.
MIN_EDGE_CORRELATION = 0.95
#: A pair whose smaller image is under this many pixels on its shorter side is compared at half the
#: thumbnail's resolution (16x16) instead: below about 128 px, resizing and JPEG change the finest
#: edges of a 32x32 thumbnail too much (copies of 96 px dermoscopy images kept 0.94 at 32x32).
SMALL_SIDE = 128
#: The confirmation threshold for such small pairs (16x16 edges; measured on 1,000 scans per modality
#: scaled to 64 and 96 px: copies resized 0.75-1.25x and re-encoded at or above 0.992, distinct
#: look-alike candidate pairs up to 0.977, CT slices; bench/near_duplicates.py).
MIN_COARSE_EDGE_CORRELATION = 0.985
#: A thumbnail whose Laplacian has a root mean square below this (grey levels) has no edges to compare.
FLAT_EDGE_RMS = 0.5
#: Two edgeless thumbnails are near duplicates when their mean grey levels differ by at most this.
FLAT_MAX_MEAN_DIFFERENCE = 4.0

DuplicateKind = Literal["duplicate", "near_duplicate"]


@dataclass(frozen=True)
class NearDuplicateRule:
    """Thresholds of the near-duplicate test (see the module docstring)."""

    phash_radius: int = PHASH_RADIUS
    min_edge_correlation: float = MIN_EDGE_CORRELATION
    small_side: int = SMALL_SIDE
    min_coarse_edge_correlation: float = MIN_COARSE_EDGE_CORRELATION

    def __post_init__(self) -> None:
        if not 0 <= self.phash_radius <= 64:
            raise ValueError(f"phash_radius must be 0-64 bits, got {self.phash_radius}")
        for name in ("min_edge_correlation", "min_coarse_edge_correlation"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [-1, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class DuplicateMatch:
    """Why an image is a duplicate: ``entry`` is the index of the kept image it repeats."""

    kind: DuplicateKind
    entry: int
    phash_distance: int = 0
    edge_correlation: float = 1.0
    #: Thumbnail resolution the edges were compared at (16 for a pair with a small image).
    edge_side: int = THUMBNAIL_SIDE

    def describe(self) -> str:
        if self.kind == "duplicate":
            return "same decoded pixels"
        at = "" if self.edge_side == THUMBNAIL_SIDE else f" at {self.edge_side}x{self.edge_side}"
        return f"perceptual hash {self.phash_distance} bits apart, edge correlation {self.edge_correlation:.3f}{at}"


# --------------------------------------------------------------------------- thumbnails
#: Edge vectors are kept as int8 at this many steps per root mean square (range +-7.9 RMS).
_EDGE_STEPS = 16


def _as_thumbnails(thumbs: bytes | np.ndarray) -> np.ndarray:
    arr = np.frombuffer(thumbs, dtype=np.uint8) if isinstance(thumbs, (bytes, bytearray)) else np.asarray(thumbs)
    return arr.reshape(-1, THUMBNAIL_SIDE, THUMBNAIL_SIDE).astype(np.float32)


def _laplacian(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred 4-neighbour Laplacian of square images (interior, flattened) and its root mean square."""
    lap = 4 * t[:, 1:-1, 1:-1]
    lap -= t[:, :-2, 1:-1]
    lap -= t[:, 2:, 1:-1]
    lap -= t[:, 1:-1, :-2]
    lap -= t[:, 1:-1, 2:]
    lap = lap.reshape(len(t), -1)
    n = lap.shape[1]
    lap -= (lap.sum(axis=1) / n)[:, None]
    return lap, np.sqrt(np.einsum("ij,ij->i", lap, lap) / n)


@dataclass(frozen=True)
class Edges:
    """Edges of grey thumbnails at two scales: the Laplacian of the 32x32 thumbnail (``fine``, 900
    values each) and of its 2x2-mean 16x16 version (``coarse``, 196 values), each with its root mean
    square, and the thumbnail's mean grey level."""

    fine: np.ndarray
    fine_rms: np.ndarray
    coarse: np.ndarray
    coarse_rms: np.ndarray
    mean: np.ndarray

    @property
    def fine_norm(self) -> float:
        """Euclidean norm of the first thumbnail's fine edge vector."""
        return float(self.fine_rms[0]) * float(np.sqrt(self.fine.shape[1]))

    @property
    def coarse_norm(self) -> float:
        return float(self.coarse_rms[0]) * float(np.sqrt(self.coarse.shape[1]))


def _halve(t: np.ndarray) -> np.ndarray:
    """2x2 means of square thumbnails, rounded to grey levels (16x16 from 32x32)."""
    half = t.shape[1] // 2
    return np.rint(t.reshape(len(t), half, 2, half, 2).sum(axis=(2, 4)) * np.float32(0.25))


def edge_vectors(thumbs: bytes | np.ndarray) -> Edges:
    """:class:`Edges` of one or more :data:`~medmat_builder.images.THUMBNAIL_SIDE`-square grey thumbnails."""
    t = _as_thumbnails(thumbs)
    fine, fine_rms = _laplacian(t)
    coarse, coarse_rms = _laplacian(_halve(t))
    return Edges(fine, fine_rms, coarse, coarse_rms, t.reshape(len(t), -1).sum(axis=1) / t[0].size)


def edge_correlation(a: bytes | np.ndarray, b: bytes | np.ndarray, coarse: bool = False) -> np.ndarray:
    """Pearson correlation of the Laplacians of thumbnail ``a`` and each thumbnail in ``b``.

    ``a`` is one :data:`~medmat_builder.images.THUMBNAIL_SIDE`-square grey thumbnail (bytes or array),
    ``b`` one or more; ``coarse`` compares the 16x16 versions. Returns one value per thumbnail of
    ``b``, in [-1, 1]; ``nan`` where either has no edges (RMS below :data:`FLAT_EDGE_RMS`).
    """
    ea, eb = edge_vectors(a), edge_vectors(b)
    va, ra, vb, rb = ((ea.coarse, ea.coarse_rms, eb.coarse, eb.coarse_rms) if coarse
                      else (ea.fine, ea.fine_rms, eb.fine, eb.fine_rms))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (vb @ va[0]) / (va.shape[1] * ra[0] * rb)
    flat = (rb < FLAT_EDGE_RMS) | (ra[0] < FLAT_EDGE_RMS)
    return np.where(flat, np.nan, np.clip(corr, -1.0, 1.0))


# --------------------------------------------------------------------------- the hash index
_BANDS = 4
_BAND_BITS = 16
_BAND_KEYS = 1 << _BAND_BITS
#: Below this many hashes one vectorised comparison with every hash is faster than probing buckets
#: (numpy's per-call overhead; CPU time per query on look-alike hashes, bench/near_duplicates.py:
#: 24 against 127 us at 10,000 hashes, 135 against 179 us at 100,000, but 483 against 239 us at
#: 300,000 and 3.1 ms against 0.53 ms at 1,000,000), so the bucket table is used from this size on.
TABLE_FROM = 150_000
#: Hashes added since the last rebuild of the bucket table are compared directly (at most this many).
_PENDING = 8192
_BAND_BASE = np.arange(_BANDS, dtype=np.int64) * _BAND_KEYS
_EMPTY = np.zeros(0, dtype=np.int64)


def _probe_masks(max_bits: int) -> np.ndarray:
    """Every 16-bit mask with at most ``max_bits`` bits set (what a band may differ by)."""
    masks = [0]
    for k in range(1, min(max_bits, _BAND_BITS) + 1):
        masks += [sum(1 << i for i in combo) for combo in itertools.combinations(range(_BAND_BITS), k)]
    return np.array(masks, dtype=np.int64)


def _band_keys(hashes: np.ndarray) -> np.ndarray:
    """(4, n) band keys of 64-bit hashes, offset so that band b's keys lie in [b * 65536, (b + 1) * 65536)."""
    shifts = np.array([48, 32, 16, 0], dtype=np.uint64)[:, None]
    keys = ((hashes[None, :] >> shifts) & np.uint64(0xFFFF)).astype(np.int64)
    return keys + (np.arange(_BANDS, dtype=np.int64) * _BAND_KEYS)[:, None]


class PhashIndex:
    """Multi-index hashing of 64-bit hashes, for "every entry within ``radius`` bits" queries.

    Each hash is filed under its four 16-bit bands. By the pigeonhole principle, two hashes within
    ``radius`` bits differ by at most ``radius // 4`` bits on at least one band, so looking in each
    band's buckets at that distance finds every entry within ``radius`` (plus some more, which the
    exact distance then removes). With radius 8-11 a query looks at 4 x 137 buckets, whatever the
    number of entries. The buckets are one sorted table, built once there are ``table_from`` hashes
    (:data:`TABLE_FROM`; fewer are compared directly, which is faster) and rebuilt, vectorised, as the
    count doubles, then after every :data:`_PENDING` additions (or a sixteenth of the count, if more);
    hashes added since are compared directly.
    """

    def __init__(self, radius: int, table_from: int = TABLE_FROM):
        if not 0 <= radius <= 64:
            raise ValueError(f"radius must be 0-64 bits, got {radius}")
        self.radius = radius
        self.table_from = table_from
        self._masks = _probe_masks(radius // _BANDS)
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self.n = 0
        self._built = 0
        self._counts = np.zeros(_BANDS * _BAND_KEYS, dtype=np.int64)
        self._starts = np.zeros(_BANDS * _BAND_KEYS, dtype=np.int64)
        self._entries = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def add(self, phash: int) -> int:
        """File ``phash``; returns its entry number (0, 1, 2 ...)."""
        if self.n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        entry = self.n
        self._hashes[entry] = np.uint64(phash)
        self.n += 1
        pending = self.n - self._built
        if self.n >= self.table_from and pending >= max(64, min(self._built, _PENDING), self._built // 16):
            self.compact()
        return entry

    def compact(self) -> None:
        """File every hash in the bucket table now (it is otherwise rebuilt after doublings, then every
        :data:`_PENDING` additions)."""
        keys = _band_keys(self._hashes[: self.n]).ravel()  # band-major: position i is entry i % n
        order = np.argsort(keys, kind="stable")
        self._entries = order % self.n
        self._counts = np.bincount(keys, minlength=_BANDS * _BAND_KEYS)
        self._starts = np.cumsum(self._counts) - self._counts
        self._built = self.n

    def within(self, phash: int) -> tuple[np.ndarray, np.ndarray]:
        """Entries within ``radius`` bits of ``phash`` (ascending) and their distances."""
        h = np.uint64(phash)
        found, dist = _EMPTY, _EMPTY
        if self._built:
            keys = np.array([(phash >> s) & 0xFFFF for s in (48, 32, 16, 0)], dtype=np.int64) + _BAND_BASE
            probes = (keys[:, None] ^ self._masks).ravel()  # the band base bits lie above every mask
            lengths = self._counts[probes]
            hit = np.flatnonzero(lengths)
            if len(hit):
                lengths, starts = lengths[hit], self._starts[probes[hit]]
                first = np.cumsum(lengths) - lengths
                pos = np.arange(int(first[-1] + lengths[-1]), dtype=np.int64) + np.repeat(starts - first, lengths)
                found = self._entries[pos]  # an entry may come up on several bands
                dist = np.bitwise_count(self._hashes[found] ^ h)
                close = dist <= self.radius
                found, first_at = np.unique(found[close], return_index=True)
                dist = dist[close][first_at]
        if self._built < self.n:  # added since the last rebuild: compared directly
            more = np.bitwise_count(self._hashes[self._built : self.n] ^ h)
            close = np.flatnonzero(more <= self.radius)
            found = np.concatenate([found, close + self._built])
            dist = np.concatenate([dist, more[close]])
        return found.astype(np.int64, copy=False), dist.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- the duplicate index
#: ``side`` of an image whose size is not given: compared as a large one.
LARGE_SIDE = 1 << 15


class DuplicateIndex:
    """The images kept so far and the duplicate test against them.

    Per kept image it stores the pixel hash, the perceptual hash, the shorter side, the 32x32
    thumbnail's Laplacian (unit RMS in int8, 900 bytes, with its RMS and the mean grey level) and the
    16x16 thumbnail (256 bytes, for pairs with a small image): about 1.2 KB, not the image.
    ``check`` says whether a new image repeats a kept one; ``add`` keeps it. ``proposed`` counts the
    candidate pairs the hash proposed and the thumbnails were compared for.
    """

    def __init__(self, rule: NearDuplicateRule | None = None):
        self.rule = rule or NearDuplicateRule()
        self._exact: dict[str, int] = {}
        self._phashes = PhashIndex(self.rule.phash_radius)
        half = THUMBNAIL_SIDE // 2
        self._fine = np.zeros((1024, (THUMBNAIL_SIDE - 2) ** 2), dtype=np.int8)
        self._half = np.zeros((1024, half, half), dtype=np.uint8)
        self._stats = np.zeros((1024, 3), dtype=np.float32)  # norm of the int8 edges, fine rms, mean grey
        self._side = np.zeros(1024, dtype=np.int32)
        self.proposed = 0
        self._last: tuple[bytes, tuple[np.ndarray, float, float, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._phashes)

    def _prepare(self, thumbnail: bytes) -> tuple[np.ndarray, float, float, np.ndarray]:
        """Fine edges, their RMS, the mean grey level and the 16x16 thumbnail, once per check-then-add."""
        if self._last is None or self._last[0] is not thumbnail and self._last[0] != thumbnail:
            t = _as_thumbnails(thumbnail)
            fine, rms = _laplacian(t)
            self._last = (thumbnail, (fine[0], float(rms[0]), float(t.mean()), _halve(t)))
        return self._last[1]

    def check(self, pixel_hash: str, phash: int, thumbnail: bytes, side: int | None = None) -> DuplicateMatch | None:
        """The kept image that this one repeats (exact first, else the best confirmed candidate), or None.

        ``side`` is the image's shorter side in pixels (pairs with a small image are compared at 16x16).
        """
        entry = self._exact.get(pixel_hash)
        if entry is not None:
            return DuplicateMatch("duplicate", entry)
        entries, dist = self._phashes.within(phash)
        if not len(entries):
            return None
        self.proposed += len(entries)
        fine, rms, mean, half = self._prepare(thumbnail)
        stats = self._stats[entries]
        if rms < FLAT_EDGE_RMS:  # no edges: only an edgeless kept image about as bright matches
            same = (stats[:, 1] < FLAT_EDGE_RMS) & (np.abs(stats[:, 2] - mean) <= FLAT_MAX_MEAN_DIFFERENCE)
            corr = np.where(same, 1.0, -1.0)
            small = np.zeros(len(entries), dtype=bool)
        else:
            small = np.minimum(self._side[entries], LARGE_SIDE if side is None else side) < self.rule.small_side
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = (self._fine[entries].astype(np.float32) @ fine) / (stats[:, 0] * rms * np.sqrt(len(fine)))
            corr = np.where(stats[:, 1] < FLAT_EDGE_RMS, -1.0, corr)
            if small.any():  # 16x16 edges for pairs with a small image
                mine, mine_rms = _laplacian(half)
                theirs, theirs_rms = _laplacian(self._half[entries[small]].astype(np.float32))
                with np.errstate(invalid="ignore", divide="ignore"):
                    coarse = (theirs @ mine[0]) / (len(mine[0]) * mine_rms[0] * theirs_rms)
                flat = (theirs_rms < FLAT_EDGE_RMS) | (mine_rms[0] < FLAT_EDGE_RMS)
                corr[small] = np.where(flat, -1.0, coarse)
        need = np.where(small, self.rule.min_coarse_edge_correlation, self.rule.min_edge_correlation)
        ok = np.flatnonzero(corr >= need)
        if not len(ok):
            return None
        best = ok[np.argmax(corr[ok])]  # the first of the best (entries are ascending)
        return DuplicateMatch("near_duplicate", int(entries[best]), int(dist[best]), float(min(corr[best], 1.0)),
                              THUMBNAIL_SIDE // 2 if small[best] else THUMBNAIL_SIDE)

    def add(self, pixel_hash: str, phash: int, thumbnail: bytes, side: int | None = None) -> int:
        """Keep an image (``side``: its shorter side in pixels); returns its entry number (0, 1, 2 ...)."""
        entry = self._phashes.add(phash)
        if entry == len(self._side):
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self._fine, self._half, self._stats, self._side = map(grow, (self._fine, self._half, self._stats, self._side))
        fine, rms, mean, half = self._prepare(thumbnail)
        q = np.clip(np.rint(fine * (_EDGE_STEPS / max(rms, 1e-6))), -127, 127)
        self._fine[entry] = q
        self._stats[entry] = (np.sqrt(np.dot(q, q)), rms, mean)
        self._half[entry] = half[0]
        self._side[entry] = LARGE_SIDE if side is None else side
        self._exact.setdefault(pixel_hash, entry)
        return entry
