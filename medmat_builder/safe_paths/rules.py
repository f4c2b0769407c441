"""The output-folder rule: a folder medmat may write into is new, empty, or one it wrote itself (its marker says so)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".medmat"


MARKER = "owner.json"


LOCK = "lock"


JOURNAL = "commit.json"


SCRATCH_PREFIXES = ("staging-", "tmp-")


OWNER = "medmat"


#: What each kind of owned folder is, for messages.
KINDS: dict[str, str] = {
    "export": "medmat export (`medmat build --out`)",
    "demo": "synthetic raw data folder (`medmat build --demo`)",
    "source": "source folder unpacked by `medmat fetch`",
    "experiment": "experiment folder (eval/experiment.py)",
    "training": "training output folder (training/sft.py)",
}


class UnsafePathError(ValueError):
    """A path medmat refuses to write into (or through); the message says why and what to do."""


class FolderBusyError(RuntimeError):
    """Another medmat process holds the folder's lock."""


# --------------------------------------------------------------------------- resolved paths
def resolve(path: str | Path, label: str = "path") -> Path:
    """The absolute path with every link resolved; a link whose target does not exist is refused."""
    p = Path(path).expanduser()
    real = Path(os.path.realpath(p))
    if os.path.islink(p) and not real.exists():
        raise UnsafePathError(f"{label} {path} is a link to {os.readlink(p)}, which does not exist; "
                              "point it at an existing folder or give a plain path")
    return real


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or below it (both already resolved)."""
    return path == folder or folder in path.parents


def _home() -> Path | None:
    try:
        return Path(os.path.realpath(Path("~").expanduser()))
    except RuntimeError:  # no home directory known
        return None


# --------------------------------------------------------------------------- the marker
@dataclass(frozen=True)
class Owner:
    """The content of ``DIR/.medmat/owner.json``."""

    kind: str
    files: frozenset[str] = frozenset()


def marker_path(folder: Path) -> Path:
    return Path(folder) / STATE_DIR / MARKER


def read_owner(folder: str | Path) -> Owner | None:
    """The folder's marker, or ``None`` when it has none (or an unreadable one)."""
    try:
        data = json.loads(marker_path(Path(folder)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("owner") != OWNER or not isinstance(data.get("kind"), str):
        return None
    files = data.get("files") or []
    return Owner(data["kind"], frozenset(f for f in files if isinstance(f, str)))


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_marker(folder: Path, kind: str, files: Iterable[str]) -> None:
    write_json(marker_path(folder), {"owner": OWNER, "kind": kind, "version": 1, "files": sorted(set(files))})


# --------------------------------------------------------------------------- the rule
def _kind_text(kind: str) -> str:
    return KINDS.get(kind, f"medmat {kind} folder")


def _foreign_entries(folder: Path) -> list[str]:
    return sorted(e for e in os.listdir(folder) if e != STATE_DIR) or sorted(os.listdir(folder))


def check_output_dir(
    path: str | Path,
    kind: str,
    *,
    label: str = "--out",
    keep_clear: Sequence[tuple[str, str | Path]] = (),
) -> Path:
    """Apply the output-folder rule to ``path`` for a folder of ``kind``; return it resolved (not created).

    ``keep_clear`` names folders the output must neither be, contain, nor lie inside (``("the data
    dir", raw)``). Raises :class:`UnsafePathError` with a one-line message.
    """
    folder = resolve(path, label)
    shown = f"{label} {path}" if str(path) == str(folder) else f"{label} {path} ({folder})"
    fix = f"choose a new or empty folder for {label}"
    cwd = Path(os.path.realpath(os.getcwd()))
    if is_within(cwd, folder):
        raise UnsafePathError(f"{shown} is the working directory or a parent of it; {fix}, e.g. ./medmat")
    home = _home()
    if home is not None and is_within(home, folder):
        raise UnsafePathError(f"{shown} is your home directory or a parent of it; {fix}")
    for name, other in keep_clear:
        other_real = Path(os.path.realpath(Path(other).expanduser()))
        if is_within(other_real, folder):
            raise UnsafePathError(f"{shown} is {name} or a parent of it; {fix} outside {name}")
        if is_within(folder, other_real):
            raise UnsafePathError(f"{shown} lies inside {name} ({other_real}); {fix} outside {name}")
    if folder.exists() and not folder.is_dir():
        raise UnsafePathError(f"{shown} is a file, not a folder; medmat does not replace it: {fix}")
    if not folder.exists():
        return folder
    if os.path.islink(folder / STATE_DIR):
        raise UnsafePathError(f"{shown} holds {STATE_DIR} as a link; medmat keeps its state only in a real folder: {fix}")
    owner = read_owner(folder)
    if owner is not None and owner.kind == kind:
        return folder
    if owner is not None:
        raise UnsafePathError(f"{shown} is a {_kind_text(owner.kind)}, not a {_kind_text(kind)}; {fix}")
    entries = _foreign_entries(folder)
    if entries:
        example = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise UnsafePathError(
            f"{shown} holds files that medmat did not write ({example}) and no medmat marker; "
            f"medmat never writes among your files: {fix}, or a folder medmat wrote before"
        )
    return folder
