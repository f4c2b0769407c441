"""Exact and near duplicate images: the perceptual hash proposes, a pixel-level comparison confirms.

Scans of one modality look alike (every chest X-ray has two dark lungs in a bright thorax), so a
perceptual hash alone cannot tell a re-encoded copy from another patient's scan: at 6 bits of 64 it
dropped a third to two thirds of distinct look-alike scans (``bench/near_duplicates.py``). The rule:

1. **Exact duplicate**: the same decoded pixels (``pixel_hash``, see :mod:`medmat_builder.images.hashes`),
   whatever the file format or metadata. Always a duplicate.
2. **Candidates**: kept images whose 64-bit perceptual hash (``phash``) is at most
   :data:`PHASH_RADIUS` bits away. They are found with multi-index hashing (:class:`~medmat_builder.images.phash_index.PhashIndex`: four
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

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from medmat_builder.images.hashes import THUMBNAIL_SIDE
from medmat_builder.images.phash_index import PhashIndex

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


#: ``np.rint(s / 4)`` as uint8 for every sum ``s`` of four grey levels (0-1020): a 2x2 mean, rounded.
_QUARTER_ROUNDED = np.rint(np.arange(4 * 255 + 1) / 4).astype(np.uint8)


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


@dataclass(frozen=True)
class ThumbnailEdges:
    """What :class:`DuplicateIndex` needs of one thumbnail, computed once from it (:meth:`of`).

    The build computes it in the worker that decoded the image, so the main process only compares.
    Held as bytes (about 4.8 KB, cheap to pickle): the fine edges (float32, 900 values), their RMS,
    the thumbnail's mean grey level, its 16x16 version (uint8), and the fine edges kept for later
    comparisons (int8 at :data:`_EDGE_STEPS` steps per RMS) with their Euclidean norm.
    """

    fine_bytes: bytes
    rms: float
    mean: float
    half_bytes: bytes
    quantized_bytes: bytes
    quantized_norm: float

    @classmethod
    def of(cls, thumbnail: bytes) -> ThumbnailEdges:
        """The edges of one :data:`~medmat_builder.images.THUMBNAIL_SIDE`-square grey thumbnail (1,024 bytes)."""
        # The same values as ``_laplacian(_as_thumbnails(thumbnail))``, ``_halve`` and ``mean``, with fewer
        # and cheaper numpy calls: the Laplacian, its sum and the 2x2 sums are integers (exact in int32
        # and in float32, which holds every integer below 2**24), so only the centring and what follows
        # are float. The Laplacian is taken on the flat thumbnail (contiguous slices; the two columns
        # that wrap around a row are dropped), the 2x2 means are rounded through a table.
        side, half = THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2
        x = np.frombuffer(thumbnail, dtype=np.uint8).astype(np.int32)
        lap = x[side:-side] * 4
        lap -= x[: -2 * side]
        lap -= x[2 * side :]
        lap -= x[side - 1 : -side - 1]
        lap -= x[side + 1 : -side + 1]
        lap = lap.reshape(side - 2, side)[:, 1:-1]
        n = lap.size
        fine = lap.astype(np.float32).reshape(1, n)
        fine -= np.float32(int(lap.sum())) / np.float32(n)
        rms = float(np.sqrt(np.einsum("ij,ij->i", fine, fine) / n)[0])
        fine = fine[0]
        q = np.rint(fine * (_EDGE_STEPS / max(rms, 1e-6)))
        np.minimum(np.maximum(q, -127, out=q), 127, out=q)  # np.clip's values, without its overhead
        pairs = (x[0::2] + x[1::2]).reshape(half, side)  # row pairs of horizontal 2-sums
        halved = _QUARTER_ROUNDED[pairs[:, :half] + pairs[:, half:]]
        return cls(fine.tobytes(), rms, int(x.sum()) / x.size, halved.tobytes(),
                   q.astype(np.int8).tobytes(), float(np.sqrt(np.dot(q, q))))

    @property
    def fine(self) -> np.ndarray:
        """The centred Laplacian of the thumbnail's interior (float32, flattened; a fresh array)."""
        return np.frombuffer(self.fine_bytes, dtype=np.float32).copy()

    @property
    def half(self) -> np.ndarray:
        """The 16x16 thumbnail (2x2 means, rounded), shape (1, 16, 16), float32."""
        half = THUMBNAIL_SIDE // 2
        return np.frombuffer(self.half_bytes, dtype=np.uint8).reshape(1, half, half).astype(np.float32)


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
        self._last: tuple[bytes, ThumbnailEdges] | None = None

    def __len__(self) -> int:
        return len(self._phashes)

    def _prepare(self, thumbnail: bytes | ThumbnailEdges) -> ThumbnailEdges:
        """The thumbnail's :class:`ThumbnailEdges` (given, or computed once per check-then-add)."""
        if isinstance(thumbnail, ThumbnailEdges):
            return thumbnail
        if self._last is None or self._last[0] is not thumbnail and self._last[0] != thumbnail:
            self._last = (thumbnail, ThumbnailEdges.of(thumbnail))
        return self._last[1]

    def check(self, pixel_hash: str, phash: int, thumbnail: bytes | ThumbnailEdges,
              side: int | None = None) -> DuplicateMatch | None:
        """The kept image that this one repeats (exact first, else the best confirmed candidate), or None.

        ``thumbnail`` is the 32x32 grey thumbnail or its :class:`ThumbnailEdges` (the same decisions);
        ``side`` is the image's shorter side in pixels (pairs with a small image are compared at 16x16).
        """
        entry = self._exact.get(pixel_hash)
        if entry is not None:
            return DuplicateMatch("duplicate", entry)
        entries, dist = self._phashes.within(phash)
        if not len(entries):
            return None
        self.proposed += len(entries)
        edges = self._prepare(thumbnail)
        fine, rms, mean = edges.fine, edges.rms, edges.mean
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
                mine, mine_rms = _laplacian(edges.half)
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

    def add(self, pixel_hash: str, phash: int, thumbnail: bytes | ThumbnailEdges, side: int | None = None) -> int:
        """Keep an image (``thumbnail`` as in :meth:`check`; ``side``: its shorter side in pixels); returns its
        entry number (0, 1, 2 ...)."""
        entry = self._phashes.add(phash)
        if entry == len(self._side):
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self._fine, self._half, self._stats, self._side = map(grow, (self._fine, self._half, self._stats, self._side))
        edges = self._prepare(thumbnail)
        self._fine[entry] = np.frombuffer(edges.quantized_bytes, dtype=np.int8)
        self._stats[entry] = (edges.quantized_norm, edges.rms, edges.mean)
        self._half[entry] = np.frombuffer(edges.half_bytes, dtype=np.uint8).reshape(self._half.shape[1:])
        self._side[entry] = LARGE_SIDE if side is None else side
        self._exact.setdefault(pixel_hash, entry)
        return entry
