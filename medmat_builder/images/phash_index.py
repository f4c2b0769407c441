"""Multi-index hashing of 64-bit perceptual hashes: every kept hash within a radius, in a few hundred probes."""

from __future__ import annotations

import itertools

import numpy as np

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
        if not self._built:  # every hash is compared directly
            dist = np.bitwise_count(self._hashes[: self.n] ^ h)
            found = np.flatnonzero(dist <= self.radius)
            return found, dist[found].astype(np.int64)
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
