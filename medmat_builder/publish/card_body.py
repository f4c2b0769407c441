"""The Markdown body of the dataset card, rendered from the Jinja2 templates in ``dataset_cards/``.

``README.md.j2`` (the whole card) includes ``subset.md.j2`` once per config; optional extra notes per
subset come from ``dataset_cards/subsets/subset_NN.md``. Everything shown comes from the registry and
the typed build report; ``medmat publish`` adds a :class:`Publication` (configs uploaded text-only or
left out). Output is deterministic: no dates, host names or absolute paths, and every collection is sorted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from medmat_builder.publish import provenance
from medmat_builder.publish.licenses import export_sources, hub_license_id, license_terms
from medmat_builder.publish.naming import DEFAULT_REPO_ID, MEDMAT_CITATION, PRETTY_NAME
from medmat_builder.records import ANSWER_DIRECTIVE, ANSWER_FORMAT, COLUMNS, NO_BOX_ANSWER
from medmat_builder.registry import Registry, Source
from medmat_builder.report import BuildReport
from medmat_builder.resources import cards_dir

#: ``dataset_cards/`` of the checkout, or the copy an installed wheel carries (:mod:`medmat_builder.resources`).
TEMPLATES_DIR = cards_dir()


@dataclass
class Publication:
    """What ``medmat publish`` uploads, for the card: configs published text-only or left out."""

    repo_id: str = DEFAULT_REPO_ID
    #: config -> {"sources": [restricted keys], "rows": rows whose image was removed}
    text_only: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: config -> restricted source keys that made it skip
    skipped: dict[str, list[str]] = field(default_factory=dict)


def card_configs(report: BuildReport, publication: Publication | None = None) -> list[str]:
    """The configs a card describes: every built one, less those a publication leaves out."""
    names = sorted(report.configs)
    if publication is not None:
        names = [n for n in names if n not in publication.skipped]
    return names


def sources_of(registry: Registry, names: list[str]) -> list[Source]:
    """The sources of the configs ``names``, by key."""
    keys = sorted({k for n in names for k in registry.subset(n).sources})
    return [registry.source(k) for k in keys]


def _kept(report: BuildReport, name: str, key: str) -> int:
    """Rows that source ``key`` holds in config ``name``."""
    led = report.configs[name].sources.get(key)
    return led.kept.train + led.kept.test if led is not None else 0


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")


def config_context(registry: Registry, report: BuildReport, name: str, publication: Publication | None = None) -> dict:
    """Everything the subset template shows about one config."""
    sub = registry.subset(name)
    rep = report.configs[name]
    sources = []
    for s in registry.sources_of(sub):
        led = rep.sources.get(s.key)
        groups = led.groups if led is not None and led.groups is not None else None
        sources.append({
            "key": s.key, "number": s.number, "name": s.name, "homepage": s.homepage, "license": s.license,
            "license_url": s.license_url, "access": s.access, "redistributable": s.redistributable,
            "citation": s.citation.strip(), "kept_train": led.kept.train if led else 0,
            "kept_test": led.kept.test if led else 0,
            "unverified": {fact: " ".join(why.split()) for fact, why in s.unverified.items()},
            "group_key": _one_line(s.groups.describe()) if s.groups is not None else "none: not declared",
            "groups_train": groups.train if groups else 0, "groups_test": groups.test if groups else 0,
        })
    status = None
    if publication is not None:
        info = publication.text_only.get(name)
        status = (f"text-only for {', '.join(info['sources'])} ({info['rows']} rows without image); "
                  "rebuild locally for the images") if info else "all images included"
    extra = TEMPLATES_DIR / "subsets" / f"{name}.md"
    dist = {"id": "in-distribution (Table 1)", "ood": "out-of-distribution (Table 2)", "none": "detection/segmentation"}
    counts = rep.label_counts
    return {
        "name": name, "title": sub.title, "modality": sub.modality, "area": sub.area, "task": sub.task,
        "task_group": sub.task_group, "kind": sub.kind, "paper_distribution_text": dist[sub.paper_distribution],
        "labels": list(sub.labels), "instructions": list(sub.instructions), "notes": (sub.notes or "").strip(),
        "extra_notes": extra.read_text(encoding="utf-8").strip() if extra.is_file() else "",
        "num_train": rep.num_examples.train, "num_test": rep.num_examples.test,
        "label_counts": {"train": counts.get("train", {}), "test": counts.get("test", {})},
        "ood": rep.ood, "sources": sources,
        "groups": {"train": rep.groups.train, "test": rep.groups.test, "across": rep.groups.across_splits},
        "citations": list(dict.fromkeys(s["citation"] for s in sources)),
        "terms": license_terms([s.license for s in registry.sources_of(sub)]), "publication": status,
    }


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_body(registry: Registry, report: BuildReport, publication: Publication | None = None) -> str:
    """The Markdown body of the card (``dataset_cards/README.md.j2``)."""
    names = card_configs(report, publication)
    configs = [config_context(registry, report, n, publication) for n in names]
    sources = export_sources(registry, report, names)
    by_license: dict[str, list[str]] = {}
    for s in sources:
        by_license.setdefault(s.license, []).append(s.key)
    licenses = sorted(by_license)
    summary = {
        "single": licenses[0] if len(licenses) == 1 else None,
        "by_license": by_license,
        "non_commercial": [c["name"] for c in configs if c["terms"].non_commercial],
        "share_alike": [c["name"] for c in configs if c["terms"].share_alike],
        "unknown": [c["name"] for c in configs if c["terms"].unknown],
    }
    per_source = [
        {"key": s.key, "name": _one_line(s.name), "license": _one_line(s.license), "license_url": s.license_url or "",
         "hub_id": hub_license_id(s.license) or "other", "access": s.access,
         "redistributable": "yes" if s.redistributable else "no",
         "configs": ", ".join(n for n in names if _kept(report, n, s.key)), "homepage": s.homepage}
        for s in sources
    ]
    restricted = [
        {"key": s.key, "name": s.name, "access": s.access, "homepage": s.homepage, "obtain_one_line": _one_line(s.obtain)}
        for s in sources_of(registry, sorted(report.configs))
        if not s.redistributable
    ]
    context = {
        "pretty_name": PRETTY_NAME,
        "repo_id": publication.repo_id if publication else DEFAULT_REPO_ID,
        "configs": configs,
        "totals": {"train": sum(c["num_train"] for c in configs), "test": sum(c["num_test"] for c in configs)},
        "train_cap": f"{report.settings.train_cap:,}",
        "fields": [{"name": c.name, "type": c.card_type, "doc": c.doc} for c in COLUMNS],
        "answer_directive": ANSWER_DIRECTIVE,
        "box_format": ANSWER_FORMAT,
        "no_box_answer": NO_BOX_ANSWER,
        "license_summary": summary,
        "source_licenses": per_source,
        "paper": {"title": provenance.PAPER_TITLE, "arxiv_id": provenance.ARXIV_ID,
                  "arxiv_url": provenance.ARXIV_URL, "hf_url": provenance.HF_PAPER_URL},
        "restricted_sources": restricted,
        "publication": publication,
        "citation": MEDMAT_CITATION,
    }
    text = _environment().get_template("README.md.j2").render(**context)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
