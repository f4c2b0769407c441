"""The one error of ``medmat fetch``."""

from __future__ import annotations


class FetchError(RuntimeError):
    """A download or an archive that cannot be used; the message says which source and what to do."""
