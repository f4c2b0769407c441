"""medmat touches only what it owns (issue 13): --out rules, extraction, raw links, registry bounds.

Every refused case checks that the path is byte-identical afterwards (names, bytes, modes, link targets).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmat_builder.build import BuildError, BuildSettings, build, build_lock
from medmat_builder.cli import main
from medmat_builder.demo import write_demo_sources
from medmat_builder.fetch import ExtractLimits, FetchError, fetch_source, safe_extract
from medmat_builder.layouts.tables import LayoutError
from medmat_builder.registry import RegistryError, parse_registry
from medmat_builder.safe_paths import OwnedFolder, UnsafePathError, claim, read_owner

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "fixtures" / "mini_registry.yaml"


def tree_state(root: Path) -> dict[str, tuple]:
    """Everything below ``root`` (links not followed): mode and bytes of files, targets of links."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", st.st_mode)
            else:
                state[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return state


# --------------------------------------------------------------------------- --out
def _refused_out(case: str, tmp: Path, raw: Path, monkeypatch) -> str:
    """Set up one refused --out case under ``tmp``; return the --out argument."""
    mydocs = tmp / "mydocs"
    mydocs.mkdir()
    (mydocs / "thesis.txt").write_text("four years of work")
    if case == "folder_with_user_files":
        return str(mydocs)
    if case == "regular_file":
        (tmp / "notes.txt").write_text("a file")
        return str(tmp / "notes.txt")
    if case == "data_dir":
        return str(raw)
    if case == "parent_of_data_dir":
        return str(raw.parent)
    if case == "inside_data_dir":
        return str(raw / "export")
    if case == "working_dir":
        monkeypatch.chdir(mydocs)
        return "."
    if case == "parent_of_working_dir":
        (mydocs / "a" / "b").mkdir(parents=True)
        monkeypatch.chdir(mydocs / "a" / "b")
        return str(mydocs / "a")
    if case == "home":
        monkeypatch.setenv("HOME", str(mydocs))
        return "~"
    if case == "other_medmat_kind":
        write_demo_sources(tmp / "demo", parse_registry(MINI.read_text()), per_label=1)
        return str(tmp / "demo")
    if case == "link_to_user_folder":
        (tmp / "link").symlink_to(mydocs, target_is_directory=True)
        return str(tmp / "link")
    if case == "dangling_link":
        (tmp / "link").symlink_to(tmp / "nowhere")
        return str(tmp / "link")
    raise AssertionError(case)


REFUSED_OUT = ["folder_with_user_files", "regular_file", "data_dir", "parent_of_data_dir", "inside_data_dir",
               "working_dir", "parent_of_working_dir", "home", "other_medmat_kind", "link_to_user_folder",
               "dangling_link"]


@pytest.mark.parametrize("case", REFUSED_OUT)
def test_refused_out_exits_2_with_one_line_and_leaves_everything_byte_identical(case, tmp_path, monkeypatch, capsys):
    base = tmp_path / "base"
    base.mkdir()
    raw = base / "raw"
    write_demo_sources(raw, parse_registry(MINI.read_text()), per_label=2)
    out = _refused_out(case, base, raw, monkeypatch)
    capsys.readouterr()
    before = tree_state(tmp_path)
    rc = main(["build", "subset_01", "--data-dir", str(raw), "--out", out, "--registry", str(MINI)])
    printed = capsys.readouterr().err.strip()
    assert rc == 2, printed
    assert printed.startswith("error: --out ") and "\n" not in printed, printed
    assert tree_state(tmp_path) == before


def test_demo_into_a_foreign_data_dir_is_refused_before_anything_is_written(tmp_path, capsys):
    mydocs = tmp_path / "mydocs"
    mydocs.mkdir()
    (mydocs / "thesis.txt").write_text("four years of work")
    before = tree_state(tmp_path)
    rc = main(["build", "--demo", "--data-dir", str(mydocs), "--out", str(tmp_path / "out"), "--registry", str(MINI)])
    printed = capsys.readouterr().err.strip()
    assert rc == 2 and printed.startswith("error: --data-dir") and "did not write" in printed
    assert tree_state(tmp_path) == before


def test_rebuild_keeps_user_files_and_leaves_no_litter_beside(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "out"
    build(["subset_01"], mini_raw, out, registry=mini_registry)
    (out / "notes.txt").write_text("my notes")
    (out / "subset_01" / "analysis.md").write_text("my analysis")
    (tmp_path / "beside.txt").write_text("next to the export")
    res = build(["subset_01", "subset_02"], mini_raw, out, registry=mini_registry, force=True)  # force: subset_01 is unchanged
    assert res.built == ["subset_01", "subset_02"]
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "subset_01" / "analysis.md").read_text() == "my analysis"
    assert sorted(os.listdir(tmp_path)) == ["beside.txt", "out"]  # no lock file, no temporary folder
    owner = read_owner(out)
    assert owner.kind == "export" and "notes.txt" not in owner.files and "subset_02/train-00000-of-00001.parquet" in owner.files
    assert sorted(os.listdir(out / ".medmat")) == ["inputs.json", "lock", "owner.json"]
    assert pq.read_table(out / "subset_02" / "train-00000-of-00001.parquet").num_rows > 0


def test_a_file_medmat_did_not_write_is_never_replaced(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "out"
    build(["subset_01"], mini_raw, out, registry=mini_registry)
    mine = out / "subset_02" / "train-00000-of-00001.parquet"
    mine.parent.mkdir()
    mine.write_bytes(b"my own parquet")
    before = tree_state(out)
    with pytest.raises(UnsafePathError, match="subset_02/train-00000-of-00001.parquet, which it did not write"):
        build(["subset_02"], mini_raw, out, registry=mini_registry)
    assert tree_state(out) == before
    assert mine.read_bytes() == b"my own parquet"


def test_link_and_target_share_one_lock_and_the_link_stays_a_link(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "out"
    link = tmp_path / "link"
    out.mkdir()
    link.symlink_to(out, target_is_directory=True)
    with build_lock(link):
        with pytest.raises(BuildError, match="another medmat build is writing to"):
            build(["subset_02"], mini_raw, out, registry=mini_registry)
    res = build(["subset_02"], mini_raw, link, registry=mini_registry)
    assert res.out == out.resolve()
    assert link.is_symlink() and (out / "build_report.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["link", "out"]


def test_a_commit_killed_half_way_is_finished_by_the_next_lock_holder(tmp_path, monkeypatch):
    owned = claim(tmp_path / "f", "export")
    with owned.lock():
        work = owned.scratch()
        for rel in ("a.txt", "b/c.txt", "b/d.txt"):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(rel)
        calls = []
        real_replace = os.replace

        class Killed(BaseException):
            pass

        def dies_after_one_move(src, dst):
            calls.append(dst)
            if len(calls) == 4:  # the journal, the marker, one file, then the process "dies"
                raise Killed
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", dies_after_one_move)
        with pytest.raises(Killed):
            owned.commit(work)
        monkeypatch.undo()
    assert (tmp_path / "f" / ".medmat" / "commit.json").is_file()
    with OwnedFolder(tmp_path / "f", "export").lock():
        pass
    assert {p: (tmp_path / "f" / p).read_text() for p in ("a.txt", "b/c.txt", "b/d.txt")} == {
        "a.txt": "a.txt", "b/c.txt": "b/c.txt", "b/d.txt": "b/d.txt"}
    assert sorted(os.listdir(tmp_path / "f" / ".medmat")) == ["lock", "owner.json"]
    assert read_owner(tmp_path / "f").files == {"a.txt", "b/c.txt", "b/d.txt"}


def test_publish_dry_run_writes_nothing(mini_export, capsys):
    before = tree_state(mini_export)
    assert main(["publish", str(mini_export), "--repo-id", "org/medmat", "--dry-run", "--registry", str(MINI)]) == 0
    assert tree_state(mini_export) == before


# --------------------------------------------------------------------------- extraction
def _zip(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _tar(files: dict[str, bytes], links: dict[str, str], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


HOSTILE_LINKS = {
    "chain_up_three": {"s": ".", "p.jpg": "s/s/s/../../../etc/passwd"},
    "chain_up_two": {"s": ".", "p.jpg": "s/s/s/../../etc/passwd"},
    "chain_brief": {"s": ".", "p.jpg": "s/s/../../../etc/passwd"},
    "chain_through_dir_link": {"d": "sub/..", "sub/x": "placeholder", "p.jpg": "d/../etc/passwd"},
    "absolute": {"p.jpg": "/etc/passwd"},
    "loop": {"a": "b", "b": "a", "p.jpg": "a/x"},
}


@pytest.mark.parametrize("kind", ["tar", "zip"])
@pytest.mark.parametrize("case", sorted(HOSTILE_LINKS))
def test_hostile_links_are_refused_and_nothing_is_written(case, kind, tmp_path):
    links = dict(HOSTILE_LINKS[case])
    files = {"ok/1.png": b"fine"}
    if "sub/x" in links:
        del links["sub/x"]
        files["sub/x"] = b"x"
    archive = tmp_path / f"a.{kind}"
    archive.write_bytes(_zip(files, links) if kind == "zip" else _tar(files, links))
    before = tree_state(tmp_path)
    with pytest.raises(FetchError, match="refusing symlink"):
        safe_extract(archive, tmp_path / "raw" / "src")
    assert tree_state(tmp_path) == before  # nothing written, not even the folder


class _Zeros(io.RawIOBase):
    """``n`` zero bytes, read without holding them in memory."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_decompression_bomb_is_refused_before_writing(kind, tmp_path):
    """A small archive that unpacks to ~1000 times its size (the default ratio limit is 200; the floor
    under which ratios are not checked is lowered from 100 MiB so that the test stays fast)."""
    size = 16 * 2**20
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as fh:
            for _ in range(size // 2**20):
                fh.write(bytes(2**20))
    else:
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo("zeros.bin")
            info.size = size
            tf.addfile(info, io.BufferedReader(_Zeros(size)))
    assert archive.stat().st_size < size / 500
    before = tree_state(tmp_path)
    with pytest.raises(FetchError, match="decompression bomb.*--max-ratio"):
        safe_extract(archive, tmp_path / "raw" / "src", limits=ExtractLimits(ratio_floor=2**20))
    assert tree_state(tmp_path) == before
    assert ExtractLimits().max_ratio == 200 and ExtractLimits().ratio_floor == 100 * 2**20


def test_member_and_byte_limits_and_raising_them(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar({"a.png": b"1" * 10, "b.png": b"2" * 10, "c.png": b"3" * 10}, {}))
    with pytest.raises(FetchError, match="3 members.*--max-members"):
        safe_extract(archive, tmp_path / "x", limits=ExtractLimits(max_members=2))
    with pytest.raises(FetchError, match="30 bytes.*--max-unpacked-gb"):
        safe_extract(archive, tmp_path / "x", limits=ExtractLimits(max_bytes=29))
    assert not (tmp_path / "x").exists()
    assert safe_extract(archive, tmp_path / "x", limits=ExtractLimits(max_members=3, max_bytes=30)) == [
        "a.png", "b.png", "c.png"]


def test_fetch_cli_passes_the_limit_flags(tmp_path, monkeypatch):
    import medmat_builder.fetch as fetch_pkg  # the command imports fetch_source from it when it runs

    seen = []
    monkeypatch.setattr(fetch_pkg, "fetch_source", lambda src, raw, **kw: seen.append(kw["limits"]) or
                        type("R", (), {"status": "present"})())
    reg = tmp_path / "reg.yaml"
    reg.write_text(_fetch_registry("https://example.org/open.tar.gz"))
    assert main(["fetch", "--data-dir", str(tmp_path / "RAW"), "--registry", str(reg), "--max-unpacked-gb", "2",
                 "--max-members", "7", "--max-ratio", "1000"]) == 0
    assert seen == [ExtractLimits(max_bytes=2 * 2**30, max_members=7, max_ratio=1000.0)]


@pytest.mark.parametrize("kind", ["tar.gz", "zip", "zip_bad_crc"])
def test_corrupt_or_truncated_archive_gives_one_fetch_error_naming_it(kind, tmp_path):
    rng = np.random.default_rng(0)
    files = {f"img/{i}.png": rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes() for i in range(4)}
    data = _zip(files, {}) if kind.startswith("zip") else _tar(files, {}, mode="w:gz")
    if kind == "zip_bad_crc":  # central directory intact, member data damaged
        i = data.index(files["img/1.png"][:64]) if files["img/1.png"][:64] in data else len(data) // 3
        data = data[:i] + bytes(b ^ 0xFF for b in data[i:i + 64]) + data[i + 64:]
    else:
        data = data[: len(data) // 2]
    archive = tmp_path / f"cut.{kind}"
    archive.write_bytes(data)
    before = tree_state(tmp_path)
    with pytest.raises(FetchError) as info:
        safe_extract(archive, tmp_path / "raw" / "src", label="toy: cut")
    msg = str(info.value)
    assert msg.startswith("toy: cut: ") and str(archive) in msg and "corrupt or cut short" in msg and "\n" not in msg
    assert tree_state(tmp_path) == before


def test_unpacking_never_replaces_a_user_file(tmp_path):
    dest = tmp_path / "src"
    dest.mkdir()
    (dest / "mine.txt").write_text("mine")
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar({"img/1.png": b"archive"}, {}))
    before = tree_state(tmp_path)
    with pytest.raises(FetchError, match="did not write"):  # a folder medmat did not unpack
        safe_extract(archive, dest)
    assert tree_state(tmp_path) == before
    (dest / "mine.txt").unlink()
    safe_extract(archive, dest)  # an empty folder is fine
    (dest / "img" / "notes.txt").write_text("kept")
    (dest / "img" / "2.png").write_bytes(b"mine, not the archive's")
    second = tmp_path / "b.tar"
    second.write_bytes(_tar({"img/1.png": b"newer", "img/2.png": b"archive two"}, {}))
    with pytest.raises(FetchError, match="img/2.png, which it did not write"):
        safe_extract(second, dest)
    assert (dest / "img" / "2.png").read_bytes() == b"mine, not the archive's"
    assert (dest / "img" / "1.png").read_bytes() == b"archive"
    (dest / "img" / "2.png").unlink()
    safe_extract(second, dest)  # replaces only what medmat unpacked before
    assert (dest / "img" / "1.png").read_bytes() == b"newer" and (dest / "img" / "notes.txt").read_text() == "kept"


def _fetch_registry(url: str) -> str:
    return textwrap.dedent(f"""
        version: 1
        subsets:
          - name: subset_01
            title: Toy
            modality: X-ray
            area: Chest
            task: State
            task_group: State
            kind: single-label
            paper_distribution: id
            labels: [normal, abnormal]
            instructions: [one, two, three, four, five, six]
            sources: [open_src]
        sources:
          - number: 1
            key: open_src
            name: Open source
            homepage: https://example.org/open
            license: CC-BY-4.0
            access: open
            redistributable: true
            citation: "@misc{{open, title={{Open}}}}"
            subsets: [subset_01]
            obtain: Direct download.
            downloads:
              - url: {url}
                filename: open.tar.gz
                sha256: {"a" * 64}
            layout: {{kind: folders, images: "{{label}}/*.png"}}
            labels: {{normal: normal, abnormal: abnormal}}
        """)


def test_fetch_refuses_a_foreign_source_folder_before_any_download(tmp_path, monkeypatch, capsys):
    import medmat_builder.fetch as fetch_pkg  # the command imports fetch_source from it when it runs

    reg = tmp_path / "reg.yaml"
    reg.write_text(_fetch_registry("https://example.org/open.tar.gz"))
    (tmp_path / "RAW" / "open_src").mkdir(parents=True)
    (tmp_path / "RAW" / "open_src" / "unpacked_by_hand.png").write_bytes(b"mine")
    monkeypatch.setattr(fetch_pkg, "fetch_source", lambda *a, **k: pytest.fail("nothing may be fetched"))
    before = tree_state(tmp_path)
    assert main(["fetch", "--data-dir", str(tmp_path / "RAW"), "--registry", str(reg)]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith("error: open_src: folder") and "unpacked_by_hand.png" in printed and "\n" not in printed
    assert tree_state(tmp_path) == before
    src = parse_registry(reg.read_text()).source("open_src")
    with pytest.raises(FetchError, match="did not write"):
        fetch_source(src, tmp_path / "RAW", log=lambda m: None)


# --------------------------------------------------------------------------- raw links
def test_raw_links_out_of_the_source_folder_are_counted_and_never_opened(tmp_path, mini_raw_copy, mini_registry,
                                                                         monkeypatch):
    from medmat_builder.build import loader

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(secret).save(outside / "secret.jpeg", quality=95)
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    folder = mini_raw_copy / "toy_folders" / "train" / "NORMAL"
    (folder / "alias.jpeg").symlink_to(sorted(folder.iterdir())[0].name)  # stays inside: fine
    (folder / "leak.jpeg").symlink_to(outside / "secret.jpeg")
    (folder / "passwd.jpeg").symlink_to(outside / "passwd")
    (mini_raw_copy / "toy_folders" / "train" / "PNEUMONIA" / "more").symlink_to(outside, target_is_directory=True)
    opened: list[str] = []
    real_load = loader.load_image
    monkeypatch.setattr(loader, "load_image", lambda p: opened.append(os.path.realpath(p)) or real_load(p))

    # one process: the spy on load_image sees every image opened (workers would open them out of its sight)
    res = build(["subset_01"], mini_raw_copy, tmp_path / "out", BuildSettings(num_proc=1), registry=mini_registry)
    conf = res.report.configs["subset_01"]
    led = conf.sources["toy_folders"]
    assert led.dropped["outside_link"] == 2
    assert sorted(ex[0] for ex in led.examples["outside_link"]) == ["train/NORMAL/leak.jpeg",
                                                                         "train/NORMAL/passwd.jpeg"]
    assert opened and not [p for p in opened if p.startswith(str(outside))]
    assert any("links to folders outside its folder are not followed" in w and "train/PNEUMONIA/more" in w
               for w in conf.warnings)
    for f in (tmp_path / "out" / "subset_01").glob("*.parquet"):
        for img in pq.read_table(f, columns=["image"]).column("image").to_pylist():
            pixels = np.asarray(Image.open(io.BytesIO(img["bytes"])).convert("RGB"))
            assert pixels.shape != secret.shape or np.abs(pixels.astype(int) - secret).mean() > 20


def test_a_table_that_links_out_of_the_source_folder_is_not_read(tmp_path, mini_raw_copy, mini_registry):
    table = mini_raw_copy / "toy_table" / "labels.csv"
    elsewhere = tmp_path / "elsewhere.csv"
    table.rename(elsewhere)
    table.symlink_to(elsewhere)
    with pytest.raises(LayoutError, match="source toy_table: labels.csv is a link to .*outside the source folder"):
        build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)


# --------------------------------------------------------------------------- registry bounds
def _mini_with(old: str, new: str) -> str:
    text = MINI.read_text()
    assert text.count(old) == 1, old
    return text.replace(old, new)


FOLDERS_KEY = "    key: toy_folders\n"
BAD_REGISTRIES = {
    "data_dir_up": (FOLDERS_KEY, FOLDERS_KEY + "    data_dir: ../escape\n", "toy_folders: field 'data_dir'"),
    "data_dir_absolute": (FOLDERS_KEY, FOLDERS_KEY + "    data_dir: /tmp/escape\n", "toy_folders: field 'data_dir'"),
    "data_dir_state": (FOLDERS_KEY, FOLDERS_KEY + "    data_dir: a/.medmat\n", "toy_folders: field 'data_dir'"),
    "pattern_up": ('images: "{split}/{label}/*.jpeg"', 'images: "../{split}/{label}/*.jpeg"',
                   "toy_folders: field 'layout.folders.images'"),
    "pattern_absolute": ('images: "{split}/{label}/*.jpeg"', 'images: "/etc/{split}/{label}/*.jpeg"',
                         "toy_folders: field 'layout.folders.images'"),
    "table_up": ('{path: "labels.csv"}', '{path: "../../labels.csv"}', "toy_table: field 'layout.table.tables.0.path'"),
    "split_name": ("split_map: {train: train, val: train, test: test}", "split_map: {train: train, '..': train, test: test}",
                   "toy_folders: field 'layout.folders.split_map"),
    "id_zfill_huge": ("id_zfill: 5", "id_zfill: 1000000000000", "toy_table: field 'layout.table.id_zfill'"),
    "header_row_huge": ('{path: "labels.csv"}', '{path: "labels.csv", header_row: 100000000}',
                        "toy_table: field 'layout.table.tables.0.header_row'"),
}


@pytest.mark.parametrize("case", sorted(BAD_REGISTRIES))
def test_registry_bounds_paths_and_numbers(case, tmp_path, capsys):
    old, new, where = BAD_REGISTRIES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(_mini_with(old, new))
    with pytest.raises(RegistryError, match=f"source {where}"):
        parse_registry(bad.read_text())
    assert main(["sources", "--registry", str(bad), "check"]) == 1
    assert f"source {where}" in capsys.readouterr().err


def test_demo_with_an_escaping_registry_writes_nothing_outside(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text(_mini_with(FOLDERS_KEY, FOLDERS_KEY + "    data_dir: ../escape\n"))
    before = tree_state(tmp_path)
    rc = main(["build", "--demo", "--data-dir", str(work / "raw"), "--out", str(work / "out"), "--registry", str(bad)])
    assert rc == 1 and "data_dir" in capsys.readouterr().err
    assert tree_state(tmp_path) == before
    # A raw label that would become '..' in a demo path: the pattern refuses to fill it.
    label = _mini_with("labels: {NORMAL: Normal, PNEUMONIA: Pneumonia, OTHER: null}",
                       "labels: {NORMAL: Normal, PNEUMONIA: Pneumonia, '..': null}")
    bad.write_text(label)
    rc = main(["build", "--demo", "--data-dir", str(work / "raw"), "--out", str(work / "out"), "--registry", str(bad)])
    printed = capsys.readouterr().err
    assert rc == 2 and "leaves the source folder" in printed
    after = tree_state(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("work/raw")} == {
        k: v for k, v in before.items() if k != "bad.yaml"} | {"bad.yaml": after["bad.yaml"]}
    assert not [k for k in after if k.startswith("work/raw") and ".medmat" not in k and k != "work/raw"]


# --------------------------------------------------------------------------- experiment and trainer output
def test_experiment_refuses_a_foreign_output_dir(tmp_path, capsys):
    from medmat_builder.evaluate.experiments.cli import main as experiment_main

    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({"name": "x", "backbone": str(tmp_path / "model"), "dataset": str(tmp_path / "ds"),
                                "targets": ["subset_28"], "arms": {"Baseline": {}}}))
    mydocs = tmp_path / "mydocs"
    mydocs.mkdir()
    (mydocs / "results.json").write_text("my own results")
    before = tree_state(tmp_path)
    assert experiment_main([str(spec), "--output_dir", str(mydocs)]) == 2
    assert "did not write" in capsys.readouterr().out
    assert tree_state(tmp_path) == before


def test_trainer_refuses_a_foreign_output_dir_and_accepts_its_own(tmp_path, capsys):
    pytest.importorskip("trl")
    from medmat_builder import train as sft
    mydocs = tmp_path / "mydocs"
    mydocs.mkdir()
    (mydocs / "checkpoint-5").mkdir()
    (mydocs / "checkpoint-5" / "precious.bin").write_bytes(b"not the Trainer's")

    def args(out: Path):
        return sft.parse_args(["--config", str(REPO / "training" / "recipes" / "tiny_cpu.yaml"),
                               "--output_dir", str(out), "--dataset_name", str(tmp_path / "ds"),
                               "--model_name_or_path", str(tmp_path / "model")])

    before = tree_state(tmp_path)
    script_args, training_args, _ = args(mydocs)
    with pytest.raises(SystemExit) as info:
        sft.claim_output_dir(script_args, training_args)
    assert info.value.code == 2 and "did not write" in capsys.readouterr().err
    assert tree_state(tmp_path) == before
    script_args, training_args, _ = args(tmp_path / "run")
    sft.claim_output_dir(script_args, training_args)
    sft.claim_output_dir(script_args, training_args)  # a rerun into its own folder is fine
    assert read_owner(tmp_path / "run").kind == "training"
