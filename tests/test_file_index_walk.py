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
