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

from medmat_builder.fetch.checksums import file_hashes, file_sha256
from medmat_builder.fetch.download import download
from medmat_builder.fetch.errors import FetchError
from medmat_builder.fetch.extract import ExtractLimits, safe_extract
from medmat_builder.fetch.sources import (
    FetchResult,
    FileCheck,
    check_files,
    check_unpack_folder,
    fetch_source,
    obtain_steps,
)

__all__ = [
    "ExtractLimits",
    "FetchError",
    "FetchResult",
    "FileCheck",
    "check_files",
    "check_unpack_folder",
    "download",
    "fetch_source",
    "file_hashes",
    "file_sha256",
    "obtain_steps",
    "safe_extract",
]
