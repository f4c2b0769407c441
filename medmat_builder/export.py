"""``medmat build``: run the builder for the requested configs and write the Hub layout, atomically.

Output (``DIR``, default ``./medmat``)::

    DIR/README.md                 dataset card with YAML ``configs:`` (load_dataset needs no script)
    DIR/subset_NN/{train,test}-00000-of-0000K.parquet
    DIR/build_report.json         the ledger (see medmat_builder.report)
    DIR/licenses.csv              one row per source: license, access, redistributable
    DIR/croissant.json            Croissant metadata of the export

The build writes into a temporary sibling folder and swaps it in with renames, so a build killed at
any moment leaves the previous output intact; a lock file refuses a second concurrent build into the
same folder. Configs already in ``DIR`` that are not rebuilt are carried over unchanged.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from medmat_builder.registry import Registry, Source, load_registry
from medmat_builder.sampling import BuildSettings, shutdown_pools

logger = logging.getLogger(__name__)
REPORT_NAME = "build_report.json"


class BuildError(RuntimeError):
    """A build cannot proceed; the message says what to do."""


class MissingSourcesError(BuildError):
    pass


@dataclass
class BuildResult:
    out: Path
    report: dict
    built: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def source_present(raw: Path, source: Source) -> bool:
    folder = raw / source.folder
    return folder.is_dir() and any(folder.iterdir())


def missing_sources_message(registry: Registry, missing: dict[str, list[str]], raw: Path) -> str:
    lines = [f"Sources missing from {raw} (each must be unpacked as {raw}/<key>/):"]
    for key, configs in sorted(missing.items()):
        src = registry.source(key)
        lines.append(f"- {key} ({src.name}; needed by {', '.join(configs)}; access: {src.access})")
        lines.append(f"    homepage: {src.homepage}")
        for step in src.obtain.strip().splitlines():
            lines.append(f"    {step}")
    lines.append("Download them, or pass --partial to build from the sources that are present.")
    return "\n".join(lines)


@contextmanager
def build_lock(out: Path):
    """Exclusive lock beside ``out``; a second build into the same folder is refused."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.lock"
    fh = open(lock_path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise BuildError(
            f"another medmat build is writing to {out} (lock {lock_path} is held); "
            "wait for it to finish or choose another --out"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _build_one(registry: Registry, name: str, raw: Path, settings: BuildSettings, only: tuple[str, ...] | None,
               dest: Path, work: Path) -> dict:
    from medmat_builder.builder import MedMatBuilder

    builder = MedMatBuilder(
        config_name=name,
        registry=registry,
        cache_dir=str(work / "cache"),
        raw_dir=str(raw),
        settings=settings,
        only_sources=only,
    )
    prep = work / "prep" / name
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per config is enough
    try:
        builder.download_and_prepare(
            output_dir=str(prep),
            file_format="parquet",
            download_mode="force_redownload",
            verification_mode="no_checks",
        )
    finally:
        builder.close()
        if bars:
            datasets.enable_progress_bars()
    dest.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        files = sorted(prep.glob(f"medmat-{split}*.parquet"))
        for i, f in enumerate(files):
            os.replace(f, dest / f"{split}-{i:05d}-of-{len(files):05d}.parquet")
    shutil.rmtree(prep, ignore_errors=True)
    assert builder.report is not None
    return builder.report.to_dict()


def build(
    configs: Sequence[str] | None,
    raw: str | Path,
    out: str | Path = "medmat",
    settings: BuildSettings | None = None,
    partial: bool = False,
    registry: Registry | None = None,
    progress: bool = False,
) -> BuildResult:
    """Build ``configs`` (all 53 by default) from ``raw`` into ``out`` (Hub layout), atomically."""
    from medmat_builder import cards

    registry = registry or load_registry()
    settings = settings or BuildSettings()
    raw = Path(raw)
    out = Path(out).absolute()
    names = [registry.subset(c).name for c in (configs or registry.subset_names)]
    if not raw.is_dir():
        raise BuildError(f"raw data folder {raw} does not exist; unpack the sources as {raw}/<key>/ (see `medmat sources list`)")

    present: dict[str, tuple[str, ...]] = {}
    missing: dict[str, list[str]] = {}
    for name in names:
        keys = registry.subset(name).sources
        have = tuple(k for k in keys if source_present(raw, registry.source(k)))
        present[name] = have
        for k in keys:
            if k not in have:
                missing.setdefault(k, []).append(name)
    if missing and not partial:
        raise MissingSourcesError(missing_sources_message(registry, missing, raw))

    with build_lock(out):
        _recover_interrupted(out)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            staging = work / "out"
            staging.mkdir()
            old_report = _read_report(out)
            report = {"configs": {}, "settings": _settings_dict(settings)}
            result = BuildResult(out=out, report=report)
            # Carry over configs that are not rebuilt (hard links: no copy).
            for name in old_report.get("configs", {}):
                if name not in names and (out / name).is_dir():
                    _link_tree(out / name, staging / name)
                    report["configs"][name] = old_report["configs"][name]
            for name in tqdm(names, desc="building", unit="config", disable=not progress):
                if not present[name]:
                    result.skipped[name] = "no source present"
                    report.setdefault("skipped", {})[name] = {
                        "reason": "no source present (--partial)", "missing_sources": sorted(registry.subset(name).sources)}
                    logger.warning("%s: skipped, none of its sources is in %s", name, raw)
                    continue
                logger.info("building %s from %s", name, ", ".join(present[name]))
                only = None if len(present[name]) == len(registry.subset(name).sources) else present[name]
                report["configs"][name] = _build_one(registry, name, raw, settings, only, staging / name, work)
                result.built.append(name)
            report["configs"] = dict(sorted(report["configs"].items()))
            (staging / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            cards.write_export_metadata(staging, registry, report)
            _swap_in(staging, out, work)
        finally:
            shutdown_pools()
            shutil.rmtree(work, ignore_errors=True)
    return result


def _settings_dict(s: BuildSettings) -> dict:
    return {
        "seed": s.seed,
        "train_cap": s.train_cap,
        "test_fraction": s.test_fraction,
        "test_max_per_label": s.test_max_per_label,
        "test_cap": s.test_cap,
        "lenient": s.lenient,
        "near_duplicates": s.near_duplicates.to_dict(),
    }


def _read_report(out: Path) -> dict:
    path = out / REPORT_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file():
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy2(f, dst / f.name)


def _recover_interrupted(out: Path) -> None:
    """Undo what a build killed mid-way left: restore a moved-away output, delete temp folders."""
    for tmp in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        previous = tmp / "previous"
        if not out.exists() and previous.is_dir():
            os.replace(previous, out)
            logger.warning("restored %s from an interrupted build", out)
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(staging: Path, out: Path, work: Path) -> None:
    """Replace ``out`` with ``staging`` using renames only (the old output survives until the end)."""
    if out.exists():
        trash = work / "previous"
        os.replace(out, trash)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(trash, out)
            raise
    else:
        os.replace(staging, out)
