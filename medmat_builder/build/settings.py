"""The knobs of a build (:class:`BuildSettings`); the defaults are the paper's rules."""

from __future__ import annotations

import os

from pydantic import ConfigDict, Field

from medmat_builder.report import SettingsRecord


class BuildSettings(SettingsRecord):
    """What a build does (seed, caps, test fraction and caps, ``--lenient``, the near-duplicate rule) and
    how many processes decode images (``num_proc``, which never changes the output)."""

    model_config = ConfigDict(frozen=True)

    num_proc: int = Field(default_factory=lambda: default_num_proc(), ge=1)

    def record(self) -> SettingsRecord:
        """The settings the build report records (all but ``num_proc``)."""
        return SettingsRecord.model_validate(self.model_dump(exclude={"num_proc"}))


def default_num_proc() -> int:
    """Processes that decode images by default: the machine's cores (``os.cpu_count()``)."""
    return os.cpu_count() or 1
