"""medmat fetch: resumable, sha256-checked downloads from a local HTTP server; safe zip/tar extraction."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import tarfile
import textwrap
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from medmat_builder.cli import fetch as fetch_cmd
from medmat_builder.cli.main import main as medmat
from medmat_builder.fetch import FetchError, download, fetch_source, safe_extract
from medmat_builder.registry import Download

PAYLOAD = bytes((i * 7 + i // 251) % 256 for i in range(300_000))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- local server
class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    behaviour: dict[str, str] = {}
    log: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.log.append((self.path, self.headers.get("Range")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        mode = self.behaviour.get(self.path, "")
        rng = self.headers.get("Range")
        start = 0
        if rng and mode != "no_range":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop_once" and start == 0:
            # promise everything, send a third, hang up
            self.behaviour[self.path] = ""
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files, _Handler.behaviour, _Handler.log = {}, {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield SimpleNamespace(base=base, files=_Handler.files, behaviour=_Handler.behaviour, log=_Handler.log)
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- download
def test_download_verifies_and_renames(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD), source="src")
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["a.bin"]


def test_sha256_mismatch_names_source_and_both_hashes_and_leaves_nothing(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    wrong = "0" * 64
    with pytest.raises(FetchError) as info:
        download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=wrong, source="kvasir_v2")
    msg = str(info.value)
    assert "kvasir_v2" in msg and wrong in msg and sha(PAYLOAD) in msg
    assert _leftovers(tmp_path) == []


def test_resume_from_partial_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:100_000])
    download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD), source="src")
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.log == [("/a.bin", "bytes=100000-")]


def test_dropped_connection_is_resumed_in_the_same_call(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.behaviour["/a.bin"] = "drop_once"
    messages: list[str] = []
    download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD), source="src", log=messages.append)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.log[0] == ("/a.bin", None)
    assert server.log[1][1] == f"bytes={len(PAYLOAD) // 3}-"
    assert any("resuming" in m for m in messages)


def test_server_without_range_support_restarts(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.behaviour["/a.bin"] = "no_range"
    (tmp_path / "a.bin.part").write_bytes(b"garbage" * 10)
    download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD), source="src")
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_complete_partial_file_gets_416_and_is_verified(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    download(f"{server.base}/a.bin", tmp_path / "a.bin", sha256=sha(PAYLOAD), source="src")
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_http_error_and_bad_scheme(server, tmp_path):
    with pytest.raises(FetchError, match="404"):
        download(f"{server.base}/missing.zip", tmp_path / "m.zip", sha256=None, source="src")
    with pytest.raises(FetchError, match="not http"):
        download("file:///etc/passwd", tmp_path / "p", sha256=None, source="src")
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- archives
def _zip(entries: list[tuple[str, bytes]], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
            else:
                tf.addfile(m)
    return buf.getvalue()


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def test_zip_and_tar_extract(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip([("top/train/NORMAL/1.png", b"x"), ("top/test/PNEUMONIA/2.png", b"y")],
                       links={"top/latest": "train"}))
    names = safe_extract(z, tmp_path / "out")
    assert "top/train/NORMAL/1.png" in names
    assert (tmp_path / "out/top/train/NORMAL/1.png").read_bytes() == b"x"
    assert (tmp_path / "out/top/latest/NORMAL/1.png").read_bytes() == b"x"  # internal link is fine
    t = tmp_path / "b.tar.gz"
    t.write_bytes(_tar([("data/img/3.jpg", b"z"), _special("data/img/copy.jpg", tarfile.LNKTYPE, "data/img/3.jpg")]))
    safe_extract(t, tmp_path / "out")  # merges into the existing folder
    assert (tmp_path / "out/data/img/copy.jpg").read_bytes() == b"z"
    assert not (tmp_path / "out/data/img/copy.jpg").is_symlink()
    assert (tmp_path / "out/top/train/NORMAL/1.png").exists()


UNSAFE_ZIPS = {
    "dotdot": [("ok.txt", b"1"), ("../evil.txt", b"2")],
    "absolute": [("ok.txt", b"1"), ("/tmp/medmat_evil.txt", b"2")],
    "backslash": [("ok.txt", b"1"), ("..\\..\\evil.txt", b"2")],
    "drive": [("ok.txt", b"1"), ("C:/evil.txt", b"2")],
    "nested_dotdot": [("a/b/../../../evil.txt", b"2")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIPS))
def test_unsafe_zip_members_are_refused_and_nothing_is_written(tmp_path, case):
    z = tmp_path / f"{case}.zip"
    z.write_bytes(_zip(UNSAFE_ZIPS[case]))
    out = tmp_path / "raw" / "src"
    with pytest.raises(FetchError) as info:
        safe_extract(z, out)
    assert "refusing" in str(info.value)
    assert not out.exists() or _leftovers(out) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "raw" / "evil.txt").exists()
    assert not Path("/tmp/medmat_evil.txt").exists()
    assert not any((tmp_path / "raw" / ".medmat" / "tmp").glob("*")), "temporary folder cleaned up"


def test_zip_symlink_escaping_is_refused(tmp_path):
    z = tmp_path / "l.zip"
    z.write_bytes(_zip([("ok.txt", b"1")], links={"passwd": "../../../../etc/passwd"}))
    with pytest.raises(FetchError, match="symlink"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() or _leftovers(tmp_path / "out") == []


UNSAFE_TARS = {
    "dotdot": lambda: [("ok.txt", b"1"), ("../evil.txt", b"2")],
    "absolute": lambda: [("/tmp/medmat_evil.txt", b"2")],
    "symlink_abs": lambda: [_special("etc", tarfile.SYMTYPE, "/etc")],
    "symlink_up": lambda: [_special("sub/up", tarfile.SYMTYPE, "../..")],
    "symlink_then_write": lambda: [_special("link", tarfile.SYMTYPE, ".."), ("link/evil.txt", b"2")],
    "hardlink_out": lambda: [_special("pw", tarfile.LNKTYPE, "../../etc/passwd")],
    "chardev": lambda: [_special("null", tarfile.CHRTYPE)],
    "blockdev": lambda: [_special("sda", tarfile.BLKTYPE)],
    "fifo": lambda: [("ok.txt", b"1"), _special("pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_members_are_refused_and_nothing_is_written(tmp_path, case):
    t = tmp_path / f"{case}.tar"
    t.write_bytes(_tar(UNSAFE_TARS[case](), mode="w"))
    out = tmp_path / "raw" / "src"
    with pytest.raises(FetchError) as info:
        safe_extract(t, out)
    assert "refusing" in str(info.value)
    assert not out.exists() or _leftovers(out) == []
    assert not (tmp_path / "raw" / "evil.txt").exists() and not Path("/tmp/medmat_evil.txt").exists()


def test_not_an_archive(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"this is not an archive")
    with pytest.raises(FetchError, match="not a zip or tar"):
        safe_extract(p, tmp_path / "out")


# --------------------------------------------------------------------------- per source
def _source(key: str, downloads: list[Download], **kw) -> SimpleNamespace:
    base = dict(key=key, name=f"Test source {key}", homepage="https://example.org", access="open",
                obtain="Log in at https://example.org and download archive.zip.", folder=key, downloads=downloads)
    base.update(kw)
    return SimpleNamespace(**base)


def test_fetch_source_downloads_verifies_extracts_and_is_idempotent(server, tmp_path):
    archive = _zip([("Dataset/train/benign/1.png", b"p1"), ("Dataset/test/malignant/2.png", b"p2")])
    server.files["/ds.zip"] = archive
    server.files["/labels.csv"] = b"id,label\n1,benign\n"
    src = _source("toy", [Download(url=f"{server.base}/ds.zip", filename="ds.zip", sha256=sha(archive)),
                          Download(url=f"{server.base}/labels.csv", filename="labels.csv",
                                   sha256=sha(b"id,label\n1,benign\n"), extract=False)])
    raw = tmp_path / "RAW"
    res = fetch_source(src, raw, log=lambda m: None)
    assert res.status == "fetched"
    assert (raw / "toy/Dataset/train/benign/1.png").read_bytes() == b"p1"
    assert (raw / "toy/labels.csv").read_bytes().startswith(b"id,label")
    assert not any(p.name.endswith(".part") for p in raw.rglob("*"))
    n = len(server.log)
    again = fetch_source(src, raw, log=lambda m: None)
    assert again.status == "present" and len(server.log) == n  # nothing downloaded twice


def test_fetch_source_mismatch_leaves_no_file(server, tmp_path):
    server.files["/ds.zip"] = _zip([("a.png", b"1")])
    src = _source("toy", [Download(url=f"{server.base}/ds.zip", filename="ds.zip", sha256="f" * 64)])
    with pytest.raises(FetchError, match="toy.*sha256 mismatch"):
        fetch_source(src, tmp_path / "RAW", log=lambda m: None)
    assert _leftovers(tmp_path / "RAW") == []


def test_unpinned_download_needs_opt_in(server, tmp_path):
    server.files["/ds.zip"] = data = _zip([("a.png", b"1")])
    src = _source("toy", [Download(url=f"{server.base}/ds.zip", filename="ds.zip")])
    with pytest.raises(FetchError, match="--allow-unpinned"):
        fetch_source(src, tmp_path / "RAW", log=lambda m: None)
    assert server.log == []
    messages: list[str] = []
    fetch_source(src, tmp_path / "RAW", allow_unpinned=True, log=messages.append)
    assert any(sha(data) in m for m in messages)
    assert (tmp_path / "RAW/toy/a.png").exists()


def test_manual_source_returns_its_steps(tmp_path):
    res = fetch_source(_source("kaggle_thing", [], access="registration"), tmp_path)
    assert res.status == "manual"
    assert "Log in at https://example.org" in res.message and str(tmp_path / "kaggle_thing") in res.message


def test_unsafe_download_filename_is_refused(server, tmp_path):
    with pytest.raises(ValueError, match="plain file name"):  # the registry schema refuses it first
        Download(url=f"{server.base}/x", filename="../x", sha256="a" * 64)
    src = _source("toy", [Download.model_construct(url=f"{server.base}/x", filename="../x", sha256="a" * 64,
                                                   extract=True)])
    with pytest.raises(FetchError, match="plain file name"):
        fetch_source(src, tmp_path, log=lambda m: None)


# --------------------------------------------------------------------------- command line
def make_parser() -> argparse.ArgumentParser:
    """The subcommand as the CLI wires it (``cli.py`` registers every command this way)."""
    parser = argparse.ArgumentParser(prog="medmat")
    fetch_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


REGISTRY = """
version: 1
subsets:
  - name: subset_01
    title: Toy classification
    modality: X-ray
    area: Chest
    task: State
    task_group: State
    kind: single-label
    paper_distribution: id
    labels: [normal, abnormal]
    instructions: [one, two, three, four, five, six]
    sources: [open_src, manual_src]
sources:
  - number: 1
    key: open_src
    name: Open source
    homepage: https://example.org/open
    license: CC-BY-4.0
    access: open
    redistributable: true
    citation: "@misc{open, title={Open}}"
    subsets: [subset_01]
    obtain: Direct download.
    downloads:
      - url: {base}/open.tar.gz
        filename: open.tar.gz
        sha256: {sha}
    layout: {kind: folders, images: "{label}/*.png"}
    labels: {normal: normal, abnormal: abnormal}
  - number: 2
    key: manual_src
    name: Manual source
    homepage: https://example.org/manual
    license: CC-BY-NC-4.0
    access: registration
    redistributable: false
    citation: "@misc{manual, title={Manual}}"
    subsets: [subset_01]
    obtain: Create an account at https://example.org/manual and request access.
    layout: {kind: folders, images: "{label}/*.png"}
    labels: {normal: normal, abnormal: abnormal}
"""


def _registry(tmp_path: Path, base: str, archive: bytes) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(textwrap.dedent(REGISTRY).replace("{base}", base).replace("{sha}", sha(archive)))
    return p


def test_cli_fetch_all(server, tmp_path, capsys):
    archive = _tar([("normal/1.png", b"n"), ("abnormal/2.png", b"a")])
    server.files["/open.tar.gz"] = archive
    reg = _registry(tmp_path, server.base, archive)
    args = make_parser().parse_args(["fetch", "--data-dir", str(tmp_path / "RAW"), "--registry", str(reg)])
    assert args.func is fetch_cmd.run
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "RAW/open_src/normal/1.png").read_bytes() == b"n"
    assert "Create an account at https://example.org/manual" in out
    assert "need manual steps: 1" in out


def test_cli_fetch_failure_and_unknown_key(server, tmp_path, capsys):
    archive = _tar([("normal/1.png", b"n")])
    server.files["/open.tar.gz"] = archive + b"tampered"
    reg = _registry(tmp_path, server.base, archive)
    parser = make_parser()
    rc = fetch_cmd.run(parser.parse_args(["fetch", "open_src", "--data-dir", str(tmp_path / "RAW"),
                                          "--registry", str(reg)]))
    err = capsys.readouterr().err  # errors go to stderr
    assert rc == 1 and "sha256 mismatch" in err and "open_src" in err
    assert not (tmp_path / "RAW" / "open_src").exists()
    rc = medmat(["fetch", "nope", "--data-dir", str(tmp_path / "RAW"), "--registry", str(reg)])
    assert rc == 2 and "unknown source 'nope'" in capsys.readouterr().err


def test_no_partial_files_visible_to_readers(server, tmp_path):
    """While a download is in progress its bytes live under RAW/.medmat, never in the source folder."""
    server.files["/ds.zip"] = _zip([("a.png", b"1")])
    src = _source("toy", [Download(url=f"{server.base}/ds.zip", filename="ds.zip", sha256="e" * 64)])
    with pytest.raises(FetchError):
        fetch_source(src, tmp_path / "RAW", log=lambda m: None)
    assert not (tmp_path / "RAW" / "toy").exists()
    assert os.listdir(tmp_path / "RAW") == [".medmat"]


# --------------------------------------------------------------------------- md5 (Zenodo, figshare, Mendeley) and hand downloads
def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_verifies_md5_too(server, tmp_path):
    server.files["/z.zip"] = PAYLOAD
    out = download(f"{server.base}/z.zip", tmp_path / "z.zip", sha256=None, md5=md5(PAYLOAD), source="zen")
    assert out.read_bytes() == PAYLOAD
    with pytest.raises(FetchError, match=f"zen: y.zip: md5 mismatch: expected {'0' * 32}, got {md5(PAYLOAD)}"):
        download(f"{server.base}/z.zip", tmp_path / "y.zip", sha256=sha(PAYLOAD), md5="0" * 32, source="zen")
    assert _leftovers(tmp_path) == ["z.zip"]


def test_fetch_source_with_only_an_md5_pinned_needs_no_opt_in(server, tmp_path):
    archive = _zip([("Dataset/a.png", b"1")])
    server.files["/ds.zip"] = archive
    src = _source("zen", [Download(url=f"{server.base}/ds.zip", filename="ds.zip", md5=md5(archive))])
    assert fetch_source(src, tmp_path / "RAW", log=lambda m: None).status == "fetched"
    marker = json.loads((tmp_path / "RAW/.medmat/done/zen/ds.zip.json").read_text())
    assert marker == {"url": f"{server.base}/ds.zip", "md5": md5(archive)}
    n = len(server.log)
    assert fetch_source(src, tmp_path / "RAW", log=lambda m: None).status == "present" and len(server.log) == n
    repinned = _source("zen", [Download(url=f"{server.base}/ds.zip", filename="ds.zip", md5="1" * 32)])
    with pytest.raises(FetchError, match="md5 mismatch"):  # the marker no longer matches: fetched and checked again
        fetch_source(repinned, tmp_path / "RAW", log=lambda m: None)


def test_check_files_downloaded_by_hand(tmp_path):
    from medmat_builder.fetch import check_files

    good, other = tmp_path / "SICAPv2.zip", tmp_path / "renamed.zip"
    good.write_bytes(PAYLOAD)
    other.write_bytes(PAYLOAD)
    bad = tmp_path / "labels.csv"
    bad.write_bytes(b"truncated")
    loose = tmp_path / "extra.zip"
    loose.write_bytes(b"x")
    src = _source("s", [Download(url="https://example.org/a", filename="SICAPv2.zip", md5=md5(PAYLOAD)),
                        Download(url="https://example.org/b", filename="labels.csv", sha256=sha(b"full file")),
                        Download(url="https://example.org/c", filename="extra.zip")])
    res = check_files(src, [good, other, bad, loose, tmp_path / "nope.zip", tmp_path / "x.bin"])
    assert [(r.status, r.download) for r in res] == [
        ("verified", "SICAPv2.zip"), ("verified", "SICAPv2.zip"), ("mismatch", "labels.csv"),
        ("unpinned", "extra.zip"), ("missing", None), ("missing", None)]
    assert f"sha256 mismatch: expected {sha(b'full file')}, got {sha(b'truncated')}" in res[2].message
    assert md5(b"x") in res[3].message and "pin one" in res[3].message
    (tmp_path / "x.bin").write_bytes(b"?")
    assert check_files(src, [tmp_path / "x.bin"])[0].status == "unknown"


def test_cli_fetch_check(server, tmp_path, capsys):
    archive = _tar([("normal/1.png", b"n")])
    reg = _registry(tmp_path, server.base, archive)
    (tmp_path / "open.tar.gz").write_bytes(archive)
    (tmp_path / "other.tar.gz").write_bytes(archive + b"!")
    parser = make_parser()
    rc = fetch_cmd.run(parser.parse_args(["fetch", "--check", str(tmp_path / "open.tar.gz"), "--registry", str(reg)]))
    out = capsys.readouterr().out
    assert rc == 0 and "ok: open.tar.gz: sha256 verified (open.tar.gz of open_src)" in out
    assert server.log == []  # nothing downloaded
    rc = fetch_cmd.run(parser.parse_args(["fetch", "open_src", "--check", str(tmp_path / "other.tar.gz"),
                                          "--registry", str(reg)]))
    out = capsys.readouterr().out
    assert rc == 1 and "FAILED: other.tar.gz: not a download of open_src by name or checksum" in out
    rc = medmat(["fetch", "--registry", str(reg)])
    assert rc == 2 and "give --data-dir RAW" in capsys.readouterr().err
