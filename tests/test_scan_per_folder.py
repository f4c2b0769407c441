"""The scan's per-folder and one-call shortcuts give exactly what the per-file way gives.

Patterns are matched once per folder (:class:`~medmat_builder.layouts.patterns.FolderMatcher`), the records of
one folder share their labels and split, image ids come in one call
(:func:`~medmat_builder.images.hashes.image_ids`) and extensions tested in one call
(:func:`~medmat_builder.layouts.patterns.with_extension`); each is checked here against the per-file way
on tricky paths: junk names, nested copies, unicode, regex characters, upper-case extensions, newlines.
"""

from __future__ import annotations

import itertools
import sys
from types import SimpleNamespace

import pytest

from medmat_builder.build import progress
from medmat_builder.images import UndecodableNameError, image_id
from medmat_builder.images.hashes import image_ids
from medmat_builder.layouts import FileIndex, FoldersLayout
from medmat_builder.layouts.file_index import _matches, _repeated_folder_names, _whole_matches
from medmat_builder.layouts.patterns import (
    IMAGE_EXTENSIONS,
    PathPattern,
    accepted_extensions,
    extension_of,
    with_extension,
)
from medmat_builder.records import RawRecord

SEGMENTS = ["a", "A", "train", "TEST", "val", "Ü", "ü", "a+b", "(c)", "[a]", "x.y", "a b", "x\n", "images", "k.png", ""]
NAMES = ["x.png", "X.PNG", "a_1.png", "b.jpeg", "c.JPG", "noext", ".png", "..png", "x.png\n", "x.jpg.png", "ü_ß.png",
         "a+b.png", "_x.png", "x_.png", "1_2.jpg", "y.txt", "z.Bmp", "(1).tif", "[x].png", "x.tar.gz"]


def _tricky_paths() -> list[str]:
    paths = {"/".join(p) for depth in range(3) for p in itertools.product(SEGMENTS[:8], repeat=depth)}
    paths = {f"{p}/{n}" if p else n for p in paths for n in NAMES}
    paths |= {f"{s}/{n}" for s in SEGMENTS for n in NAMES}  # one level with every segment
    paths |= {"Top/Top/train/a/x.png", "Top/train/a/x.png", "/x.png", "a//x.png", "a/x.png/", "x\n/y.png"}
    return sorted(paths)


PATTERNS = ["{label}/*", "{split}/{label}/*.jpeg", "{label}_*.png", "**/*.png", "{a:.*}/x.png", "*/{label}/{id}_{n}.jpg",
            "{split:train|test}/{label}/*", "images/{id}.png", "{x}/{x}/*", "a+b/(c)/*.PNG", "Ü/{l}/*", "**/{label}/*",
            "{label}/**/*.png", "{g:[^/]+/[^/]+}/*.png", "{g:.*$}/x.png", "{g:.*(?=/x)}/x.png", "*.*", "{id}.*", "*",
            "[a]/{k}.tif", "{label}/{id}", "a/{id:\\d+}.png", "{x}/{x}_*.png", "Top/*/{label}/*"]
#: atomic groups and possessive quantifiers (Python 3.11): they keep what they consumed past the folder's end
ATOMIC = ["{a:(?>.*)}/x.png", "{a:.*+}/x.png", "{a:[^/]++}/*.png"] if sys.version_info >= (3, 11) else []


@pytest.mark.parametrize("pattern", PATTERNS + ATOMIC)
@pytest.mark.parametrize("extensions", [None, IMAGE_EXTENSIONS, (".png",)])
def test_folder_matcher_finds_what_the_whole_pattern_finds(pattern, extensions):
    files = _tricky_paths()
    pat = PathPattern(pattern, extensions)
    for exclude in ([], [PathPattern("*_1.png").regex], [PathPattern("a/*").regex]):
        assert _matches(files, pat, exclude) == _whole_matches(files, pat.regex, exclude)  # paths, order, captures


@pytest.mark.parametrize("pattern", ["{label}/**/*.png", "a/{id:\\d+}.png", "{g:.*$}/x.png", "{g:.*(?=/x)}/x.png",
                                     "{x}/{x}_*.png", "{g:a\\Z}/x.png", *ATOMIC])
def test_patterns_whose_parts_cannot_be_told_apart_match_whole_paths(pattern):
    assert PathPattern(pattern).folder_matcher is None


def test_files_of_one_folder_share_their_captures_in_pattern_order():
    files = ["test/b/1_x.png", "train/a/2_y.png", "train/a/3_z.png", "train/a/sub/4_w.png", "train/a/5_v.png"]
    shared = _matches(files, PathPattern("{split}/{label}/*.png"), [])
    assert shared[1][1] is shared[2][1] is shared[4][1]  # one dict for train/a, also after the sub folder's file
    assert shared[1][1] == {"split": "train", "label": "a"} and shared[3][1] == {"split": "a", "label": "sub"}
    own = _matches(files, PathPattern("{split}/{label}/{id}_{n}.png"), [])
    assert [list(g) for _, g in own] == [["split", "label", "id", "n"]] * 5  # the whole regex's group order
    assert own[1][1] is not own[2][1] and own[1][1] == {"split": "train", "label": "a", "id": "2", "n": "y"}


@pytest.mark.parametrize("extensions", [(), ("png",), (".TIF", "jpg"), ("gz", "tar.gz", "a/b")])
def test_with_extension_is_the_extension_of_filter(extensions):
    paths = _tricky_paths() + ["a/.b.png", "...", ".a.b", "a/b.c/d", "x.", "a/..b.PNG"]
    accepted = accepted_extensions(extensions)
    assert with_extension(paths, accepted) == [p for p in paths if extension_of(p) in accepted]
    pairs = [(p, {}) for p in paths]
    assert with_extension(pairs, accepted, pairs=True) == [(p, g) for p, g in pairs if extension_of(p) in accepted]


def test_image_ids_are_image_id_and_leave_the_other_paths_to_it():
    paths = ["a/x.png", "ü/ß.png", "", "a\\b.png", "./a.png", "/abs.png", "C:/x.png", "bad\udcff.png", "x" * 300]
    got = image_ids("src", paths)
    assert got[:3] == [image_id("src", p) for p in paths[:3]] and got[-1] == image_id("src", paths[-1])
    assert got[3:8] == [None] * 5  # normalised, refused or undecodable by image_id itself
    assert image_id("src", "a\\b.png") == image_id("src", "a/b.png")  # what a None leaves to image_id
    with pytest.raises(UndecodableNameError):
        image_id("src", paths[7])


def _long_way(layout: FoldersLayout, root) -> list[RawRecord]:
    """The folders scan as it was written first: the whole pattern searched in every path, a record at a time."""
    index = FileIndex(root, layout.read_patterns)
    pattern = layout.image_pattern(layout.images)
    out = []
    for path in index.files:
        m = pattern.regex.search(path)
        if m is None or not layout.accepts(path):
            continue
        groups = m.groupdict()
        split, reason, detail = layout.resolve_split(groups.get("split"))
        out.append(RawRecord("src", path, path, (groups["label"],), split=split, drop_reason=reason, detail=detail))
    return out


def test_folders_scan_gives_the_records_of_the_long_way(tmp_path):
    layout = FoldersLayout(kind="folders", images="{split}/{label}/*",
                           split_map={"train": "train", "test": "test", "extra": "drop"})
    rels = ["Top/train/NORMAL/1.png", "Top/train/NORMAL/sub/2.png", "Top/train/NORMAL/3.PNG", "Top/test/x+y/4.jpg",
            "Top/val/Ü/5.tif", "Top/extra/a/6.png", "Top/weird/a/7.png", "Top/train/NORMAL/notes.txt", "8.png",
            "Top/train/NORMAL/.DS_Store", "Top/train/[b]/9.bmp", "Top/Top/train/NORMAL/1.png"]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    got = list(layout.scan(SimpleNamespace(key="src", group_column=None), tmp_path))
    assert got == _long_way(layout, tmp_path)
    assert {r.drop_reason for r in got} == {None, "unused_split", "unknown_split"}


def test_extension_excluded_still_finds_a_sibling_left_out(tmp_path):
    layout = FoldersLayout(kind="folders", images="{label}/*.png")
    for rel in ["a/x.png", "a/x.bmp", "a/y.bmp", "b/z.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    index = FileIndex(tmp_path, layout.read_patterns)
    assert layout.extension_excluded(index) == {"a/x.bmp"}  # the declared .png sibling won
    (tmp_path / "a" / "x.bmp").unlink()
    assert FoldersLayout(kind="folders", images="{label}/*.png").extension_excluded(
        FileIndex(tmp_path, layout.read_patterns)) == set()


def test_repeated_folder_names_count_ancestors():
    assert _repeated_folder_names(["a/x/f.png", "b/x/g.png"])
    assert _repeated_folder_names(["a/b/f.png", "b/g.png"])  # a/b and b
    assert _repeated_folder_names(["X/X/train/f.png"])  # X and X/X
    assert not _repeated_folder_names(["normal/1.png", "benign/2.png", "f.png", "a/b/c/d.png"])


def test_counted_passes_items_through_and_counts_them_when_shown():
    items = [1, 2, 3]
    assert list(progress.counted(items, "scan")) == items
    with progress.showing(True):
        assert list(progress.counted(iter(items), "scan")) == items


def test_walk_folders_are_the_folders_of_its_files(tmp_path):
    from medmat_builder.layouts.file_index import FolderWalk

    for rel in ["r.png", "a/x.png", "a/b/.DS_Store", "a/b/c/y.png", "__MACOSX/a/z.png", "e/.hidden", "Ü/ü.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    for stat in (False, True):
        walk = FolderWalk(tmp_path, stat)
        assert walk.folders == {p.rpartition("/")[0] for p in walk.files} == {"", "a", "a/b/c", "Ü"}


def test_the_collector_is_paused_during_a_scan_only(tmp_path, mini_registry):
    import gc

    from medmat_builder.build.scan import scan_candidates
    from medmat_builder.report import ConfigReport

    subset, source = mini_registry.subset("subset_01"), mini_registry.source("toy_folders")
    seen = []

    def scan(src, root):
        seen.append(gc.isenabled())
        raise RuntimeError("layout failed")

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        scan_candidates(subset, [(source, tmp_path)], ConfigReport(config=subset.name), scan=scan)
    assert seen == [False] and gc.isenabled()  # paused inside, back on after an error too
    gc.disable()
    try:
        assert scan_candidates(subset, [(source, tmp_path)], ConfigReport(config=subset.name), scan=lambda s, r: []) == []
        assert not gc.isenabled()  # a caller's own pause is left as it was
    finally:
        gc.enable()


@pytest.mark.parametrize("suffixes", [(".csv", ".json", ".txt"), (".CSV",), (".nii.gz", ".csv"), ("csv",)])
def test_table_suffixes_are_endswith_of_the_lowered_path(suffixes):
    from medmat_builder.build.file_ledger import _ending_with

    paths = _tricky_paths() + ["a/b.CSV", "a/.csv", "..csv", "x.nii.GZ", "csv", "a.csv/b", "b.json\n", "t.Txt", "ßcsv"]
    assert _ending_with(paths, suffixes) == [p for p in paths if p.lower().endswith(suffixes)]


def test_what_a_build_keeps_alive_is_frozen_until_its_selection_ends(tmp_path, mini_registry):
    """After the scan and split their objects are out of the collector's sight (``gc.freeze``) through the
    fill, given back when the selection ends (an error too); someone else's freeze is left as it was."""
    import gc

    from medmat_builder.build.scan import kept_from_collector

    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with kept_from_collector() as freeze:
            kept = [[i] for i in range(1000)]
            freeze()
            assert gc.get_freeze_count() >= len(kept)
            raise RuntimeError("fill failed")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        with kept_from_collector() as freeze:
            new = [[i] for i in range(1000)]
            freeze()  # not theirs to freeze: these stay in sight
        assert 0 < gc.get_freeze_count() <= theirs and gc.is_tracked(new)
    finally:
        gc.unfreeze()


def test_a_selection_gives_back_what_it_froze(tmp_path, mini_raw, mini_registry, monkeypatch):
    import gc

    from medmat_builder.build import select
    from medmat_builder.build.settings import BuildSettings
    from medmat_builder.build.spool import Spool
    from medmat_builder.report import ConfigReport

    frozen = []
    real_fill = select.Fill

    def fill(*args, **kwargs):
        frozen.append(gc.get_freeze_count())
        return real_fill(*args, **kwargs)

    monkeypatch.setattr(select, "Fill", fill)
    subset = mini_registry.subset("subset_01")
    sources = [(mini_registry.source(k), mini_raw / mini_registry.source(k).folder) for k in subset.sources]
    spool = Spool()
    try:
        select.select_subset(subset, sources, BuildSettings(num_proc=1), ConfigReport(config=subset.name), spool)
    finally:
        spool.close()
    assert frozen and all(n > 0 for n in frozen) and gc.get_freeze_count() == 0
