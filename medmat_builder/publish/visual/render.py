"""The pages of the visual report, rendered with the Jinja2 templates shipped in this package (``templates/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from medmat_builder.publish.visual.ledger import source_view
from medmat_builder.publish.visual.rawpaths import RawPaths
from medmat_builder.publish.visual.samples import SAMPLES_PER_LABEL, read_config
from medmat_builder.registry import Registry
from medmat_builder.report import BuildReport, ConfigReport

INDEX = "index.html"
GROUNDING_KINDS = ("detection", "segmentation")


@dataclass
class RenderedReport:
    """Page name -> HTML text."""

    pages: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment (templates read with ``importlib.resources``, so an installed wheel has them)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("medmat_builder.publish.visual", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def human_size(n: int) -> str:
    """Bytes as ``12.3 MB`` / ``4.5 kB`` / ``17 B``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def page_name(config: str) -> str:
    return f"{config}.html"


def _subset_info(registry: Registry, name: str) -> dict[str, Any]:
    try:
        sub = registry.subset(name)
    except KeyError:
        return {"title": "(not in this registry)", "modality": "?", "area": "?", "task": "?", "kind": "?", "labels": []}
    return {"title": sub.title, "modality": sub.modality, "area": sub.area, "task": sub.task, "kind": sub.kind,
            "labels": list(sub.labels)}


def _sources(registry: Registry, rep: ConfigReport) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(rep.sources):
        try:
            src = registry.source(key)
            rows.append({"key": key, "name": src.name, "license": src.license, "access": src.access,
                         "homepage": src.homepage, "missing": rep.sources[key].missing})
        except KeyError:
            rows.append({"key": key, "name": "(not in this registry)", "license": "?", "access": "?",
                         "homepage": "", "missing": rep.sources[key].missing})
    return rows


def config_context(folder: Path, registry: Registry, report: BuildReport, name: str, raw: RawPaths) -> dict[str, Any]:
    """Everything a config page shows."""
    rep = report.configs[name]
    info = _subset_info(registry, name)
    splits = read_config(folder / name, name, seed=report.settings.seed, label_order=info["labels"], raw_path=raw)
    return {
        "name": name, **info, "grounding": info["kind"] in GROUNDING_KINDS, "splits": splits,
        "sources": _sources(registry, rep),
        "source_views": [source_view(key, rep.sources[key], raw) for key in sorted(rep.sources)],
        "leakage": rep.groups, "warnings": rep.warnings, "ood": rep.ood, "per_label": SAMPLES_PER_LABEL,
        "rows": {s.split: s.rows for s in splits}, "size": human_size(sum(s.bytes for s in splits)),
    }


def render_pages(folder: Path, registry: Registry, report: BuildReport, raw: RawPaths) -> RenderedReport:
    """The summary page and one page per config of the export in ``folder``."""
    env = environment()
    out = RenderedReport()
    summary = []
    for name in sorted(report.configs):
        ctx = config_context(folder, registry, report, name, raw)
        out.pages[page_name(name)] = env.get_template("config.html.j2").render(**ctx)
        summary.append({"name": name, "page": page_name(name), "title": ctx["title"], "modality": ctx["modality"],
                        "area": ctx["area"], "task": ctx["task"], "kind": ctx["kind"], "rows": ctx["rows"],
                        "size": ctx["size"], "warnings": ctx["warnings"], "ood": ctx["ood"],
                        "leaks": ctx["leakage"].across_splits,
                        "missing": report.configs[name].missing_sources})
    out.pages[INDEX] = env.get_template("index.html.j2").render(
        configs=summary, skipped=sorted(report.skipped.items()), settings=report.settings)
    return out
