"""Path patterns: how a layout names the files it reads, matched against paths relative to the source folder.

A pattern matches the *end* of a path on a folder boundary, so ``"{split}/{label}/*.jpg"`` matches both
``train/cat/1.jpg`` and ``Archive-v2/train/cat/1.jpg`` (unpacked with or without the archive's top
folder). Tokens:

- ``{name}``: captures one non-empty piece of a single path segment (``{label}``, ``{split}``,
  ``{id}``, or any other name), as long as the rest still matches (``{id}.*`` keeps dotted names
  like ``1-s2.0-x.jpg`` whole up to the last dot); ``{name:REGEX}`` captures with a custom regex;
- ``*``: any characters inside one segment; ``**``: any number of whole segments (also none);
- everything else is literal; matching ignores case (``.JPG`` and ``.jpg`` are the same).

Two rules make patterns survive real archives (see :meth:`~medmat_builder.layouts.base.LayoutBase.image_pattern`):

- *image extensions*: the extension that ends an image or mask pattern (``*.png``) is a default, not a
  filter: files of any other image extension match too (``x.jpg``), unless the layout says
  ``extensions: strict`` (only the pattern's own) or lists the extensions it takes. Where a file of
  the pattern's own extension yields the same captures and stem, that one wins (so a ``H0001.bmp``
  mask never stands in for the image ``H0001.jpg``);
- *validation folders*: ``{split:REGEX}`` also takes the validation names of :data:`VALIDATION_SPLITS`
  (``val``, ``valid``, ``validation``, ``dev``, any case), which go to ``train`` unless ``split_map``
  says otherwise (the paper's rule), so a ``{split:train|test}`` pattern reads ``val/`` too.

OS and archive litter (``__MACOSX``, ``.DS_Store``, ``Thumbs.db``, ``._x``) is never a file a layout reads
(:func:`is_junk`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property, lru_cache
from typing import Annotated, TypeVar

from pydantic import AfterValidator, Field

from medmat_builder.safe_paths import UnsafePathError, relative_path_problem

T = TypeVar("T")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".gif", ".webp", ".pgm", ".ppm")


JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


JUNK_DIRS = {"__macosx", ".git", ".ipynb_checkpoints", ".medmat"}  # .medmat: medmat's own marker and scratch


#: Raw split names that mean "validation" (any case); they go to ``train`` unless ``split_map`` says otherwise.
VALIDATION_SPLITS = ("val", "valid", "validation", "dev")


def is_validation_split(raw: str) -> bool:
    """Is ``raw`` a validation part (``val``, ``Valid``, ``validation``, ``DEV`` ...)?"""
    return raw.strip().lower() in VALIDATION_SPLITS


def normalize_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """``["jpg", ".PNG"]`` -> ``(".jpg", ".png")``."""
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def _relative_pattern(v: str) -> str:
    problem = relative_path_problem(v, pattern=True)
    if problem:
        raise ValueError(f"path pattern {v!r} {problem}")
    return v


def _path_segment(v: str) -> str:
    if not v or "/" in v or "\\" in v or "\x00" in v or v in (".", ".."):
        raise ValueError(f"{v!r} must be a plain name (no '/', no '..'): it becomes part of file paths")
    return v


#: A path pattern relative to the source folder that cannot leave it (no leading '/', no '..').
RelativePattern = Annotated[str, AfterValidator(_relative_pattern)]


#: A pixel count (image width or height) that an image can really have.
PixelCount = Annotated[int, Field(ge=1, le=65_535)]


#: A name that is used as one folder or file name (a raw split name, an id template).
PathSegment = Annotated[str, AfterValidator(_path_segment)]


_TRAILING_EXT = re.compile(r"\.([A-Za-z0-9]+)$")


#: Token kinds of a compiled pattern that never match a ``/`` (``*`` and ``{name}`` stay in one segment).
_IN_SEGMENT = frozenset({"literal", "star", "capture"})
#: What a custom ``{name:REGEX}`` must not hold for its folder part to be matched apart from the file name: it
#: could look past the end of the folder (``$``, ``\\Z``, lookaheads), depend on another group (conditionals) or
#: keep what it consumed past the folder's end (atomic groups, possessive quantifiers).
_NOT_APART = ("$", "\\Z", "(?=", "(?!", "(?(", "(?>", "*+", "++", "?+", "}+")


def _pattern_tokens(pattern: str, extensions: Sequence[str] | None) -> tuple[list[tuple[str, str]], str]:
    """The ``(kind, regex)`` tokens of a path pattern and the regex of its widened extension (``""``: none).

    Kinds: ``literal`` (one escaped character, ``/`` is ``slash``), ``star``, ``segments`` (``**``),
    ``capture`` (``{name}``), ``custom`` (``{name:REGEX}``) and ``backref`` (a repeated ``{name}``)."""
    tail = ""
    m = _TRAILING_EXT.search(pattern)
    if extensions and m and "." + m.group(1).lower() in IMAGE_EXTENSIONS:
        pattern = pattern[: m.start()]
        tail = r"\.(?:" + "|".join(re.escape(e.lstrip(".")) for e in extensions) + ")"
    out: list[tuple[str, str]] = []
    i = 0
    names: set[str] = set()
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append(("segments", r"(?:[^/]+/)*"))
            i += 3
        elif pattern.startswith("**", i):
            out.append(("segments", r".*"))
            i += 2
        elif c == "*":
            out.append(("star", r"[^/]*"))
            i += 1
        elif c == "{":
            end = pattern.index("}", i)
            body = pattern[i + 1 : end]
            name, _, rx = body.partition(":")
            if not name.isidentifier():
                raise ValueError(f"bad placeholder {{{body}}} in pattern {pattern!r}")
            if name in names:
                out.append(("backref", f"(?P={name})"))
            else:
                names.add(name)
                if name == "split" and rx:  # validation folders are read wherever split folders are
                    rx = rx + "|" + "|".join(VALIDATION_SPLITS)
                out.append(("custom" if rx else "capture", f"(?P<{name}>{rx or '[^/]+'})"))
            i = end + 1
        else:
            out.append(("slash" if c == "/" else "literal", re.escape(c)))
            i += 1
    return out, tail


def _pattern_to_regex(pattern: str, extensions: Sequence[str] | None = None) -> re.Pattern[str]:
    """Compile a path pattern; with ``extensions``, a trailing image extension accepts any of them."""
    tokens, tail = _pattern_tokens(pattern, extensions)
    return re.compile(r"(?:^|/)" + "".join(rx for _, rx in tokens) + tail + r"$", re.IGNORECASE)


class FolderMatcher:
    """A pattern split at its last ``/`` into a folder part and a file-name part, matched apart.

    ``folder`` (``None``: the pattern has no ``/``) is searched in the folder of a path,
    ``name`` matched at the start of its file name; ``name_captures``: the name part captures
    something; ``any_name``: every file name matches (``*``). Together they find exactly what the
    whole pattern finds in ``folder/name``, with the same captures (see :meth:`PathPattern.folder_matcher`),
    so a folder's part is worked out once for all its files.
    """

    def __init__(self, folder: re.Pattern[str] | None, name: re.Pattern[str], name_captures: bool, any_name: bool):
        self.folder, self.name, self.name_captures, self.any_name = folder, name, name_captures, any_name


def _folder_matcher(pattern: str, extensions: Sequence[str] | None) -> FolderMatcher | None:
    """The pattern's :class:`FolderMatcher`, or ``None`` where its parts cannot be matched apart.

    Sound when the file-name part can never match a ``/`` (only literals, ``*`` and plain ``{name}``;
    a widened extension without ``/``): the whole pattern then ends at the path's last ``/``, so its
    folder part must match the folder up to its very end (``\\Z``) and the name part the whole file
    name (with the same ``$``). A custom regex that could look past the folder's end keeps the whole match.
    """
    tokens, tail = _pattern_tokens(pattern, extensions)
    cut = max((i for i, (kind, _) in enumerate(tokens) if kind == "slash"), default=-1)
    folder, name = tokens[:cut] if cut >= 0 else None, tokens[cut + 1:]
    if folder is None and name[:1] == [("segments", r"(?:[^/]+/)*")]:  # "**/name": any folder, the root too
        name = name[1:]
    if any(kind not in _IN_SEGMENT for kind, _ in name) or "/" in tail:
        return None
    if folder is not None and any(kind == "custom" and any(x in rx for x in _NOT_APART) for kind, rx in folder):
        return None
    folder_rx = (re.compile(r"(?:^|/)" + "".join(rx for _, rx in folder) + r"\Z", re.IGNORECASE)
                 if folder is not None else None)
    name_rx = re.compile("".join(rx for _, rx in name) + tail + r"$", re.IGNORECASE)
    any_name = not tail and bool(name) and all(kind == "star" for kind, _ in name)
    return FolderMatcher(folder_rx, name_rx, any(kind == "capture" for kind, _ in name), any_name)


@lru_cache(maxsize=1024)
def compiled_pattern(pattern: str, extensions: tuple[str, ...] | None = None) -> "PathPattern":
    """``PathPattern(pattern, extensions)``, compiled once (a pattern is never changed once made)."""
    return PathPattern(pattern, extensions)


class PathPattern:
    """A compiled path pattern (see the module docstring for the syntax).

    ``extensions``: image extensions that the pattern's own trailing image extension stands for
    (``None``: exactly the one written).
    """

    def __init__(self, pattern: str, extensions: Sequence[str] | None = None):
        self.pattern = pattern
        self.extensions = tuple(extensions) if extensions is not None else None
        self.regex = _pattern_to_regex(pattern, extensions)

    @cached_property
    def folder_matcher(self) -> FolderMatcher | None:
        """The pattern split into a folder part and a file-name part (``None``: match whole paths; see
        :func:`_folder_matcher`); :meth:`~medmat_builder.layouts.file_index.FileIndex.matches` uses it."""
        return _folder_matcher(self.pattern, self.extensions)

    def match(self, relpath: str) -> dict[str, str] | None:
        m = self.regex.search(relpath)
        return None if m is None else m.groupdict()

    @property
    def placeholders(self) -> list[str]:
        return list(self.regex.groupindex)

    @property
    def extension(self) -> str | None:
        """The image extension the pattern ends with (``".png"``), if any."""
        m = _TRAILING_EXT.search(self.pattern)
        ext = "." + m.group(1).lower() if m else None
        return ext if ext in IMAGE_EXTENSIONS else None

    def fill(self, values: dict[str, str], star: str = "fake", dir_star: str = "fake") -> str:
        """Inverse of :meth:`match`: a concrete relative path for the given placeholder values.

        ``*`` in the file name becomes ``star`` (per file); ``*`` in a folder becomes ``dir_star``, the
        same for every file, so that an image and its mask land in one folder as in the real archive.
        """
        path = self.pattern.replace("**/", "").replace("**", "")

        def sub(m: re.Match[str]) -> str:
            name = m.group(1).partition(":")[0]
            if name not in values:
                raise KeyError(f"pattern {self.pattern!r} needs a value for {{{name}}}")
            return str(values[name])

        if path.endswith(".*"):  # an extension wildcard: the caller appends the real extension
            path = path[:-2]
        path = re.sub(r"\{([^}]*)\}", sub, path)
        folder, slash, name = path.rpartition("/")
        filled = folder.replace("*", dir_star) + slash + name.replace("*", star)
        problem = relative_path_problem(filled)
        if problem:  # a value from the registry (a raw label, a split name) would leave the folder
            raise UnsafePathError(f"pattern {self.pattern!r} filled with {values} gives {filled!r}, which {problem}")
        return filled

    def __repr__(self) -> str:
        return f"PathPattern({self.pattern!r})"


def is_junk(relpath: str) -> bool:
    """OS and archive litter that is never an image: ``__MACOSX``, ``.DS_Store``, ``._x``, ..."""
    parts = relpath.split("/")
    if any(p.lower() in JUNK_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.lower() in JUNK_NAMES or name.startswith("._") or name.startswith(".")


def accepts_image(path: str, extensions: Iterable[str] = ()) -> bool:
    """Does ``path`` end in one of ``extensions`` (default: any known image extension)?"""
    return extension_of(path) in accepted_extensions(extensions)


def accepted_extensions(extensions: Iterable[str] = ()) -> frozenset[str]:
    """The extensions :func:`accepts_image` takes for ``extensions`` (default: every image extension)."""
    return _allowed_extensions(tuple(extensions)) if extensions else _IMAGE_EXTENSION_SET


_IMAGE_EXTENSION_SET = frozenset(IMAGE_EXTENSIONS)


@lru_cache(maxsize=64)
def _allowed_extensions(extensions: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize_extensions(extensions) or IMAGE_EXTENSIONS)


def extension_of(path: str) -> str:
    """``os.path.splitext(path)[1].lower()`` of a ``/``-separated path, without the general machinery."""
    dot = path.rfind(".")
    start = path.rfind("/") + 1  # where the file name starts
    if dot <= start:  # no dot in the name, or only the one it starts with
        return ""
    if path[start] == "." and not path[start:dot].strip("."):  # leading dots start no extension ("..png")
        return ""
    return path[dot:].lower()


_extension = extension_of


def with_extension(items: Iterable[T], accepted: frozenset[str], *, pairs: bool = False) -> list[T]:
    """The items whose path has an extension in ``accepted``: ``[p for p in items if extension_of(p) in accepted]``
    (with ``pairs``: items are ``(path, ...)`` tuples), the test inlined: one call for 100,000s of files."""
    known: dict[str, bool] = {}  # the text from the last dot -> accepted
    out = []
    for item in items:
        path: str = item[0] if pairs else item  # type: ignore[index,assignment]
        dot = path.rfind(".")
        suffix = path[dot:]
        # the last dot is in the file name, after a character that is no dot: the extension is the suffix (see
        # extension_of), and names sharing one are decided once
        if dot > 0 and "/" not in suffix and path[dot - 1] not in "./":
            try:
                ok = known[suffix]
            except KeyError:
                ok = known[suffix] = suffix.lower() in accepted
        else:
            ok = extension_of(path) in accepted
        if ok:
            out.append(item)
    return out


def prefer_declared_extension(
    matches: Iterable[tuple[str, dict[str, str]]], extension: str | None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Drop matches of another extension where one of ``extension`` has the same captures and stem.

    A widened pattern (``{id}.jpg`` that also takes ``.bmp``) must not turn the ``H0001.bmp`` of a
    mask folder into a second image beside ``H0001.jpg``: the file the registry names wins.
    """
    items = list(matches)
    if extension is None:
        yield from items
        return
    own = [p.lower().endswith(extension) for p, _ in items]
    if all(own):  # the usual case: nothing to decide
        yield from items
        return

    def key(path: str, groups: dict[str, str]) -> tuple:
        stem = os.path.splitext(path.rsplit("/", 1)[-1])[0].lower()
        return (stem, tuple(sorted((k, (v or "").lower()) for k, v in groups.items())))

    declared = {key(p, g) for (p, g), mine in zip(items, own) if mine}
    for (path, groups), mine in zip(items, own):
        if mine or key(path, groups) not in declared:
            yield path, groups


def declared_first(paths: list[str], extension: str | None) -> list[str]:
    """Several files for one id: those with the pattern's own extension, if any (else all)."""
    if len(paths) > 1 and extension:
        own = [p for p in paths if os.path.splitext(p)[1].lower() == extension]
        return own or paths
    return paths


def names_a_file(pattern: str) -> bool:
    """Does the last segment have literal text besides wildcards and the extension (``*_mask.png``)?"""
    last = pattern.rsplit("/", 1)[-1]
    stem = _TRAILING_EXT.sub("", last)
    return bool(re.sub(r"\{[^}]*\}|\*", "", stem))
