"""Synthetic raw sources in every source's real on-disk layout, for the offline demo and the tests.

:mod:`~medmat_builder.demo.sources` writes them (through each layout kind's inverse),
:mod:`~medmat_builder.demo.subjects` gives records their subjects, and
:mod:`~medmat_builder.demo.regex_examples` makes names that a subject's ``{group:REGEX}`` accepts.
"""

from medmat_builder.demo.sources import (
    DEMO_PER_LABEL,
    MINIMAL_PER_LABEL,
    fake_samples,
    write_demo_sources,
    write_fake_source,
    write_group_table,
)
from medmat_builder.demo.subjects import Subjects

__all__ = [
    "DEMO_PER_LABEL",
    "MINIMAL_PER_LABEL",
    "Subjects",
    "fake_samples",
    "write_demo_sources",
    "write_fake_source",
    "write_group_table",
]
