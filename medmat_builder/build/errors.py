"""The error a build stops with when it cannot go on (:class:`BuildError`); its message says what to do."""

from __future__ import annotations


class BuildError(RuntimeError):
    """A build cannot proceed; the message says what to do."""
