"""Download one file over HTTP(S), resuming a partial file, and verify its pinned checksums before it is used.

The file is written to ``DEST.part`` and resumed with an HTTP ``Range`` request after a dropped
connection (a few times per call); every pinned checksum is checked *before* the file is renamed
(atomic ``os.replace``) to its final name, so no corrupt file is ever left where it could be used.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from medmat_builder import __version__
from medmat_builder.fetch.checksums import CHUNK, file_hashes, mismatches
from medmat_builder.fetch.errors import FetchError

USER_AGENT = f"medmat/{__version__} (+https://github.com/; dataset fetcher)"

Log = Callable[[str], None]


# --------------------------------------------------------------------------- download
def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    md5: str | None = None,
    source: str = "?",
    retries: int = 3,
    timeout: float = 60.0,
    log: Log | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``sha256`` and ``md5``, rename into place.

    A checksum given as ``None`` is not verified (with neither, the caller decided that). Raises
    :class:`FetchError` on a mismatch (the partial file is deleted) or when the server keeps
    failing after ``retries`` resumed attempts (``retries + 1`` attempts in all; ``retries=0``: one).
    """
    log = log or (lambda _msg: None)
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{source}: download URL {url!r} is not http(s); fix its entry in sources.yaml")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout=timeout, log=log)
            break
        except _Incomplete as exc:  # connection dropped: resume from what arrived
            last_error = exc
            more = "; resuming" if attempt < retries else ""
            log(f"{source}: {dest.name}: {exc} (attempt {attempt + 1} of {retries + 1}){more}")
        except FetchError:
            raise
    else:
        raise FetchError(
            f"{source}: {dest.name}: download from {url} failed {retries + 1} time{'s' if retries else ''} ({last_error}); "
            f"run `medmat fetch {source}` again to resume from {part.stat().st_size if part.exists() else 0} bytes"
        )
    expected = {name: v.lower() for name, v in (("sha256", sha256), ("md5", md5)) if v}
    wrong = mismatches(file_hashes(part), expected) if expected else []
    if wrong:
        part.unlink(missing_ok=True)
        raise FetchError(
            f"{source}: {dest.name}: {'; '.join(wrong)}. "
            f"The download was deleted. If the upstream file changed on purpose, update the pinned checksum "
            f"in sources.yaml after checking it; otherwise run `medmat fetch {source}` again."
        )
    os.replace(part, dest)
    return dest


class _Incomplete(Exception):
    pass


def _download_once(url: str, part: Path, *, timeout: float, log: Log) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - scheme checked by caller
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise _Incomplete(f"cannot connect ({getattr(exc, 'reason', exc)})") from None
    with resp:
        status = resp.status
        mode = "ab"
        if have and status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Incomplete(f"server resumed at byte {start}, not {have}; starting over")
        elif status == 200:
            if have:
                log(f"{url}: server does not resume; starting over")
            mode, have = "wb", 0
        else:
            raise FetchError(f"{url}: unexpected HTTP status {status}")
        length = resp.headers.get("Content-Length")
        expected_total = have + int(length) if length and length.isdigit() else None
        got = have
        try:
            with open(part, mode) as fh:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    got += len(block)
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, socket.timeout)) and exc.errno:
                raise FetchError(f"cannot write {part}: {exc.strerror}") from None
            raise _Incomplete(f"connection dropped after {got} bytes") from None
        if expected_total is not None and got < expected_total:
            raise _Incomplete(f"connection dropped after {got} of {expected_total} bytes")


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None
