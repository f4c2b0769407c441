"""License-gated upload of an export to the Hugging Face Hub.

:func:`plan_publish` decides what goes up, :func:`audit_payload` proves that no image of a source
with ``redistributable: false`` is in it, and :func:`publish` uploads it with ``huggingface_hub``
(``create_repo`` then one ``create_commit``).

A source counts as redistributable only if the registry says so *and* the export's ``licenses.csv``
does not say otherwise; a row whose source is unknown counts as restricted. Configs holding rows of
restricted sources are handled by ``restricted``:

- ``"text-only"`` (default): the parquet files are rewritten with ``image`` set to null on those rows
  (everything else kept, schema unchanged), and the card says how to rebuild them with images;
- ``"skip"``: the config is left out of the upload.

The token comes from ``huggingface_hub``'s usual places (``HF_TOKEN``, the saved login) and is never
printed, logged or written; the endpoint from ``HF_ENDPOINT`` (default: the Hub).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medmat_builder import safe_paths
from medmat_builder.publish.card import render_readme
from medmat_builder.publish.card_body import Publication
from medmat_builder.publish.croissant import FileDigest, croissant_metadata, dumps
from medmat_builder.publish.licenses import license_table
from medmat_builder.publish.naming import CARD_NAME, CROISSANT_NAME, LICENSE_TABLE
from medmat_builder.registry import Registry
from medmat_builder.report import REPORT_NAME, SCHEMA_NAME, BuildReport, ReportError, report_schema

logger = logging.getLogger(__name__)
RestrictedMode = Literal["text-only", "skip"]
RESTRICTED_MODES: tuple[str, ...] = ("text-only", "skip")


class PublishError(RuntimeError):
    """Publishing cannot proceed; the message says what to do."""


class LeakError(PublishError):
    """The payload holds an image of a source that may not be redistributed (a bug: nothing was uploaded)."""


@dataclass
class PlannedFile:
    """One file of the upload: read from ``local`` as is, or ``content`` written by the planner."""

    path_in_repo: str
    local: Path | None = None
    content: bytes | None = None
    rows: int | None = None
    images: int | None = None
    images_removed: int = 0

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else self.local.stat().st_size  # type: ignore[union-attr]

    def data(self) -> bytes:
        return self.content if self.content is not None else self.local.read_bytes()  # type: ignore[union-attr]


@dataclass
class PublishPlan:
    repo_id: str
    restricted: str
    files: list[PlannedFile] = field(default_factory=list)
    publication: Publication = field(default_factory=Publication)
    redistributable: frozenset[str] = frozenset()

    @property
    def configs(self) -> list[str]:
        return sorted({f.path_in_repo.split("/")[0] for f in self.files if "/" in f.path_in_repo})

    def describe(self) -> str:
        """What would be uploaded: every file with its size, rows and images; skipped configs."""
        lines = [f"upload to datasets/{self.repo_id} (restricted sources: {self.restricted})"]
        width = max((len(f.path_in_repo) for f in self.files), default=10)
        for f in self.files:
            line = f"  {f.path_in_repo:<{width}}  {f.size:>10,} bytes"
            if f.rows is not None:
                line += f"  rows {f.rows:>6}  images {f.images:>6}"
                if f.images_removed:
                    line += f"  (images removed: {f.images_removed})"
            lines.append(line)
        for name, keys in sorted(self.publication.skipped.items()):
            lines.append(f"  skipped {name}: restricted sources {', '.join(keys)}")
        rows = sum(f.rows or 0 for f in self.files)
        images = sum(f.images or 0 for f in self.files)
        lines.append(f"{len(self.files)} files, {len(self.configs)} configs, {rows} rows, {images} images")
        return "\n".join(lines)


def redistributable_sources(folder: Path, registry: Registry) -> frozenset[str]:
    """Keys whose images may be uploaded: true in the registry and not false in ``licenses.csv``."""
    allowed = {s.key for s in registry.sources if s.redistributable}
    table = folder / LICENSE_TABLE
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if str(row.get("redistributable", "")).strip().lower() != "true":
                    allowed.discard(row.get("source", ""))
    return frozenset(allowed)


def _strip_images(table: pa.Table, restricted_rows: pa.Array) -> pa.Table:
    idx = table.schema.get_field_index("image")
    image = table.column(idx).combine_chunks()
    cleared = pc.if_else(restricted_rows, pa.nulls(len(image), image.type), image)
    return table.set_column(idx, table.schema.field(idx), cleared)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _count_images(table: pa.Table) -> int:
    if "image" not in table.column_names:
        return 0
    return len(table) - table.column("image").null_count


def load_report(folder: Path) -> BuildReport:
    """The build report of an export folder; :class:`PublishError` when there is none or it cannot be read."""
    try:
        return BuildReport.read(folder)
    except ReportError as exc:
        raise PublishError(str(exc)) from None


def plan_publish(folder: str | Path, repo_id: str, registry: Registry,
                 restricted: RestrictedMode = "text-only") -> PublishPlan:
    """Decide every file of the upload; restricted images are removed or their config skipped."""
    if restricted not in RESTRICTED_MODES:
        raise PublishError(f"--restricted must be one of {', '.join(RESTRICTED_MODES)}, not {restricted!r}")
    folder = Path(folder)
    report = load_report(folder)
    unknown = [n for n in report.configs if n not in registry.subset_names]
    if unknown:
        raise PublishError(
            f"configs {', '.join(sorted(unknown))} of {folder} are not in the registry; "
            "pass the registry the export was built with (--registry)"
        )
    allowed = redistributable_sources(folder, registry)
    plan = PublishPlan(repo_id=repo_id, restricted=restricted, redistributable=allowed,
                       publication=Publication(repo_id=repo_id))
    config_files: list[PlannedFile] = []
    for name in sorted(report.configs):
        files = sorted((folder / name).glob("*.parquet"))
        if not files:
            raise PublishError(f"{folder / name} has no parquet files; rebuild it with `medmat build {name}`")
        planned, bad_keys, removed = [], set(), 0
        for f in files:
            table = pq.ParquetFile(f).read()  # read here, not through pyarrow.dataset (see audit_payload)
            sources = table.column("source").to_pylist()
            mask = [s not in allowed for s in sources]
            bad_keys.update(s for s, m in zip(sources, mask) if m)
            pf = PlannedFile(path_in_repo=f"{name}/{f.name}", local=f, rows=len(table))
            if any(mask):
                has_image = table.column("image").is_valid().to_pylist()
                pf.images_removed = sum(1 for m, v in zip(mask, has_image) if m and v)
                removed += sum(mask)
                table = _strip_images(table, pa.array(mask, pa.bool_()))
                pf.local, pf.content = None, _parquet_bytes(table)
            pf.images = _count_images(table)
            planned.append(pf)
        if bad_keys and restricted == "skip":
            plan.publication.skipped[name] = sorted(bad_keys)
            continue
        if bad_keys:
            plan.publication.text_only[name] = {"sources": sorted(bad_keys), "rows": removed}
        config_files.extend(planned)

    published = [n for n in sorted(report.configs) if n not in plan.publication.skipped]
    sub_report = report.only(published)
    card = PlannedFile(CARD_NAME, content=render_readme(registry, sub_report, plan.publication).encode())
    table = PlannedFile(LICENSE_TABLE, content=license_table(registry, sub_report).encode())
    rep = PlannedFile(REPORT_NAME, content=sub_report.to_json().encode())
    schema = PlannedFile(SCHEMA_NAME, content=report_schema().encode())
    # Croissant lists every other file of the payload with the sha256 of the bytes uploaded.
    digests = {f.path_in_repo: FileDigest.of_bytes(f.content) if f.content is not None else FileDigest.of_file(f.local)
               for f in (card, table, rep, schema, *config_files)}
    croissant = PlannedFile(CROISSANT_NAME, content=dumps(croissant_metadata(
        registry, sub_report, url=f"https://huggingface.co/datasets/{repo_id}", files=digests)).encode())
    plan.files.extend([card, table, croissant, rep, schema, *config_files])
    return plan


def audit_payload(plan: PublishPlan) -> None:
    """Re-read every parquet payload; raise :class:`LeakError` if a restricted row still has an image."""
    for f in plan.files:
        if not f.path_in_repo.endswith(".parquet"):
            continue
        # a native buffer, read in this thread: ``read_table`` of a Python file object left a pyarrow I/O thread
        # holding it, which aborted the interpreter at exit (``terminate called without an active exception``)
        table = pq.ParquetFile(pa.BufferReader(f.data())).read(columns=["source", "image"])
        for src, valid in zip(table.column("source").to_pylist(), table.column("image").is_valid().to_pylist()):
            if valid and src not in plan.redistributable:
                raise LeakError(f"{f.path_in_repo}: a row of restricted source {src!r} still holds an image; "
                                "nothing was uploaded (please report this bug)")


def save_payload(plan: PublishPlan, dest: str | Path) -> Path:
    """Write every file of ``plan`` under ``dest`` as the Hub would hold it (``load_dataset(dest, config)`` works).

    ``dest`` follows the output-folder rule (new, empty, or an earlier saved payload); files of an
    earlier payload that the plan no longer has are removed. This is what ``medmat fill`` reads.
    """
    owned = safe_paths.claim(dest, "payload", label="--save")
    try:
        with owned.lock(f"another medmat process is writing to {owned.path}"):
            stage = owned.scratch()
            for f in plan.files:
                path = stage / f.path_in_repo
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.data())
            owned.commit(stage, remove=owned.files())
    except BaseException:
        owned.abandon()
        raise
    return owned.path


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


@dataclass
class PublishResult:
    plan: PublishPlan
    commit_url: str | None = None
    commit_oid: str | None = None


def publish(folder: str | Path, repo_id: str, registry: Registry, *, private: bool = False,
            restricted: RestrictedMode = "text-only", dry_run: bool = False, endpoint: str | None = None,
            gate: bool = True) -> PublishResult:
    """Plan, audit and (unless ``dry_run``) upload an export as the dataset repo ``repo_id``."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo-id must look like ORG/NAME, not {repo_id!r}")
    plan = plan_publish(folder, repo_id, registry, restricted)
    audit_payload(plan)
    result = PublishResult(plan=plan)
    if dry_run:
        return result

    from huggingface_hub import CommitOperationAdd, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token found: run `hf auth login` or set HF_TOKEN (it is never printed)")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        gated = "extra_gated_prompt" in plan.files[0].data().decode()
        if gate and gated:
            api.update_repo_settings(repo_id, repo_type="dataset", gated="auto")
        operations = [
            CommitOperationAdd(path_in_repo=f.path_in_repo,
                               path_or_fileobj=f.content if f.content is not None else str(f.local))
            for f in plan.files
        ]
        info = api.create_commit(
            repo_id, operations, repo_type="dataset",
            commit_message=f"medmat publish: {len(plan.configs)} configs",
            commit_description=plan.describe(),
        )
    except HfHubHTTPError as exc:
        raise PublishError(_scrub(f"the Hub refused the upload: {exc}", token)) from None
    result.commit_url, result.commit_oid = info.commit_url, info.oid
    return result
