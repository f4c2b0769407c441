"""Where the files medmat reads at run time live: the registry (``sources.yaml``), the card templates and
the training recipes.

The repository's ``sources.yaml``, ``dataset_cards/`` and ``training/recipes/`` are the single source of truth. Running from a
checkout (``PYTHONPATH=.``, an editable install) they are read where they are; a wheel carries copies
under ``medmat_builder/_data/``, which ``setup.py`` writes into the wheel at build time (never into the
source tree). Every lookup goes through :func:`registry_path`, :func:`cards_dir` and :func:`recipes_dir`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The copies an installed wheel carries (written by setup.py's ``build_py``).
PACKAGED_DATA_DIR = PACKAGE_DIR / "_data"
#: The files and folders that ship with the package: the registry, the dataset-card templates, the recipes.
DATA_FILES = ("sources.yaml", "dataset_cards", "training/recipes")


def checkout_dir() -> Path | None:
    """The repository root when the package runs from its checkout (not from site-packages), else None."""
    root = PACKAGE_DIR.parent  # site-packages when installed: it holds no sources.yaml and no project file
    if (root / "sources.yaml").is_file() and any((root / f).is_file() for f in ("pyproject.toml", "setup.cfg")):
        return root
    return None


def data_path(name: str) -> Path:
    """``name`` (one of :data:`DATA_FILES`) in the checkout when running from one, else the packaged copy."""
    if name not in DATA_FILES:
        raise ValueError(f"{name!r} is not a packaged data file; expected one of {', '.join(DATA_FILES)}")
    root = checkout_dir()
    return (root if root is not None else PACKAGED_DATA_DIR) / name


def registry_path() -> Path:
    """The default registry: the checkout's ``sources.yaml``, or the copy in the installed package."""
    return data_path("sources.yaml")


def cards_dir() -> Path:
    """The dataset-card templates: the checkout's ``dataset_cards/``, or the copy in the installed package."""
    return data_path("dataset_cards")


def recipes_dir() -> Path:
    """The training recipes (``tiny_cpu.yaml``, the paper's settings): the checkout's ``training/recipes/``,
    or the copy in the installed package."""
    return data_path("training/recipes")
