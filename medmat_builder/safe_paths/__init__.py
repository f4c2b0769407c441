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

from medmat_builder.safe_paths.owned import OwnedFolder, claim, exclusive_lock, list_tree, pid_alive
from medmat_builder.safe_paths.raw import RawTree, relative_path_problem
from medmat_builder.safe_paths.rules import (
    KINDS,
    STATE_DIR,
    FolderBusyError,
    Owner,
    UnsafePathError,
    check_output_dir,
    is_within,
    read_owner,
    resolve,
)

__all__ = [
    "KINDS",
    "STATE_DIR",
    "FolderBusyError",
    "Owner",
    "OwnedFolder",
    "RawTree",
    "UnsafePathError",
    "check_output_dir",
    "claim",
    "exclusive_lock",
    "is_within",
    "list_tree",
    "pid_alive",
    "read_owner",
    "relative_path_problem",
    "resolve",
]
