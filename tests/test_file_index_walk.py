"""The source-folder walk: one ``os.scandir`` walk per folder and build scan, links recorded, results unchanged."""

from __future__ import annotations

import os

import pytest

from medmat_builder.layouts import FileIndex, shared_indexes
from medmat_builder.layouts.patterns import PathPattern, _extension, accepts_image


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "src"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "__MACOSX").mkdir()
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "a" / "deep" / "y.JPG").write_bytes(b"y")
    (root / "a" / ".DS_Store").write_bytes(b"")
    (root / "__MACOSX" / "x.png").write_bytes(b"junk")
    (root / "a" / "alias.png").symlink_to("x.png")
    (tmp_path / "outside").mkdir()
    (root / "elsewhere").symlink_to(tmp_path / "outside", target_is_directory=True)
    return root


def test_walk_lists_files_and_links_like_os_walk(tree):
    index = FileIndex(tree)
    assert index.all_files == ["a/alias.png", "a/deep/y.JPG", "a/x.png"]
    assert index.folder_links == ["elsewhere"]
    assert index.file_links == {"a/alias.png"}
    assert index.plain_file("a/x.png") and index.plain_file("a/deep/y.JPG")
    assert not index.plain_file("a/alias.png")  # a link: the build resolves it before reading
    assert not index.plain_file("a/missing.png") and not index.plain_file("__MACOSX/x.png")


def test_indexes_of_one_folder_share_one_walk_inside_a_scan(tree, monkeypatch):
    calls = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: calls.append(p) or real(p))
    prefer = [PathPattern("a/*.png")]
    with shared_indexes():
        first = FileIndex.of(tree, prefer)
        assert FileIndex.of(tree, prefer) is first
        other = FileIndex.of(tree)  # other preferred patterns: another index, the same walk
        assert other is not first
        assert other.all_files == first.all_files and other.folder_links == ["elsewhere"]
    walks = len(calls)
    assert walks == 3  # src, src/a, src/a/deep: each folder listed once for both indexes
    assert FileIndex.of(tree) is not FileIndex.of(tree)  # outside the block nothing is kept


@pytest.mark.parametrize("path", ["a.png", "a/.png", "a/..b.PNG", "a.", "x", "a/b.c/d", ".a.b", "a/b.tar.gz", "..."])
def test_extension_is_splitext_of_the_name(path):
    assert _extension(path) == os.path.splitext(path)[1].lower()


def test_accepts_image_with_and_without_a_list():
    assert accepts_image("a/b.JPG") and not accepts_image("a/b.csv")
    assert accepts_image("a/b.PNG", ["png"]) and not accepts_image("a/b.jpg", ["png", ".TIF"])
    assert accepts_image("a/b.tif", ["png", ".TIF"])


def _listing_by_os_walk(folder):
    """The resume listing as it was first written (os.walk and an lstat per entry): the reference."""
    import hashlib

    rows = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel = os.path.relpath(dirpath, folder)
        for name in (*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))):
            st = os.lstat(os.path.join(dirpath, name))
            key = os.path.normpath(os.path.join(rel, name)).encode("utf-8", "surrogateescape")
            rows.append(b"%s\0%d\0%d" % (key, st.st_size, st.st_mtime_ns))
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(row + b"\n")
    return h.hexdigest()


def test_resume_listing_covers_every_entry_like_os_walk(tree):
    from medmat_builder.build.resume import folder_listing

    (tree / "a" / "broken.png").symlink_to("nowhere.png")
    (tree / ".medmat").mkdir()
    (tree / ".medmat" / "x").write_bytes(b"scratch")
    before = folder_listing(tree)
    assert before == _listing_by_os_walk(tree)  # junk, links and broken links included, links not followed
    os.utime(tree / "__MACOSX" / "x.png", ns=(0, 10**9))  # a change under a junk folder still counts
    assert folder_listing(tree) != before and folder_listing(tree) == _listing_by_os_walk(tree)


def test_resume_listing_and_the_scan_share_one_walk(tree, monkeypatch):
    from medmat_builder.build.resume import folder_listing

    calls = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: calls.append(p) or real(p))
    with shared_indexes():
        listing = folder_listing(tree)
        index = FileIndex.of(tree, [PathPattern("a/*.png")])
        assert index.all_files == ["a/alias.png", "a/deep/y.JPG", "a/x.png"] and index.folder_links == ["elsewhere"]
        assert folder_listing(tree) == listing
    assert len(calls) == 4  # src, a, a/deep and __MACOSX (the listing covers junk too), once each


def test_matches_are_worked_out_once_per_index(tree):
    index = FileIndex(tree)
    pattern = PathPattern("**/*.png")
    first = index.matches(pattern)
    assert [p for p, _ in first] == ["a/alias.png", "a/x.png"]
    assert index.matches(PathPattern("**/*.png")) is first  # the same regex: the same list
    assert [p for p, _ in index.matching(pattern, [PathPattern("alias.png")])] == ["a/x.png"]
