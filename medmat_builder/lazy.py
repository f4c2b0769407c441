"""Names of a package imported on first use (PEP 562), so that importing one module of it stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name of ``exports`` (name -> defining module)
    is imported on first access and kept in ``namespace`` (the package's globals); any other name is
    tried as a submodule not imported yet."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            try:  # a submodule not imported yet (``package.module`` as an attribute)
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
