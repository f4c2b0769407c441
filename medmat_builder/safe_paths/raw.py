"""Reading raw data safely: paths under a source folder that stay inside it once links are resolved,
and registry paths that cannot leave it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path


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
