"""Put rebuilt configs in place so that ``OUT`` loads at every instant, whatever stops the build.

``load_dataset(OUT, config)`` reads the card (``OUT/README.md``: the config's ``data_files`` and its
split sizes, which it checks) and the config's folder. The commit keeps the two consistent:

1. the card is replaced (one rename) by the previous card without the split sizes of the configs
   about to change, so it holds for their old folder and for their new one;
2. each rebuilt config's folder is exchanged with its finished copy in one ``renameat2(RENAME_EXCHANGE)``
   (Linux): the path always names a whole folder, the old one or the new one. Where the kernel or the
   file system cannot exchange, the old folder is first renamed aside and the new one renamed in;
   between those two renames (microseconds) the config has no folder, and the next build puts the
   folder back (from ``OUT/.medmat/swap.json``) before anything else;
3. :meth:`~medmat_builder.safe_paths.OwnedFolder.commit` then renames the final card, report and
   metadata into place, one file at a time (each atomic; a commit killed half-way is finished by the next
   build).

So a build stopped at any point leaves every config whole (old or new) and its card consistent with
it; the configs it had not reached are untouched. Files a user put into a config's folder move with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from medmat_builder.build.signals import deferred, pause_point
from medmat_builder.safe_paths import OwnedFolder, UnsafePathError, list_tree
from medmat_builder.safe_paths.rules import write_json, write_marker

JOURNAL = "swap.json"
CARD = "README.md"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap paths ``a`` and ``b`` atomically (both must exist); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def card_without_sizes(card: str, configs: Sequence[str]) -> str | None:
    """``card`` with the ``dataset_info`` entries of ``configs`` removed (None: nothing to remove)."""
    if not card.startswith("---\n"):
        return None
    head, sep, body = card[4:].partition("\n---\n")
    if not sep:
        return None
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError:
        return None
    infos = meta.get("dataset_info") if isinstance(meta, dict) else None
    if not isinstance(infos, list):
        return None
    kept = [i for i in infos if not (isinstance(i, dict) and i.get("config_name") in configs)]
    if len(kept) == len(infos):
        return None
    meta["dataset_info"] = kept
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body


def _relax_card(owned: OwnedFolder, configs: Sequence[str]) -> None:
    """Step 1: the live card without the split sizes of ``configs`` (one atomic rename)."""
    card = owned.path / CARD
    if CARD not in owned.files() or not card.is_file() or card.is_symlink():
        return
    relaxed = card_without_sizes(card.read_text(encoding="utf-8"), configs)
    if relaxed is None:
        return
    tmp = owned.state / f"swap-{CARD}"
    tmp.write_text(relaxed, encoding="utf-8")
    os.replace(tmp, card)


def swap_configs(owned: OwnedFolder, staging: Path, names: Sequence[str]) -> None:
    """Move the finished folders ``staging/<name>`` into ``owned`` (steps 1 and 2 of the module docstring).

    Refuses (:class:`UnsafePathError`, nothing moved) when a config path is a link or a file, or a file
    medmat did not write would be replaced. Call it while holding the folder's lock.
    """
    names = [n for n in names if (staging / n).is_dir()]
    ours = owned.files()
    bad: list[str] = []
    for name in names:
        live = owned.path / name
        if live.is_symlink() or (live.exists() and not live.is_dir()):
            bad.append(f"{name} (not a folder)")
        bad += owned.conflicts([f"{name}/{r}" for r in list_tree(staging / name)], ours)
    if bad:
        raise UnsafePathError(f"{owned.path}: medmat would replace {', '.join(sorted(set(bad))[:5])}, which it did "
                              "not write; move them out of the folder and run again")
    if not names:
        return
    with deferred():
        _relax_card(owned, names)
    for i, name in enumerate(names):
        with deferred():  # SIGINT/SIGTERM wait for the swap of this config to finish
            _swap_one(owned, staging / name, name)
        if i == 0:
            pause_point("swap")  # test hook: one config swapped, the others not yet


def _swap_one(owned: OwnedFolder, staged: Path, name: str) -> None:
    live, state = owned.path / name, owned.state
    ours = owned.files()
    new_files = {f"{name}/{r}" for r in list_tree(staged)}
    old_files = {r for r in ours if r.startswith(name + "/")}
    if live.is_dir():  # files a user put there move into the new folder
        for rel in list_tree(live):
            if f"{name}/{rel}" not in ours and not os.path.lexists(staged / rel):
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(live / rel, staged / rel, follow_symlinks=False)
                except OSError:
                    shutil.copy2(live / rel, staged / rel, follow_symlinks=False)
    new, old = state / f"swap-new-{name}", state / f"swap-old-{name}"
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    write_json(state / JOURNAL, {"name": name, "new": new.name, "old": old.name})
    write_marker(owned.path, owned.kind, ours | new_files)  # claim before anything appears
    os.rename(staged, new)
    if not live.exists():
        os.rename(new, live)
    elif exchange(new, live):
        shutil.rmtree(new)  # now the old folder
    else:
        os.rename(live, old)
        os.rename(new, live)
        shutil.rmtree(old)
    write_marker(owned.path, owned.kind, (ours | new_files) - (old_files - new_files))
    (state / JOURNAL).unlink()


def recover_swap(owned: OwnedFolder) -> str | None:
    """Put back a config folder a killed swap left aside; remove the leftovers. Returns what it did."""
    journal = owned.state / JOURNAL
    if not journal.is_file():
        return None
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        name, new, old = (str(plan[k]) for k in ("name", "new", "old"))
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)
        return None
    if "/" in name or not new.startswith("swap-") or not old.startswith("swap-"):
        journal.unlink(missing_ok=True)
        return None
    live, new_p, old_p = owned.path / name, owned.state / new, owned.state / old
    done = f"a stopped build had left {name} mid-swap; "
    if not os.path.lexists(live):
        back = new_p if new_p.is_dir() else old_p if old_p.is_dir() else None
        if back is not None:
            os.rename(back, live)
            done += f"put its {'new' if back == new_p else 'previous'} folder back"
    else:
        done += "its folder was whole"
    for leftover in (new_p, old_p):
        shutil.rmtree(leftover, ignore_errors=True)
    journal.unlink(missing_ok=True)
    return done
