"""Safe extraction of zip and tar archives: every member is checked before anything is written.

Absolute paths, ``..``, drive letters, device files, FIFOs and sockets are refused; every symlink
target is resolved through the archive's own links (and links already in the folder) and refused
when it is absolute, climbs above the folder at any step (``s -> .`` plus ``p -> s/s/../../x``), or
loops; no member may be written through a link; a hard link must name a file of the archive (it
becomes a copy). An archive over :class:`ExtractLimits` (total unpacked bytes, member count,
unpacked/packed ratio) is refused as a likely bomb, and a corrupt or truncated one gives a
:class:`~medmat_builder.fetch.errors.FetchError` naming it. Nothing is written when one member is
unsafe. Members are unpacked into ``DEST/.medmat/tmp-*`` and then moved in
(:mod:`medmat_builder.safe_paths`); permissions and owners from the archive are ignored.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medmat_builder import safe_paths
from medmat_builder.fetch.checksums import CHUNK
from medmat_builder.fetch.errors import FetchError


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
    if parts and parts[0] == safe_paths.STATE_DIR:
        raise FetchError(f"{archive}: refusing member {name!r}: {safe_paths.STATE_DIR}/ is medmat's own folder")
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
