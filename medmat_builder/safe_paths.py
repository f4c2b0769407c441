"""What medmat may touch: folders it owns (recognised by a marker), nothing else; paths resolved first.

Every command that writes or deletes files goes through this module:

- :func:`check_output_dir` applies the one rule for a folder medmat is asked to write into (``medmat
  build --out``, the ``--demo`` data dir, each folder ``medmat fetch`` unpacks into, the experiment
  runner's and the trainer's ``--output_dir``). The folder may be a path that does not exist, an empty
  folder, or a folder medmat wrote itself, of the same kind, recognised by the marker
  ``DIR/.medmat/owner.json``. Anything else is refused with :class:`UnsafePathError` (one line: why
  and what to do) before any work starts: a file, a folder holding anything without the marker, the
  working directory or a parent of it, the home directory or a parent of it, the data dir, a
  parent of it or a folder inside it. Paths are resolved (links followed) before any check, so a
  link and its target are one folder; a link to nowhere is refused.
- :class:`OwnedFolder` is a claimed folder: its lock (``DIR/.medmat/lock``, kept inside the folder, so a
  link and its target share it), its scratch space (``DIR/.medmat/staging-*``) and :meth:`OwnedFolder.commit`,
  which moves finished files into place. The marker lists every file medmat put there; a commit
  replaces or removes only listed files and refuses (naming them) to replace anything else. Files a
  user adds to an owned folder are kept. A commit killed half-way is finished by the next one.
- :class:`RawTree` answers whether a path under a source folder stays inside it once links are
  resolved; the build never opens a raw file that does not (see ``outside_link`` in the report).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def _write_json(path: Path, data: dict) -> None:
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


def _write_owner(folder: Path, kind: str, files: Iterable[str]) -> None:
    _write_json(marker_path(folder), {"owner": OWNER, "kind": kind, "version": 1, "files": sorted(set(files))})


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


def claim(path: str | Path, kind: str, *, label: str = "--out",
          keep_clear: Sequence[tuple[str, str | Path]] = ()) -> "OwnedFolder":
    """Check ``path`` (see :func:`check_output_dir`), create it if needed and write its marker."""
    folder = check_output_dir(path, kind, label=label, keep_clear=keep_clear)
    created = None
    if not folder.exists():
        created = folder
        while not created.parent.exists():  # the highest folder this claim creates
            created = created.parent
    (folder / STATE_DIR).mkdir(parents=True, exist_ok=True)
    if read_owner(folder) is None:
        _write_owner(folder, kind, ())
    return OwnedFolder(folder, kind, created=created)


# --------------------------------------------------------------------------- owned folders
@contextmanager
def exclusive_lock(state_dir: Path, busy: str):
    """Hold ``state_dir/lock`` (a medmat state folder, created if needed); :class:`FolderBusyError` if taken."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never through a link
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderBusyError(f"{busy} (lock {lock_path} is held); wait for it to finish") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _parents(rel: str) -> Iterator[str]:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def list_tree(root: Path) -> list[str]:
    """Files and links below ``root`` as sorted relative POSIX paths (links are not followed)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                out.append(prefix + d)
        out += [prefix + f for f in filenames]
    return sorted(out)


@dataclass
class OwnedFolder:
    """A folder medmat owns (it carries the marker); see the module docstring."""

    path: Path
    kind: str
    created: Path | None = None  # the highest folder :func:`claim` created, if it created any
    _locks: list = field(default_factory=list, repr=False)

    def abandon(self) -> None:
        """After a failure: remove the folders :func:`claim` created, while they hold only medmat's state
        (a build or fetch that wrote nothing leaves no empty output folder behind)."""
        if self.created is None or not self.path.is_dir() or any(e != STATE_DIR for e in os.listdir(self.path)):
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in self.path.parents:
            if parent == self.created.parent:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    @property
    def state(self) -> Path:
        return self.path / STATE_DIR

    def files(self) -> frozenset[str]:
        owner = read_owner(self.path)
        return owner.files if owner else frozenset()

    @contextmanager
    def lock(self, busy: str | None = None):
        """Exclusive lock inside the folder (then :meth:`recover`); a second holder gets :class:`FolderBusyError`."""
        with exclusive_lock(self.state, busy or f"another medmat process is writing to {self.path}"):
            self.recover()
            yield self

    def scratch(self, prefix: str = "staging-") -> Path:
        """A new empty folder under ``DIR/.medmat`` (same file system, so commits are renames)."""
        assert prefix in SCRATCH_PREFIXES
        self.state.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.state))

    def recover(self) -> None:
        """Finish a commit that was killed half-way; delete scratch folders left by killed runs.

        Only call it while holding the lock (another process's scratch folder is in use otherwise).
        """
        journal = self.state / JOURNAL
        if journal.is_file():
            try:
                plan = json.loads(journal.read_text(encoding="utf-8"))
            except ValueError:
                plan = None
            if isinstance(plan, dict):
                self._apply(plan)
            journal.unlink(missing_ok=True)
        if self.state.is_dir():
            for entry in sorted(self.state.iterdir()):
                if entry.name.startswith(SCRATCH_PREFIXES) and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)

    def conflicts(self, paths: Iterable[str], owned: frozenset[str] | None = None) -> list[str]:
        """Paths among ``paths`` that a commit may not write: a file or link medmat did not write is
        there, a folder is there, or a parent is a file or a link."""
        owned = self.files() if owned is None else owned
        base = str(self.path)
        bad: list[str] = []
        checked: dict[str, bool] = {}
        for rel in paths:
            for parent in _parents(rel):
                if parent not in checked:
                    try:
                        st = os.lstat(os.path.join(base, parent))
                        checked[parent] = stat.S_ISDIR(st.st_mode)
                    except FileNotFoundError:
                        checked[parent] = True
                if not checked[parent]:
                    bad.append(f"{parent} (a file or link where a folder is needed)")
                    break
            else:
                try:
                    st = os.lstat(os.path.join(base, rel))
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    bad.append(f"{rel} (a folder)")
                elif rel not in owned:
                    bad.append(rel)
        return sorted(set(bad))

    def commit(self, src: Path, remove: Iterable[str] = ()) -> list[str]:
        """Move every file and link of ``src`` (a scratch folder) into place; then remove ``remove``.

        Only files medmat wrote (listed in the marker) are replaced or removed; a path held by
        anything else is refused (:class:`UnsafePathError` naming it) before anything moves.
        Returns the relative paths moved in. Call it while holding the lock.
        """
        src = Path(src)
        if not is_within(src.resolve(), self.state.resolve()) or src.resolve() == self.state.resolve():
            raise ValueError(f"commit needs a scratch folder of {self.path} (OwnedFolder.scratch), not {src}")
        items = list_tree(src)
        owned = self.files()
        bad = self.conflicts(items, owned)
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise UnsafePathError(
                f"{self.path}: medmat would replace {shown}, which it did not write; "
                "move them out of the folder and run again"
            )
        new = set(items)
        gone = sorted(r for r in set(remove) if r in owned and r not in new)
        plan = {"src": os.path.relpath(src, self.state), "items": items, "remove": gone}
        _write_json(self.state / JOURNAL, plan)
        self._apply(plan)
        (self.state / JOURNAL).unlink(missing_ok=True)
        return items

    def _apply(self, plan: dict) -> None:
        """Carry out a commit journal (idempotent: a killed commit is finished by running it again)."""
        src = (self.state / str(plan.get("src", ""))).resolve()
        if not is_within(src, self.state.resolve()) or src == self.state.resolve():
            return  # not a journal this module wrote
        items = [str(i) for i in plan.get("items", [])]
        gone = [str(r) for r in plan.get("remove", [])]
        owned = set(self.files())
        _write_owner(self.path, self.kind, owned | set(items))  # claim before anything appears
        base, src_base = str(self.path), str(src)
        made: set[str] = set()
        for rel in items:
            s = os.path.join(src_base, rel)
            if not os.path.lexists(s):
                continue  # moved before the kill
            folder = os.path.dirname(rel)
            if folder and folder not in made:
                os.makedirs(os.path.join(base, folder), exist_ok=True)
                made.add(folder)
            os.replace(s, os.path.join(base, rel))
        for rel in gone:
            d = self.path / rel
            if os.path.lexists(d) and not (d.is_dir() and not d.is_symlink()):
                d.unlink()
            for parent in sorted(_parents(rel), key=len, reverse=True):
                try:
                    (self.path / parent).rmdir()  # only a folder left empty
                except OSError:
                    break
        _write_owner(self.path, self.kind, (owned | set(items)) - set(gone))
        shutil.rmtree(src, ignore_errors=True)


# --------------------------------------------------------------------------- raw trees
class RawTree:
    """Paths below a source folder, checked to stay inside it after resolving links.

    The folder itself may be a link (a source kept on another disk); links *below* it must stay
    below it. Each folder is resolved once; each file costs one ``lstat``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.real = os.path.realpath(self.root)
        self._dirs: dict[str, str] = {}

    def _inside(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)

    def escape(self, rel: str) -> str | None:
        """``None`` when ``root/rel`` stays inside the folder; else the resolved place it leads to."""
        full = os.path.join(self.root, rel)
        parent = os.path.dirname(full)
        preal = self._dirs.get(parent)
        if preal is None:
            preal = self._dirs[parent] = os.path.realpath(parent)
        if not self._inside(preal):
            return preal
        try:
            st = os.lstat(full)
        except OSError:
            return None  # missing: the layout reports it
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(full)
            return None if self._inside(real) else real
        return None


# --------------------------------------------------------------------------- relative paths
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def relative_path_problem(path: str, *, pattern: bool = False) -> str | None:
    """Why ``path`` (a path or a path pattern) could leave the folder it is relative to, or ``None``."""
    text = _PLACEHOLDER.sub("x", path) if pattern else path
    if not text.strip() or "\x00" in path:
        return "is empty or holds a NUL character"
    if text.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", text):
        return "is absolute; give it relative to the source folder"
    if "\\" in text:
        return "holds a backslash; separate folders with '/'"
    if ".." in text.split("/"):
        return "holds a '..' segment, which leaves the source folder"
    return None
