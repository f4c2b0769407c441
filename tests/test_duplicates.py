"""Near duplicates by evidence: look-alike scans are kept, every kind of copy is caught (a few hundred images)."""

from __future__ import annotations

import io
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat_builder.images import (
    THUMBNAIL_SIDE,
    DuplicateIndex,
    LoadedImage,
    NearDuplicateRule,
    fingerprint,
    load_image_bytes,
)
from medmat_builder.images.duplicates import (
    MIN_COARSE_EDGE_CORRELATION,
    MIN_EDGE_CORRELATION,
    PHASH_RADIUS,
    SMALL_SIDE,
    edge_correlation,
)
from medmat_builder.images.lookalikes import (
    COPY_KINDS,
    EXACT_COPY_KINDS,
    LABELS,
    MODALITIES,
    contact_sheet,
    lookalike_copy,
    lookalike_pixels,
    lookalike_scan,
)
from medmat_builder.images.phash_index import PhashIndex

REPO = Path(__file__).resolve().parent.parent
DISTINCT = 32  # per modality
COPIED = 4  # originals per copy kind and modality


@lru_cache(maxsize=None)
def _scans(modality: str) -> tuple:
    return tuple(lookalike_scan(modality, i, small=True) for i in range(DISTINCT))


@lru_cache(maxsize=None)
def _loaded(modality: str) -> tuple[LoadedImage, ...]:
    return tuple(load_image_bytes(s.data, f"{modality}-{s.index}{s.ext}") for s in _scans(modality))


def _old_rule_drops(images) -> int:
    """The previous rule: a perceptual hash within 6 bits of any kept image made a 'near duplicate'."""
    kept: list[int] = []
    drops = 0
    for img in images:
        if any(bin(img.phash ^ k).count("1") <= 6 for k in kept):
            drops += 1
        else:
            kept.append(img.phash)
    return drops


# --------------------------------------------------------------------------- the generator
def test_lookalikes_are_deterministic_and_distinct():
    a, b = lookalike_scan("fundus", 3, small=True), lookalike_scan("fundus", 3, small=True)
    assert a.data == b.data and a.label == b.label and a.label in LABELS["fundus"]
    assert lookalike_scan("fundus", 4, small=True).data != a.data
    assert lookalike_scan("fundus", 3, seed=1, small=True).data != a.data
    for kind in COPY_KINDS:
        assert lookalike_copy(a, kind).data == lookalike_copy(b, kind).data
    with pytest.raises(ValueError, match="unknown look-alike modality 'mri'"):
        lookalike_pixels("mri", 0)
    with pytest.raises(ValueError, match="unknown copy kind"):
        lookalike_copy(a, "cropped")


def test_lookalikes_share_their_layout_like_real_scans():
    """Distinct scans of one modality look alike: grey ones grey, colour ones colour, similar sizes,
    and their mean images keep the layout (dark lungs beside a bright spine; a dark fundus surround)."""
    def picture(modality: str, i: int) -> Image.Image:
        return Image.open(io.BytesIO(_scans(modality)[i].data))

    for modality in MODALITIES:
        pictures = [picture(modality, i) for i in range(8)]
        assert {p.mode for p in pictures} == {"RGB" if modality in ("fundus", "dermoscopy") else "L"}
        assert all(200 <= min(p.size) and max(p.size) <= 560 for p in pictures)
    cxr = np.mean([np.asarray(picture("chest_xray", i).resize((64, 64)), dtype=float) for i in range(8)], axis=0)
    assert cxr[24:40, 12:22].mean() < cxr[24:40, 29:35].mean() - 30  # right lung field darker than the midline
    fundus = np.mean([np.asarray(picture("fundus", i).convert("L").resize((64, 64)), dtype=float) for i in range(8)],
                     axis=0)
    assert fundus[0:4, 0:4].mean() < 10 < fundus[28:36, 28:36].mean()  # black corners, lit centre
    sheet = contact_sheet(list(_scans("dermoscopy")[:4]), columns=2, cell=64)
    assert sheet.size == (128, 128)


def test_old_rule_drops_distinct_lookalikes():
    """Why the rule changed: on this sample the perceptual hash alone calls distinct scans duplicates."""
    drops = {m: _old_rule_drops(_loaded(m)) for m in ("chest_xray", "ct_slice")}
    assert sum(drops.values()) >= 5 and all(drops.values()), drops


# --------------------------------------------------------------------------- the rule
@pytest.mark.parametrize("modality", MODALITIES)
def test_distinct_lookalikes_are_all_kept(modality):
    index = DuplicateIndex()
    for img in _loaded(modality):
        match = index.check(img.pixel_hash, img.phash, img.thumbnail, min(img.width, img.height))
        assert match is None, (modality, match)
        index.add(img.pixel_hash, img.phash, img.thumbnail, min(img.width, img.height))
    assert len(index) == DISTINCT


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_copy_kind_is_caught(modality):
    scans, loaded = _scans(modality), _loaded(modality)
    index = DuplicateIndex()
    for img in loaded:
        index.add(img.pixel_hash, img.phash, img.thumbnail, min(img.width, img.height))
    for kind in COPY_KINDS:
        for i in range(1, DISTINCT, DISTINCT // COPIED)[:COPIED]:
            copy = lookalike_copy(scans[i], kind)
            img = load_image_bytes(copy.data, f"copy{copy.ext}")
            match = index.check(img.pixel_hash, img.phash, img.thumbnail, min(img.width, img.height))
            assert match is not None and match.entry == i, (modality, kind, i, match)
            assert match.kind == ("duplicate" if kind in EXACT_COPY_KINDS else "near_duplicate"), (kind, match)
            assert (copy.label != scans[i].label) == (kind == "other_class")


def test_thresholds_come_with_their_margins():
    """On this sample the thumbnails separate copies from distinct scans with room on both sides."""
    worst_distinct, worst_copy = -1.0, 2.0
    for modality in MODALITIES:
        loaded = _loaded(modality)
        thumbs = np.stack([np.frombuffer(i.thumbnail, np.uint8) for i in loaded])
        for j, img in enumerate(loaded):
            others = np.delete(thumbs, j, axis=0)
            worst_distinct = max(worst_distinct, float(np.nanmax(edge_correlation(img.thumbnail, others))))
        for i in (2, 17):
            copy = load_image_bytes(lookalike_copy(_scans(modality)[i], "resized_jpeg").data, "c.jpg")
            worst_copy = min(worst_copy, float(edge_correlation(loaded[i].thumbnail, copy.thumbnail)[0]))
    assert worst_distinct < MIN_EDGE_CORRELATION - 0.03 < worst_copy - 0.03, (worst_distinct, worst_copy)


def test_edge_correlation_ignores_exposure_not_content():
    scan = lookalike_pixels("chest_xray", 5, small=True)[0]
    img = Image.fromarray(scan)
    _, thumb = fingerprint(img)
    t = np.frombuffer(thumb, np.uint8).astype(float).reshape(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    brighter = np.clip(t * 0.8 + 30, 0, 255).astype(np.uint8)
    assert edge_correlation(thumb, brighter)[0] > 0.99
    shifted = np.roll(t, 2, axis=1).astype(np.uint8)  # the same anatomy, positioned 2/32 further right
    assert edge_correlation(thumb, shifted)[0] < 0.6
    blank = np.full((THUMBNAIL_SIDE, THUMBNAIL_SIDE), 90, np.uint8)
    assert np.isnan(edge_correlation(blank, blank)[0])


def test_blank_images_match_only_blank_images_of_their_brightness():
    def loaded(value: int) -> LoadedImage:
        buf = io.BytesIO()
        Image.new("L", (300, 200), value).save(buf, format="PNG")
        return load_image_bytes(buf.getvalue(), "blank.png")

    index = DuplicateIndex()
    dark = loaded(20)
    index.add(dark.pixel_hash, dark.phash, dark.thumbnail)
    resized = load_image_bytes(_png(Image.new("L", (240, 160), 21)), "small.png")
    match = index.check(resized.pixel_hash, resized.phash, resized.thumbnail)
    assert match is not None and match.kind == "near_duplicate"
    grey = loaded(128)
    assert index.check(grey.pixel_hash, grey.phash, grey.thumbnail) is None
    scan = _loaded("ct_slice")[0]
    assert index.check(scan.pixel_hash, scan.phash, scan.thumbnail) is None


@pytest.mark.parametrize("side", [64, 96])
def test_small_images_are_compared_at_16x16(side):
    """Images under SMALL_SIDE px: distinct look-alikes kept, copies resized 0.75-1.25x and re-encoded caught."""
    rng = np.random.default_rng(side)
    for modality in ("chest_xray", "fundus"):
        index = DuplicateIndex()
        originals = []
        for i in range(16):
            img = Image.open(io.BytesIO(_scans(modality)[i].data)).resize((side, side), Image.Resampling.LANCZOS)
            loaded = load_image_bytes(_png(img), "small.png")
            assert index.check(loaded.pixel_hash, loaded.phash, loaded.thumbnail, side) is None, (modality, side, i)
            index.add(loaded.pixel_hash, loaded.phash, loaded.thumbnail, side)
            originals.append(img)
        for i in range(0, 16, 3):
            f = float(rng.choice([0.75, 0.85, 1.15, 1.25]))
            copy = originals[i].resize((round(side * f), round(side * f)), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            copy.convert("RGB").save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
            loaded = load_image_bytes(buf.getvalue(), "copy.jpg")
            match = index.check(loaded.pixel_hash, loaded.phash, loaded.thumbnail, min(loaded.width, loaded.height))
            assert match is not None and match.entry == i and match.edge_side == 16, (modality, side, i, f, match)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_rule_validates_its_thresholds():
    assert NearDuplicateRule().to_dict() == {
        "phash_radius": PHASH_RADIUS, "min_edge_correlation": MIN_EDGE_CORRELATION,
        "small_side": SMALL_SIDE, "min_coarse_edge_correlation": MIN_COARSE_EDGE_CORRELATION}
    with pytest.raises(ValueError, match="phash_radius"):
        NearDuplicateRule(phash_radius=65)
    with pytest.raises(ValueError, match="min_edge_correlation"):
        NearDuplicateRule(min_edge_correlation=1.5)


# --------------------------------------------------------------------------- the index
@pytest.mark.parametrize("table_from", [1, 50, 10**9])
def test_phash_index_finds_exactly_the_hashes_within_its_radius(table_from):
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2**63, size=12, dtype=np.uint64)  # clustered, as look-alike scans are
    hashes = []
    for _ in range(3000):
        h = int(centres[rng.integers(len(centres))])
        for bit in rng.choice(64, size=int(rng.integers(0, 14)), replace=False):
            h ^= 1 << int(bit)
        hashes.append(h)
    arr = np.array(hashes, dtype=np.uint64)
    for radius in (0, 3, 6, 10, 13):
        index = PhashIndex(radius, table_from=table_from)
        for i, h in enumerate(hashes):
            if i % 61 == 0:
                entries, dist = index.within(h)
                expected = np.flatnonzero(np.bitwise_count(arr[:i] ^ np.uint64(h)) <= radius)
                assert np.array_equal(entries, expected), (radius, i)
                assert np.array_equal(dist, np.bitwise_count(arr[expected] ^ np.uint64(h)))
            assert index.add(h) == i


def test_near_duplicate_bench_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "near_duplicates.py"), "--sizes", "12", "--copies", "2",
         "--modalities", "chest_xray", "--num-proc", "1", "--index-sizes", "500", "--small-sides", "64", "--small-n", "6", "--small-copies", "2", "--cache", ""],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| chest_xray | 12 | old |" in proc.stdout and "| chest_xray | 12 | new |" in proc.stdout
    assert "| 500 |" in proc.stdout and "| chest_xray | 64 | new |" in proc.stdout


def test_precomputed_edges_give_the_same_decisions_as_thumbnails():
    """ThumbnailEdges (what the build's workers send) and the thumbnail bytes: the same matches, to the bit."""
    from medmat_builder.images.duplicates import ThumbnailEdges

    def run(as_edges: bool) -> tuple[list, DuplicateIndex]:
        index, matches = DuplicateIndex(), []
        for modality in MODALITIES:
            scans = _scans(modality)
            images = list(_loaded(modality)[:12])
            images += [load_image_bytes(lookalike_copy(scans[i], kind).data, f"c{i}")
                       for i in (1, 5) for kind in COPY_KINDS]
            blank = io.BytesIO()
            Image.new("L", (90, 70), 40).save(blank, format="PNG")
            images.append(load_image_bytes(blank.getvalue(), "blank.png"))
            for img in images:
                thumb = ThumbnailEdges.of(img.thumbnail) if as_edges else img.thumbnail
                side = min(img.width, img.height)
                matches.append(index.check(img.pixel_hash, img.phash, thumb, side))
                if matches[-1] is None:
                    index.add(img.pixel_hash, img.phash, thumb, side)
        return matches, index

    (a, ia), (b, ib) = run(False), run(True)
    assert a == b and any(m is not None for m in a)
    for name in ("_fine", "_half", "_stats", "_side"):
        assert np.array_equal(getattr(ia, name), getattr(ib, name)), name
