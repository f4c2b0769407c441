"""Layout reader kinds. Each kind is a pydantic model (its YAML config) with ``scan`` and ``write_fake``.

To add a kind: write a module with a ``LayoutBase`` subclass whose ``kind`` is a new literal, then add
it to ``Layout`` below. No per-source code: a kind is a mechanism that several sources can share.
"""

from typing import Annotated, Union

from pydantic import Field

from medmat_builder.layouts.base import LayoutBase, ScanSource, SplitList
from medmat_builder.layouts.file_index import FileIndex, shared_indexes
from medmat_builder.layouts.folders import FoldersLayout
from medmat_builder.layouts.json_boxes import JsonBoxesLayout, JsonFile
from medmat_builder.layouts.masks import MasksLayout
from medmat_builder.layouts.patterns import PathPattern
from medmat_builder.layouts.rle import RleTableLayout
from medmat_builder.layouts.table import TableLayout
from medmat_builder.layouts.tables import LayoutError, TableFile

Layout = Annotated[
    Union[FoldersLayout, TableLayout, MasksLayout, JsonBoxesLayout, RleTableLayout],
    Field(discriminator="kind"),
]

__all__ = [
    "FileIndex",
    "shared_indexes",
    "FoldersLayout",
    "JsonBoxesLayout",
    "JsonFile",
    "Layout",
    "LayoutBase",
    "LayoutError",
    "MasksLayout",
    "PathPattern",
    "RleTableLayout",
    "ScanSource",
    "SplitList",
    "TableFile",
    "TableLayout",
]
