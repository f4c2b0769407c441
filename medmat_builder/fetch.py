"""Download the sources that have a direct open download, check them, unpack them safely.

For each ``Source.downloads`` entry (``url``, ``filename``, ``sha256`` and/or ``md5``, ``extract``):

1. download to ``RAW/.medmat/downloads/<key>/<filename>.part``, resuming with an HTTP ``Range``
   request when a partial file is there (also after a dropped connection, a few times per call);
2. check every pinned checksum (sha256, and md5 as Zenodo, figshare and Mendeley Data publish it)
   *before* anything uses the file. A mismatch deletes the partial file and raises
   :class:`FetchError` naming the source, the algorithm and both values; only a verified file is
   renamed (atomic ``os.replace``) to its final name, so no corrupt file is ever left where it could be used;
3. ``extract: true``: unpack the zip or tar into ``RAW/<folder>/`` after checking *every* member
   first: absolute paths, ``..``, drive letters, device files, FIFOs and sockets are refused; every
   symlink target is resolved through the archive's own links (and links already in the folder) and
   refused when it is absolute, climbs above the folder at any step (``s -> .`` plus
   ``p -> s/s/../../x``), or loops; no member may be written through a link; a hard link must name a
   file of the archive (it becomes a copy). An archive over :class:`ExtractLimits` (total unpacked
   bytes, member count, unpacked/packed ratio) is refused as a likely bomb, and a corrupt or truncated
   one gives a :class:`FetchError` naming it. Nothing is written when one member is unsafe. Members
   are unpacked into ``RAW/<folder>/.medmat/tmp-*`` and then moved in; permissions and owners from
   the archive are ignored. ``extract: false``: the verified file is moved to ``RAW/<folder>/<filename>``.

``RAW/<folder>/`` must be new, empty or a folder ``medmat fetch`` unpacked before (its marker
``.medmat/owner.json`` lists the files medmat put there); anything else is refused before any
download (:mod:`medmat_builder.safe_paths`). A file in it that medmat did not put there is never
replaced or removed: unpacking that would do so is refused, naming the file.

A download without any pinned checksum is refused unless ``allow_unpinned=True`` (the hashes are
then printed so that a maintainer can pin them). Sources without downloads (login, application,
Kaggle) get their ``obtain`` steps printed instead; see :func:`obtain_steps`. An archive downloaded
by hand is checked against whatever the registry pins with :func:`check_files`
(``medmat fetch KEY --check FILE ...``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import lzma
import os
import shutil
import socket
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from medmat_builder import __version__, safe_paths

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.registry import Download, Source

STATE_DIR = ".medmat"
CHUNK = 1 << 20
USER_AGENT = f"medmat/{__version__} (+https://github.com/; dataset fetcher)"

Log = Callable[[str], None]


class FetchError(RuntimeError):
    """A download or an archive that cannot be used; the message says which source and what to do."""


@dataclass
class FetchResult:
    """What happened to one source."""

    key: str
    status: Literal["fetched", "present", "manual", "failed"]
    files: list[Path] = field(default_factory=list)
    message: str = ""


# --------------------------------------------------------------------------- hashing
#: The checksum algorithms a registry download may pin, strongest first.
ALGORITHMS = ("sha256", "md5")


def file_hashes(path: Path) -> dict[str, str]:
    """sha256 and md5 of a file, read once in chunks."""
    hashes = {name: hashlib.new(name) for name in ALGORITHMS}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    return file_hashes(path)["sha256"]


def pinned(dl: "Download") -> dict[str, str]:
    """The checksums the registry pins for a download (algorithm -> lower-case hex)."""
    return {name: getattr(dl, name).lower() for name in ALGORITHMS if getattr(dl, name, None)}


def mismatches(actual: dict[str, str], expected: dict[str, str]) -> list[str]:
    """``"md5: expected X, got Y"`` for every pinned checksum the file does not have."""
    return [f"{name} mismatch: expected {want}, got {actual[name]}" for name, want in expected.items()
            if actual[name] != want]


# --------------------------------------------------------------------------- download
def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    md5: str | None = None,
    source: str = "?",
    retries: int = 3,
    timeout: float = 60.0,
    log: Log | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``sha256`` and ``md5``, rename into place.

    A checksum given as ``None`` is not verified (with neither, the caller decided that). Raises
    :class:`FetchError` on a mismatch (the partial file is deleted) or when the server keeps
    failing after ``retries`` resumed attempts.
    """
    log = log or (lambda _msg: None)
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{source}: download URL {url!r} is not http(s); fix its entry in sources.yaml")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout=timeout, log=log)
            break
        except _Incomplete as exc:  # connection dropped: resume from what arrived
            last_error = exc
            log(f"{source}: {dest.name}: {exc}; resuming ({attempt + 1}/{retries})")
        except FetchError:
            raise
    else:
        raise FetchError(
            f"{source}: {dest.name}: download from {url} kept failing ({last_error}); "
            f"run `medmat fetch {source}` again to resume from {part.stat().st_size if part.exists() else 0} bytes"
        )
    expected = {name: v.lower() for name, v in (("sha256", sha256), ("md5", md5)) if v}
    wrong = mismatches(file_hashes(part), expected) if expected else []
    if wrong:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{source}: {dest.name}: {'; '.join(wrong)}. "
            f"The download was deleted. If the upstream file changed on purpose, update the pinned checksum "
            f"in sources.yaml after checking it; otherwise run `medmat fetch {source}` again."
        )
    os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    pass


def _download_once(url: str, part: Path, *, timeout: float, log: Log) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - scheme checked by caller
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise _Incomplete(f"cannot connect ({getattr(exc, 'reason', exc)})") from None
    with resp:
        status = resp.status
        mode = "ab"
        if have and status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Incomplete(f"server resumed at byte {start}, not {have}; starting over")
        elif status == 200:
            if have:
                log(f"{url}: server does not resume; starting over")
            mode, have = "wb", 0
        else:
            raise FetchError(f"{url}: unexpected HTTP status {status}")
        length = resp.headers.get("Content-Length")
        expected_total = have + int(length) if length and length.isdigit() else None
        got = have
        try:
            with open(part, mode) as fh:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    got += len(block)
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, socket.timeout)) and exc.errno:
                raise FetchError(f"cannot write {part}: {exc.strerror}") from None
            raise _Incomplete(f"connection dropped after {got} bytes") from None
        if expected_total is not None and got < expected_total:
            raise _Incomplete(f"connection dropped after {got} of {expected_total} bytes")


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


# --------------------------------------------------------------------------- safe extraction
@dataclass(frozen=True)
class ExtractLimits:
    """What one archive may unpack to; an archive over a limit is refused before anything is written.

    ``max_ratio`` (unpacked bytes / archive bytes) applies once the unpacked size passes
    ``ratio_floor`` (small archives of text compress well and are harmless). Raise them with
    ``medmat fetch --max-unpacked-gb / --max-members / --max-ratio``.
    """

    max_bytes: int = 256 * 2**30
    max_members: int = 2_000_000
    max_ratio: float = 200.0
    ratio_floor: int = 100 * 2**20


MAX_LINK_DEPTH = 40
#: First bytes of zip, gzip, bzip2 and xz files: such a file that cannot be read is damaged, not a non-archive.
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
                   lzma.LZMAError, gzip.BadGzipFile, NotImplementedError)


def _clean_member_name(name: str, archive: str) -> str:
    """Validate an archive member name and return it as a normalised relative POSIX path."""
    raw = name.replace("\\", "/")
    if not raw or "\x00" in raw:
        raise FetchError(f"{archive}: refusing member with an empty or NUL-containing name")
    if raw.startswith("/") or (len(raw) >= 2 and raw[1] == ":"):
        raise FetchError(f"{archive}: refusing member {name!r}: absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise FetchError(f"{archive}: refusing member {name!r}: '..' leaves the extraction folder")
    if parts and parts[0] == STATE_DIR:
        raise FetchError(f"{archive}: refusing member {name!r}: {STATE_DIR}/ is medmat's own folder")
    return "/".join(parts)


@dataclass
class _Member:
    name: str
    kind: Literal["file", "dir", "symlink", "hardlink"]
    size: int = 0
    target: str = ""
    ref: object = None


def _plan_zip(zf: zipfile.ZipFile, archive: str) -> list[_Member]:
    plan = []
    for info in zf.infolist():
        name = _clean_member_name(info.filename, archive)
        mode = (info.external_attr >> 16) & 0xFFFF
        ftype = stat.S_IFMT(mode)
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise FetchError(f"{archive}: refusing member {info.filename!r}: special file (device, FIFO or socket)")
        if not name:
            continue
        if info.is_dir() or ftype == stat.S_IFDIR:
            plan.append(_Member(name, "dir"))
        elif ftype == stat.S_IFLNK:
            if info.file_size > 4096:
                raise FetchError(f"{archive}: refusing symlink {info.filename!r}: its target is {info.file_size} bytes long")
            target = zf.read(info).decode("utf-8", "replace")
            plan.append(_Member(name, "symlink", target=target))
        else:
            plan.append(_Member(name, "file", size=info.file_size, ref=info))
    return plan


def _plan_tar(tf: tarfile.TarFile, archive: str) -> list[_Member]:
    plan = []
    for m in tf.getmembers():
        name = _clean_member_name(m.name, archive)
        if m.ischr() or m.isblk() or m.isfifo() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise FetchError(f"{archive}: refusing member {m.name!r}: special file (device, FIFO or socket)")
        if not name:
            continue
        if m.isdir():
            plan.append(_Member(name, "dir"))
        elif m.issym():
            plan.append(_Member(name, "symlink", target=m.linkname))
        elif m.islnk():
            try:
                target = _clean_member_name(m.linkname, archive)
            except FetchError:
                raise FetchError(f"{archive}: refusing hard link {m.name!r} -> {m.linkname!r}: it leaves the folder") from None
            plan.append(_Member(name, "hardlink", target=target))
        else:
            plan.append(_Member(name, "file", size=m.size, ref=m))
    return plan


def _final_plan(plan: list[_Member], label: str) -> list[_Member]:
    """One entry per path (a later member replaces an earlier one, as tar does); kinds must agree."""
    by_name: dict[str, _Member] = {}
    for m in plan:
        old = by_name.get(m.name)
        if old is not None and (old.kind == "dir") != (m.kind == "dir"):
            raise FetchError(f"{label}: refusing member {m.name!r}: the archive holds it both as a folder and as a file")
        by_name[m.name] = m
    for name, m in by_name.items():
        for parent in _parents(name):
            p = by_name.get(parent)
            if p is None or p.kind == "dir":
                continue
            if p.kind == "symlink":
                raise FetchError(f"{label}: refusing member {name!r}: it would be written through the link {parent!r}")
            raise FetchError(f"{label}: refusing member {name!r}: {parent!r} is a file in the archive")
    return [by_name[n] for n in sorted(by_name)]


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _check_links(plan: list[_Member], dest: Path, label: str) -> None:
    """Resolve every link target through the archive's own links (and links already in ``dest``).

    A target is refused when it is absolute, when any step of its resolution climbs above the
    extraction folder (``s -> .`` plus ``p -> s/s/../../x`` included), or when links loop. A hard
    link must name a regular file of the archive.
    """
    members = {m.name: m for m in plan}
    links = {m.name: m.target for m in plan if m.kind == "symlink"}

    def link_at(path: str) -> str | None:
        if path in links:
            return links[path]
        if path in members:
            return None
        on_disk = dest / path
        return os.readlink(on_disk) if os.path.islink(on_disk) else None

    def resolve(base: list[str], target: str, depth: int, name: str) -> list[str]:
        if depth > MAX_LINK_DEPTH:
            raise FetchError(f"{label}: refusing symlink {name!r}: its links loop")
        t = target.replace("\\", "/")
        if not t or t.startswith("/") or (len(t) >= 2 and t[1] == ":"):
            raise FetchError(f"{label}: refusing symlink {name!r} -> {target!r}: it leaves the folder (absolute)")
        parts = list(base)
        for comp in t.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    raise FetchError(f"{label}: refusing symlink {name!r} -> {links.get(name, target)!r}: it leaves the folder")
                parts.pop()
                continue
            parts.append(comp)
            hop = link_at("/".join(parts))
            if hop is not None:
                parts = resolve(parts[:-1], hop, depth + 1, name)
        return parts

    for m in plan:
        if m.kind == "symlink":
            resolve(m.name.split("/")[:-1], m.target, 0, m.name)
        elif m.kind == "hardlink":
            target = members.get(m.target)
            if target is None or target.kind != "file":
                raise FetchError(f"{label}: refusing hard link {m.name!r} -> {m.target!r}: it names no file of the archive")


def _check_limits(plan: list[_Member], archive: Path, limits: ExtractLimits, label: str) -> None:
    sizes = {m.name: m.size for m in plan if m.kind == "file"}
    total = sum(sizes.values()) + sum(sizes.get(m.target, 0) for m in plan if m.kind == "hardlink")
    packed = max(archive.stat().st_size, 1)
    raise_it = "; if this archive is genuine, raise the limit with `medmat fetch {flag}`"
    if len(plan) > limits.max_members:
        raise FetchError(f"{label}: refusing archive: {len(plan):,} members, more than the limit of "
                         f"{limits.max_members:,}" + raise_it.format(flag="--max-members N"))
    if total > limits.max_bytes:
        raise FetchError(f"{label}: refusing archive: it unpacks to {total:,} bytes, more than the limit of "
                         f"{limits.max_bytes:,}" + raise_it.format(flag="--max-unpacked-gb N"))
    if total > limits.ratio_floor and total / packed > limits.max_ratio:
        raise FetchError(f"{label}: refusing archive: {packed:,} bytes unpack to {total:,} ({total / packed:,.0f} times "
                         f"as much; limit {limits.max_ratio:g}), the mark of a decompression bomb"
                         + raise_it.format(flag="--max-ratio R"))


def safe_extract(archive: Path, dest: Path, *, label: str | None = None,
                 limits: ExtractLimits | None = None) -> list[str]:
    """Unpack a zip or tar archive into ``dest`` after checking every member; return member paths.

    ``dest`` must be new, empty or a folder medmat unpacked before (:mod:`medmat_builder.safe_paths`).
    Raises :class:`FetchError` (and writes nothing into ``dest``) when any member is unsafe, when the
    archive is over a limit (``limits``), neither zip nor tar, corrupt or cut short, when it would
    replace a file medmat did not write, or when the disk cannot hold the unpacked files.
    """
    archive = Path(archive)
    label = label or archive.name
    limits = limits or ExtractLimits()
    try:
        dest = safe_paths.check_output_dir(dest, "source", label="unpack folder")
    except safe_paths.UnsafePathError as exc:
        raise FetchError(f"{label}: {exc}") from None
    try:
        if zipfile.is_zipfile(archive):
            return _extract(archive, dest, label, limits, "zip")
        if tarfile.is_tarfile(archive):
            return _extract(archive, dest, label, limits, "tar")
    except _ARCHIVE_ERRORS as exc:
        raise FetchError(_corrupt(label, archive, f"{type(exc).__name__}: {exc}")) from None
    with open(archive, "rb") as fh:
        head = fh.read(6)
    if head.startswith(ARCHIVE_MAGIC):
        raise FetchError(_corrupt(label, archive, "no readable member list"))
    raise FetchError(f"{label}: not a zip or tar archive; set `extract: false` for it in sources.yaml")


def _corrupt(label: str, archive: Path, why: str) -> str:
    return f"{label}: archive {archive} is corrupt or cut short ({why}); delete it and run `medmat fetch` again"


def _extract(archive: Path, dest: Path, label: str, limits: ExtractLimits, kind: str) -> list[str]:
    with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive)) as handle:
        if kind == "zip":
            plan = _final_plan(_plan_zip(handle, label), label)
            opener = lambda m: handle.open(m.ref)  # noqa: E731
        else:
            plan = _final_plan(_plan_tar(handle, label), label)
            opener = lambda m: handle.extractfile(m.ref)  # noqa: E731
        _check_limits(plan, archive, limits, label)
        _check_links(plan, dest, label)
        owned = safe_paths.claim(dest, "source", label="unpack folder")
        try:
            with owned.lock(f"another medmat fetch is unpacking into {dest}"):
                work = owned.scratch("tmp-")
                try:
                    _check_space(plan, work, label)
                    _materialise(plan, work, opener, label)
                    owned.commit(work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        except safe_paths.UnsafePathError as exc:
            owned.abandon()
            raise FetchError(f"{label}: {exc}") from None
        except safe_paths.FolderBusyError as exc:
            raise FetchError(f"{label}: {exc}") from None
        except BaseException:
            owned.abandon()
            raise
    tree = safe_paths.RawTree(dest)
    for m in plan:  # backstop: where the links lead now that they are in place
        if m.kind == "symlink" and tree.escape(m.name) is not None:
            (dest / m.name).unlink()
            raise FetchError(f"{label}: refusing symlink {m.name!r} -> {m.target!r}: it leaves the folder")
    return [m.name for m in plan]


def _check_space(plan: list[_Member], where: Path, label: str) -> None:
    need = sum(m.size for m in plan if m.kind == "file")
    free = shutil.disk_usage(where).free
    if need > free:
        raise FetchError(f"{label}: unpacking needs {need:,} bytes but only {free:,} are free under {where.parent}")


def _materialise(plan: list[_Member], root: Path, open_member, label: str) -> None:
    order = {"dir": 0, "file": 1, "hardlink": 2, "symlink": 3}
    for m in sorted(plan, key=lambda m: (order[m.kind], m.name)):
        try:
            _materialise_one(m, root, open_member, label)
        except OSError as exc:
            raise FetchError(f"{label}: cannot unpack member {m.name!r}: {exc.strerror or exc}") from None


def _materialise_one(m: _Member, root: Path, open_member, label: str) -> None:
    """Write one checked member under ``root`` (a fresh scratch folder: no member lies under a link)."""
    path = root / m.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if m.kind == "dir":
        path.mkdir(exist_ok=True)
    elif m.kind == "file":
        src = open_member(m)
        if src is None:
            raise FetchError(f"{label}: member {m.name!r} cannot be read")
        with src, open(path, "xb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        os.chmod(path, 0o644)
    elif m.kind == "symlink":
        os.symlink(m.target, path)
    else:  # hardlink: a copy of the unpacked file (no link to anything outside)
        shutil.copyfile(root / m.target, path)
        os.chmod(path, 0o644)


# --------------------------------------------------------------------------- per source
def obtain_steps(source: "Source", data_dir: Path | str = "RAW") -> str:
    """Human steps to get a source that cannot be downloaded directly."""
    lines = [f"{source.key} ({source.name}): no direct download (access: {source.access}).",
             f"  homepage: {source.homepage}"]
    lines += ["  " + line for line in source.obtain.strip().splitlines()]
    lines.append(f"  then unpack it into {Path(data_dir) / source.folder}/")
    return "\n".join(lines)


def _done_marker(data_dir: Path, source: "Source", dl: "Download") -> Path:
    return data_dir / STATE_DIR / "done" / source.key / f"{dl.filename}.json"


def check_unpack_folder(source: "Source", data_dir: Path | str) -> Path:
    """The source's folder under ``data_dir``, if medmat may write into it (new, empty, or unpacked by
    ``medmat fetch``); else :class:`~medmat_builder.safe_paths.UnsafePathError`."""
    return safe_paths.check_output_dir(Path(data_dir) / source.folder, "source", label=f"{source.key}: folder")


def fetch_source(
    source: "Source",
    data_dir: Path | str,
    *,
    allow_unpinned: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    log: Log = print,
    limits: ExtractLimits | None = None,
) -> FetchResult:
    """Fetch, verify and unpack every download of one source into ``data_dir/<folder>``.

    The folder must be new, empty or one ``medmat fetch`` unpacked before; anything else raises
    :class:`FetchError` before any download.
    """
    data_dir = Path(data_dir)
    if not source.downloads:
        return FetchResult(source.key, "manual", message=obtain_steps(source, data_dir))
    try:
        check_unpack_folder(source, data_dir)
    except safe_paths.UnsafePathError as exc:
        raise FetchError(str(exc)) from None
    files: list[Path] = []
    fetched_any = False
    for dl in source.downloads:
        name = dl.filename
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise FetchError(f"{source.key}: download filename {name!r} must be a plain file name")
        expected = pinned(dl)
        if not expected and not allow_unpinned:
            raise FetchError(
                f"{source.key}: {name} has no pinned sha256 or md5 in sources.yaml, so it cannot be verified. "
                f"Pin one, or pass --allow-unpinned to download it anyway (its checksums are then printed)."
            )
        marker = _done_marker(data_dir, source, dl)
        final = data_dir / source.folder / name
        cached = data_dir / STATE_DIR / "downloads" / source.key / name
        target = cached if dl.extract else final
        if marker.exists() and _marker_matches(marker, dl) and target.exists() and (data_dir / source.folder).is_dir():
            files.append(target)
            continue
        stale = target.exists() and (not expected or mismatches(file_hashes(target), expected))
        if stale:
            log(f"{source.key}: {name}: existing copy does not match the pinned checksum; downloading again")
            if dl.extract:
                target.unlink()  # medmat's own cache; a placed file is replaced only if medmat put it there
        if stale or not target.exists():
            tmp_dest = cached if dl.extract else cached.with_name(name + ".verified")
            log(f"{source.key}: downloading {dl.url}")
            download(dl.url, tmp_dest, sha256=dl.sha256, md5=dl.md5, source=source.key, retries=retries,
                     timeout=timeout, log=log)
            if not expected:
                got = file_hashes(tmp_dest)
                log(f"{source.key}: {name}: sha256 {got['sha256']} md5 {got['md5']} (not pinned; add one to sources.yaml)")
            if not dl.extract:
                _place_file(tmp_dest, data_dir / source.folder, name, label=f"{source.key}: {name}")
            fetched_any = True
        if dl.extract:
            log(f"{source.key}: unpacking {name} into {data_dir / source.folder}/")
            members = safe_extract(cached, data_dir / source.folder, label=f"{source.key}: {name}", limits=limits)
            log(f"{source.key}: {len(members)} entries unpacked")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"url": dl.url, **(expected or file_hashes(target))}, sort_keys=True))
        files.append(target)
    return FetchResult(source.key, "fetched" if fetched_any else "present", files)


def _place_file(src: Path, folder: Path, name: str, label: str) -> None:
    """Move a verified download into ``folder`` (replacing only a file medmat put there)."""
    try:
        owned = safe_paths.claim(folder, "source", label="folder")
        with owned.lock(f"another medmat fetch is writing into {folder}"):
            work = owned.scratch("tmp-")
            try:
                shutil.move(str(src), str(work / name))  # the folder may be on another disk
                owned.commit(work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (safe_paths.UnsafePathError, safe_paths.FolderBusyError) as exc:
        raise FetchError(f"{label}: {exc}") from None


def _marker_matches(marker: Path, dl: "Download") -> bool:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return data.get("url") == dl.url and all(data.get(name) == want for name, want in pinned(dl).items())


# --------------------------------------------------------------------------- archives downloaded by hand
@dataclass
class FileCheck:
    """The result of checking one file against a source's pinned checksums."""

    path: Path
    status: Literal["verified", "mismatch", "unpinned", "unknown", "missing"]
    message: str
    download: str | None = None  # the registry's filename it was checked against

    @property
    def ok(self) -> bool:
        return self.status == "verified"


def check_files(source: "Source", files: list[Path]) -> list[FileCheck]:
    """Check archives the user downloaded by hand against the checksums the registry pins.

    Each file is matched to a ``downloads`` entry by file name (case-insensitive); a renamed file is
    matched by its checksum. ``verified``: every pinned checksum agrees; ``mismatch``: one does not
    (the file is corrupt, truncated, or another version); ``unpinned``: the entry pins nothing (the
    checksums are printed so that a maintainer can pin them); ``unknown``: no entry of the source
    has this name or these checksums; ``missing``: no such file.
    """
    out = []
    for path in map(Path, files):
        if not path.is_file():
            out.append(FileCheck(path, "missing", f"{path}: no such file"))
            continue
        got = file_hashes(path)
        by_name = [dl for dl in source.downloads if dl.filename == path.name] or \
                  [dl for dl in source.downloads if dl.filename.lower() == path.name.lower()]
        by_sum = [dl for dl in source.downloads if pinned(dl) and not mismatches(got, pinned(dl))]
        dl = (by_name or by_sum or [None])[0]
        sums = f"sha256 {got['sha256']}, md5 {got['md5']}"
        if dl is None:
            known = ", ".join(d.filename for d in source.downloads) or "none (the source has no direct download)"
            out.append(FileCheck(path, "unknown", f"{path.name}: not a download of {source.key} by name or checksum "
                                                  f"(its downloads: {known}); {sums}"))
            continue
        expected = pinned(dl)
        if not expected:
            out.append(FileCheck(path, "unpinned", f"{path.name}: {source.key} pins no checksum for {dl.filename}; "
                                                   f"{sums} (pin one in sources.yaml after checking the source's page)",
                                 dl.filename))
            continue
        wrong = mismatches(got, expected)
        if wrong:
            out.append(FileCheck(path, "mismatch", f"{path.name}: {'; '.join(wrong)} (download it again; a "
                                                   f"different version of {dl.filename} is not the one the registry "
                                                   "describes)", dl.filename))
        else:
            out.append(FileCheck(path, "verified", f"{path.name}: {' and '.join(expected)} verified "
                                                   f"({dl.filename} of {source.key})", dl.filename))
    return out
