"""``medmat build``: run the builder for the requested configs and write the Hub layout.

Output (``DIR``, default ``./medmat``)::

    DIR/README.md                 dataset card with YAML ``configs:`` (load_dataset needs no script)
    DIR/subset_NN/{train,test}-00000-of-0000K.parquet
    DIR/build_report.json         the ledger (see medmat_builder.report), with build_report.schema.json
    DIR/licenses.csv              one row per source: license, access, redistributable
    DIR/croissant.json            Croissant metadata of the export
    DIR/report/index.html         the visual build report, one page per config (medmat_builder.publish.visual)
    DIR/.medmat/                  medmat's marker (owner.json: the files it wrote), lock and scratch space

``DIR`` must be a new path, an empty folder or an earlier medmat export (its marker says so); anything
else is refused before any work starts (:mod:`medmat_builder.safe_paths`). The build works in
``DIR/.medmat/staging-*`` and then moves the finished configs into place one folder at a time and the
other files with renames, replacing only files medmat wrote (:mod:`~medmat_builder.build.swap`: ``DIR``
loads at every instant, whatever stops the build); a lock inside ``DIR`` refuses a second concurrent
build into the same folder (a link to ``DIR`` included). Configs already in ``DIR`` that are not rebuilt
are kept unchanged, and so are files a user put into ``DIR``. A rerun keeps, without rebuilding, every
config whose output is complete and whose inputs are unchanged (:mod:`~medmat_builder.build.resume`;
``force`` rebuilds them).

SIGINT and SIGTERM stop a build cleanly (:mod:`~medmat_builder.build.signals`): the temporary files are
removed, the decoding workers stopped and the previous output left as it was; workers die with the
build even when it is killed with SIGKILL, and the image spool is never visible in ``$TMPDIR``.

Every written config loads: a config whose train or test split would end empty (or, single-label, a
label with records but no test item) is never written. The build stops with one line saying why in
numbers (:class:`UnloadableConfigError`) and the previous output stays as it was; with ``partial``
the config is skipped instead, and the report lists it under ``skipped`` with that line.

The parquet files are written through public APIs only: the builder prepares each config
(``download_and_prepare``), ``as_dataset`` hands back each split, and :mod:`~medmat_builder.build.parquet`
writes it as ``{split}-NNNNN-of-NNNNN.parquet`` shards with ``pyarrow``: in a background thread from the
builder's tables while ``datasets`` writes its Arrow files (:class:`~medmat_builder.build.parquet.EarlySplit`),
checked against the prepared split, or from the builder's tables made again where that check fails. Those
Arrow files hold null images (the images are written once, into the parquet files) and are deleted.
With worker processes, ``croissant.json``'s metadata is made in one more, started first (it imports
mlcroissant while the main process scans: :class:`~medmat_builder.build.aside.Aside`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from medmat_builder import safe_paths
from medmat_builder.build import progress as stage_progress
from medmat_builder.build.builder import MedMatBuilder
from medmat_builder.build.digests import StagedDigests
from medmat_builder.build.errors import BuildError
from medmat_builder.build.finish import start_visual_report
from medmat_builder.build.aside import Aside
from medmat_builder.build.loader import shutdown_pools, start_pool
from medmat_builder.build.resume import Fingerprints, complete, input_fingerprints
from medmat_builder.build.select import EmptySplitError
from medmat_builder.build.settings import BuildSettings
from medmat_builder.build.signals import deferred, interruptible, pause_point
from medmat_builder.build.spool import sweep_stale_spools
from medmat_builder.build.swap import recover_swap, swap_configs
from medmat_builder.layouts.file_index import shared_indexes
from medmat_builder.layouts.misses import close_names
from medmat_builder.publish.croissant import preload as preload_croissant
from medmat_builder.publish.metadata import METADATA_FILES, write_export_metadata
from medmat_builder.publish.visual import report_user_files
from medmat_builder.records import SPLITS
from medmat_builder.registry import Registry, Source, load_registry
from medmat_builder.report import (
    REPORT_NAME,
    SCHEMA_NAME,
    BuildReport,
    ConfigReport,
    ReportError,
    SkippedConfig,
    SplitCounts,
)

logger = logging.getLogger(__name__)
#: Files of the export folder besides the configs (medmat refuses to replace them if it did not write them).
META_FILES = (*METADATA_FILES, REPORT_NAME, SCHEMA_NAME)


@dataclass
class BuildResult:
    """What a build did: where, the report it wrote, the configs built and those skipped (with why)."""

    out: Path
    report: BuildReport
    built: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    #: configs kept as they were: complete output, unchanged inputs (see :mod:`~medmat_builder.build.resume`)
    unchanged: list[str] = field(default_factory=list)


class MissingSourcesError(BuildError):
    pass


class UnloadableConfigError(BuildError):
    """A config would be written with an empty split (or a label without test item); nothing was written."""


def source_present(raw: Path, source: Source) -> bool:
    folder = raw / source.folder
    return folder.is_dir() and any(e.name != safe_paths.STATE_DIR for e in folder.iterdir())


def missing_sources_message(registry: Registry, missing: dict[str, list[str]], raw: Path) -> str:
    """First line: what is missing, the folder each name comes close to, what to do (the command line
    prints that line); then per source its homepage and how to obtain it."""
    lines = [f"Sources missing from {raw} (each must be unpacked as {raw}/<key>/):"]
    try:
        present = sorted(p.name for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        present = []
    taken = {s.folder for s in registry.sources}
    short: list[str] = []
    for key, configs in sorted(missing.items()):
        src = registry.source(key)
        lines.append(f"- {key} ({src.name}; needed by {', '.join(configs)}; access: {src.access})")
        near = [n for n in close_names(src.folder, present) if n not in taken or n.lower() == src.folder.lower()]
        short.append(f"raw folder {raw / src.folder} not found" + (f"; did you mean {raw / near[0]}?" if near else "")
                     + f" ({key}, for {', '.join(configs)})")
        if near:
            lines.append(f"    found {raw / near[0]}/ instead: if that is this source, rename it to {raw / src.folder}/ "
                         "(folder names are case-sensitive)")
        lines.append(f"    homepage: {src.homepage}")
        for step in src.obtain.strip().splitlines():
            lines.append(f"    {step}")
    lines.append("Download them, or pass --partial to build from the sources that are present.")
    more = f"; and {len(short) - 3} more" if len(short) > 3 else ""
    head = (f"{len(short)} source{'s' if len(short) > 1 else ''} missing: " + "; ".join(short[:3]) + more
            + ". Unpack each as RAW/<key>/ (`medmat sources show KEY` says how), or pass --partial")
    return "\n".join([head, *lines])


def check_out(out: str | Path, raw: str | Path | None = None) -> Path:
    """Apply the ``--out`` rule (see :mod:`medmat_builder.safe_paths`); return ``out`` resolved.

    Raises :class:`~medmat_builder.safe_paths.UnsafePathError` before any work starts.
    """
    keep_clear = [("the data dir", raw)] if raw is not None else []
    return safe_paths.check_output_dir(out, "export", label="--out", keep_clear=keep_clear)


@contextmanager
def build_lock(out: Path, raw: str | Path | None = None):
    """Claim ``out`` as an export and hold its lock (``out/.medmat/lock``) for the duration.

    The path is resolved first, so a link and its target share one lock. A second build into the
    same folder is refused with :class:`BuildError`. Yields the :class:`~medmat_builder.safe_paths.OwnedFolder`.
    """
    owned = safe_paths.claim(out, "export", label="--out",
                             keep_clear=[("the data dir", raw)] if raw is not None else [])
    try:
        with owned.lock(f"another medmat build is writing to {owned.path}") as held:
            yield held
    except safe_paths.FolderBusyError as exc:
        raise BuildError(f"{exc} or choose another --out") from None
    except BaseException:
        owned.abandon()  # a first build that failed leaves no empty --out behind
        raise


def _rows_on_disk(folder: Path) -> dict[str, int]:
    """Rows per split of a config's parquet files (from their footers)."""
    import pyarrow.parquet as pq

    return {split: sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob(f"{split}-*.parquet")))
            for split in ("train", "test")}


def _link_owned(out: Path, staging: Path, name: str, ours: frozenset[str]) -> None:
    """Hard-link (or copy) the files medmat wrote under ``out/name`` into ``staging/name``."""
    prefix = name + "/"
    for rel in sorted(ours):
        if not rel.startswith(prefix):
            continue
        src, dst = out / rel, staging / rel
        if not src.is_file() or src.is_symlink():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _build_one(registry: Registry, name: str, raw: Path, settings: BuildSettings, only: tuple[str, ...] | None,
               dest: Path, work: Path, written: Callable[..., None] = lambda paths, digests: None) -> ConfigReport:
    """Prepare one config with the builder and write its parquet files into ``dest``; return its ledger.

    ``written`` is called with each split's parquet files once they are complete, and their digests (or None)."""
    builder = MedMatBuilder(
        config_name=name,
        registry=registry,
        cache_dir=str(work / "cache"),
        raw_dir=str(raw),
        settings=settings,
        only_sources=only,
    )
    builder.parquet_dest = dest  # each split's parquet files written alongside datasets' Arrow files
    prep = work / "prep" / name
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per config is enough
    try:
        builder.download_and_prepare(output_dir=str(prep), download_mode="force_redownload",
                                     verification_mode="no_checks")
        dest.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            ds = builder.as_dataset(split=split)
            with stage_progress.stage("write", total=ds.num_rows) as bar:
                written(*builder.export_split(split, ds))
                bar.update(ds.num_rows)
    finally:
        builder.close()
        if bars:
            datasets.enable_progress_bars()
    shutil.rmtree(prep, ignore_errors=True)
    assert builder.report is not None
    return builder.report


def build(
    configs: Sequence[str] | None,
    raw: str | Path,
    out: str | Path = "medmat",
    settings: BuildSettings | None = None,
    partial: bool = False,
    registry: Registry | None = None,
    progress: bool = False,
    force: bool = False,
) -> BuildResult:
    """Build ``configs`` (all 53 by default) from ``raw`` into ``out`` (Hub layout); see the module docstring.

    ``progress`` shows a counter per stage (scan, decode, write) on standard error; ``force`` rebuilds
    configs whose output is complete and inputs unchanged (kept as they are otherwise).
    Raises :class:`~medmat_builder.safe_paths.UnsafePathError` (nothing done) when ``out`` may not be written,
    and :class:`~medmat_builder.build.signals.BuildInterrupted` (temporary files removed, workers stopped,
    previous output loadable) on SIGINT or SIGTERM.
    """
    registry = registry or load_registry()
    settings = settings or BuildSettings()
    raw = Path(raw)
    out = check_out(out, raw)
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

    sweep_stale_spools()
    # shared_indexes: the inputs fingerprints, the scans and the visual report (for the configs kept unchanged;
    # a rebuilt config's raw paths come from its build) walk each source folder once
    with interruptible(), build_lock(out, raw) as owned, stage_progress.showing(progress), shared_indexes():
        recovered = recover_swap(owned)
        if recovered:
            logger.warning("%s: %s", out, recovered)
        work = owned.scratch()
        stopped = False
        digests: StagedDigests | None = None
        # forked before any thread and before the decoding pool; imports mlcroissant while this process scans
        aside = Aside(preload_croissant) if settings.num_proc > 1 else None
        try:
            staging = work / "out"
            staging.mkdir()
            digests = StagedDigests(staging)
            old = _read_report(out)
            report = BuildReport(settings=settings.record())
            result = BuildResult(out=out, report=report)
            ours = owned.files()
            clash = owned.conflicts(META_FILES, ours) + report_user_files(out, ours)
            if clash:  # known names first, before any work
                raise safe_paths.UnsafePathError(
                    f"--out {out} holds {', '.join(clash)}, which medmat did not write; move them out of it and run again")
            # Configs that are not rebuilt stay; their files are linked into the staging folder so that
            # the card and the Croissant file describe the whole export (only files medmat wrote).
            for name, kept in (old.configs.items() if old is not None else ()):
                if name not in names and (out / name).is_dir():
                    _link_owned(out, staging, name, ours)
                    # rows as on disk (a report written before num_examples counted rows may say otherwise)
                    report.configs[name] = kept.model_copy(update={"num_examples": SplitCounts(**_rows_on_disk(out / name))})
            fingerprints, prints, fresh = _unchanged(owned, out, registry, names, raw, settings, present, old, force)
            start_pool(settings.num_proc if len(fresh) < len(names) else 1)  # forked while this process is small
            for name in fresh:  # complete and inputs unchanged: kept like a config that is not rebuilt
                _link_owned(out, staging, name, ours)
                report.configs[name] = old.configs[name]  # type: ignore[union-attr]
                result.unchanged.append(name)
                logger.info("%s: unchanged since the last build (complete output, same inputs): kept; "
                            "--force rebuilds it", name)
            for name in tqdm([n for n in names if n not in fresh], desc="building", unit="config",
                             disable=not progress):
                stage_progress.set_config(name)
                if not present[name]:
                    result.skipped[name] = "no source present"
                    report.skipped[name] = SkippedConfig(reason="no source present (--partial)",
                                                         missing_sources=sorted(registry.subset(name).sources))
                    logger.warning("%s: skipped, none of its sources is in %s", name, raw)
                    continue
                logger.info("building %s from %s", name, ", ".join(present[name]))
                only = _only(registry, name, present)
                try:
                    report.configs[name] = _build_one(registry, name, raw, settings, only, staging / name, work,
                                                      written=digests.add)
                except EmptySplitError as exc:
                    if not partial:
                        raise UnloadableConfigError(
                            f"{exc}; nothing was written (pass --partial to build the other configs without it)"
                        ) from None
                    result.skipped[name] = str(exc)
                    report.skipped[name] = SkippedConfig(reason=str(exc), sources=exc.report.sources if exc.report else {})
                    logger.warning("%s: skipped, %s", name, exc)
                    continue
                result.built.append(name)
            for name in report.configs:  # the files linked in, hashed now (no decoding worker is forked after this)
                if name not in result.built:
                    digests.add_config(name)
            report.configs = dict(sorted(report.configs.items()))
            # report/index.html (docs/report.md) in an idle decoding worker, beside the card and ``aside``'s Croissant
            visual = start_visual_report(staging, registry, report, raw)
            report.write(staging)
            write_export_metadata(staging, registry, report, known=digests.result, pool=aside)
            visual.result()
            pause_point("write")  # test hook: everything staged, nothing committed
            # Forget the fingerprints of what is about to change; swap the rebuilt configs in one folder
            # at a time; then replace medmat's other files and remove those this build no longer has.
            fingerprints.update({}, forget=[*result.built, *result.skipped])
            swap_configs(owned, staging, result.built)
            swapped = tuple(f"{n}/" for n in result.built)
            with deferred():
                owned.commit(staging, remove={r for r in ours if not r.startswith(swapped)})
            fingerprints.update({n: prints[n] for n in (*fresh, *result.built)})
        except BaseException:
            stopped = True
            raise
        finally:
            if digests is not None:
                digests.close()
            shutdown_pools(kill=stopped)
            if aside is not None:
                aside.shutdown(cancel_futures=stopped)
            shutil.rmtree(work, ignore_errors=True)
    return result


def _only(registry: Registry, name: str, present: dict[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    """The sources to read for ``name``: None for all of them, else those present (``--partial``)."""
    return None if len(present[name]) == len(registry.subset(name).sources) else present[name]


def _unchanged(owned: safe_paths.OwnedFolder, out: Path, registry: Registry, names: Sequence[str], raw: Path,
               settings: BuildSettings, present: dict[str, tuple[str, ...]], old: BuildReport | None,
               force: bool) -> tuple[Fingerprints, Mapping[str, str], list[str]]:
    """The stored fingerprints, the inputs fingerprint of each config of ``names`` (worked out when first read,
    see :func:`~medmat_builder.build.resume.input_fingerprints`) and those to keep as they are: complete output,
    same fingerprint (none with ``force``)."""
    fingerprints = Fingerprints(owned.state)
    names = [name for name in names if present[name]]
    aside = settings.num_proc > 1 and (force or old is None or any(name not in old.configs for name in names))
    prints = input_fingerprints(registry, names, raw, settings, lambda name: _only(registry, name, present), aside)
    fresh: list[str] = []
    for name in prints:
        if force or old is None or name not in old.configs or not fingerprints.matches(name, prints[name]):
            continue
        if complete(out / name, old.configs[name].num_examples.model_dump(), _rows_on_disk):
            fresh.append(name)
    return fingerprints, prints, fresh


def _read_report(out: Path) -> BuildReport | None:
    """The report of the export being rebuilt, if it has a readable one (its other configs are kept)."""
    if not (out / REPORT_NAME).is_file():
        return None
    try:
        return BuildReport.read(out / REPORT_NAME)
    except ReportError:
        return None
