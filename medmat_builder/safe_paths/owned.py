"""Owned folders: claimed by a marker, locked, given scratch space, and committed into with renames only.

A commit replaces or removes only files the marker lists and refuses (naming them) to replace anything
else; files a user adds are kept; a commit killed half-way is finished by the next one (its journal).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from medmat_builder.safe_paths.rules import (
    JOURNAL,
    LOCK,
    SCRATCH_PREFIXES,
    STATE_DIR,
    FolderBusyError,
    UnsafePathError,
    check_output_dir,
    is_within,
    read_owner,
    write_json,
    write_marker,
)


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
        write_marker(folder, kind, ())
    return OwnedFolder(folder, kind, created=created)


# --------------------------------------------------------------------------- owned folders
#: Descriptors of the locks this process holds; a forked worker closes its copies (:func:`release_inherited_locks`).
_HELD_LOCKS: set[int] = set()
logger = logging.getLogger(__name__)


def release_inherited_locks() -> None:
    """In a forked child: close the inherited lock descriptors, so the child never keeps a lock held."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


def _lock_holder(fd: int) -> int:
    """The PID written into a lock file by its last holder (0 when none)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@contextmanager
def exclusive_lock(state_dir: Path, busy: str):
    """Hold ``state_dir/lock`` (a medmat state folder, created if needed); :class:`FolderBusyError` if taken.

    The holder writes its PID into the lock file; a lock file naming a process that is gone (a killed
    run) is reported and taken over.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never through a link
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        who = f" by process {holder}" if holder else ""
        raise FolderBusyError(f"{busy} (lock {lock_path} is held{who}); wait for it to finish") from None
    _HELD_LOCKS.add(fd)
    try:
        stale = _lock_holder(fd)
        if stale and stale != os.getpid() and not pid_alive(stale):
            logger.warning("removed the lock %s left by process %d, which is no longer running", lock_path, stale)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        try:
            os.ftruncate(fd, 0)  # released: no holder named
        except OSError:
            pass
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
        write_json(self.state / JOURNAL, plan)
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
        write_marker(self.path, self.kind, owned | set(items))  # claim before anything appears
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
        write_marker(self.path, self.kind, (owned | set(items)) - set(gone))
        shutil.rmtree(src, ignore_errors=True)
