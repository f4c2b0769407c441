"""Fetch the sources of the registry: each ``downloads`` entry downloaded, verified and unpacked into ``RAW/<folder>/``.

A source without downloads (login, application, Kaggle) gets its ``obtain`` steps instead
(:func:`obtain_steps`). A download without any pinned checksum is refused unless
``allow_unpinned=True`` (its hashes are then printed so that a maintainer can pin them). An archive
downloaded by hand is checked against whatever the registry pins with :func:`check_files`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from medmat_builder import safe_paths
from medmat_builder.fetch.checksums import file_hashes, mismatches, pinned
from medmat_builder.fetch.download import Log, download
from medmat_builder.fetch.errors import FetchError
from medmat_builder.fetch.extract import ExtractLimits, safe_extract

if TYPE_CHECKING:  # the registry (pydantic models) only for the annotations
    from medmat_builder.registry import Download, Source


@dataclass
class FetchResult:
    """What happened to one source."""

    key: str
    status: Literal["fetched", "present", "manual", "failed"]
    files: list[Path] = field(default_factory=list)
    message: str = ""


# --------------------------------------------------------------------------- per source
def obtain_steps(source: Source, data_dir: Path | str = "RAW") -> str:
    """Human steps to get a source that cannot be downloaded directly."""
    lines = [f"{source.key} ({source.name}): no direct download (access: {source.access}).",
             f"  homepage: {source.homepage}"]
    lines += ["  " + line for line in source.obtain.strip().splitlines()]
    lines.append(f"  then unpack it into {Path(data_dir) / source.folder}/")
    return "\n".join(lines)


def _done_marker(data_dir: Path, source: Source, dl: Download) -> Path:
    return data_dir / safe_paths.STATE_DIR / "done" / source.key / f"{dl.filename}.json"


def check_unpack_folder(source: Source, data_dir: Path | str) -> Path:
    """The source's folder under ``data_dir``, if medmat may write into it (new, empty, or unpacked by
    ``medmat fetch``); else :class:`~medmat_builder.safe_paths.UnsafePathError`."""
    return safe_paths.check_output_dir(Path(data_dir) / source.folder, "source", label=f"{source.key}: folder")


def fetch_source(
    source: Source,
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
        cached = data_dir / safe_paths.STATE_DIR / "downloads" / source.key / name
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


def _marker_matches(marker: Path, dl: Download) -> bool:
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


def check_files(source: Source, files: list[Path]) -> list[FileCheck]:
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
