"""Dataset card, per-source license table and Croissant metadata of an export.

:func:`write_export_metadata` is what ``medmat build`` calls; it writes into the export folder:

- ``README.md``: the Hub dataset card. YAML front matter with the Hub's own fields (``license``, or
  ``license: other`` + ``license_name`` + ``license_link`` when sources differ; ``configs:`` so
  ``load_dataset(DIR, "subset_NN")`` needs no script), then a Markdown body rendered from the
  Jinja2 templates in ``dataset_cards/`` (``README.md.j2`` and ``subset.md.j2``; optional extra
  notes per subset in ``dataset_cards/subsets/subset_NN.md``).
- ``licenses.csv``: one row per source (license, URL, access level, ``redistributable``).
- ``croissant.json``: Croissant 1.1 metadata (see :mod:`medmat_builder.croissant`).

``medmat publish`` re-renders the card with a :class:`Publication` describing which configs go up
text-only or are left out. Output is deterministic: no dates, host names or absolute paths, and
every collection is sorted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from medmat_builder.records import ANSWER_DIRECTIVE, ANSWER_FORMAT, NO_BOX_ANSWER
from medmat_builder.registry import Registry, Source

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "dataset_cards"
PRETTY_NAME = "Med-MAT (rebuilt with medmat)"
DEFAULT_REPO_ID = "ORG/medmat"
LICENSE_NAME = "medmat-per-source"
LICENSE_TABLE = "licenses.csv"

MEDMAT_CITATION = """@misc{cai2024medmat,
  title  = {On the Compositional Generalization of Multimodal LLMs for Medical Imaging},
  author = {Cai, Zhenyang and Chen, Junying and Wang, Rongsheng and Wang, Weihong and Deng, Yonglin and Song, Dingjie and Chen, Yize and Zhang, Zixu and Wang, Benyou},
  year   = {2024},
  note   = {Med-MAT, github.com/FreedomIntelligence/Med-MAT}
}"""

#: SPDX ids (upper-cased) that the Hub's ``license:`` field knows, and the Hub's spelling of each.
HUB_LICENSE_IDS: dict[str, str] = {
    s.upper(): s
    for s in (
        "apache-2.0", "mit", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
        "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "odbl", "odc-by", "pddl",
        "bsd-2-clause", "bsd-3-clause", "gpl-3.0", "cdla-permissive-2.0", "cdla-sharing-1.0",
    )
}
HUB_LICENSE_IDS["ODC-BY-1.0"] = "odc-by"
HUB_LICENSE_IDS["ODBL-1.0"] = "odbl"
HUB_LICENSE_IDS["PDDL-1.0"] = "pddl"

#: The export's features, documented in the card (same order as the parquet columns).
FIELDS: list[tuple[str, str, str]] = [
    ("id", "string", "stable id, `subset_NN-<hash>`"),
    ("image", "Image", "the image (empty in text-only uploads of sources that forbid redistribution)"),
    ("question", "string", "instruction, lettered options and answer directive (classification) or box request"),
    ("options", "list[string]", "at most 4 options (empty for detection/segmentation)"),
    ("answer", "string", "letter `A`-`D` (classification) or box text (detection/segmentation)"),
    ("answer_label", "string", "text of the answer option, or the structure label(s)"),
    ("labels", "list[string]", "canonical labels of the record"),
    ("boxes", "list[{label, x1, y1, x2, y2}]", "boxes normalized to integers 0-1000 (empty for classification)"),
    ("modality", "string", "M of the MAT triplet"),
    ("area", "string", "A of the MAT triplet"),
    ("task", "string", "T of the MAT triplet"),
    ("subset", "string", "config name"),
    ("source", "string", "key of the source dataset (see `licenses.csv`)"),
    ("license", "string", "license or terms of the source dataset"),
    ("group", "string", "subject (patient, lesion, volume, video) as a pseudonym: 16 hex digits of a salted hash "
     "of the source and its subject id, never the id itself; the same in every config (use it for GroupKFold)"),
]


@dataclass(frozen=True)
class Terms:
    """What a set of licenses asks of a user, as flags for the card's summary."""

    licenses: tuple[str, ...]
    non_commercial: bool = False
    share_alike: bool = False
    no_derivatives: bool = False
    unknown: bool = False

    @staticmethod
    def _yes_no(flag: bool, unknown: bool) -> str:
        return "yes" if flag else ("unknown" if unknown else "no")

    @property
    def non_commercial_text(self) -> str:
        return self._yes_no(self.non_commercial, self.unknown)

    @property
    def share_alike_text(self) -> str:
        return self._yes_no(self.share_alike, self.unknown)

    @property
    def no_derivatives_text(self) -> str:
        return self._yes_no(self.no_derivatives, self.unknown)


_NC = re.compile(r"(^|[-\s(])NC([-\s)]|$)|non-?commercial|research[- ]use|research only|research and educational", re.I)
_SA = re.compile(r"(^|[-\s(])SA([-\s)]|$)|share-?alike|CDLA-SHARING", re.I)
_ND = re.compile(r"(^|[-\s(])ND([-\s)]|$)|no[- ]derivatives", re.I)


def license_terms(licenses: list[str] | tuple[str, ...]) -> Terms:
    """Summarize licenses: non-commercial (incl. research-only terms), share-alike, no-derivatives, unknown."""
    lics = tuple(sorted(set(licenses)))
    return Terms(
        licenses=lics,
        non_commercial=any(_NC.search(x) for x in lics),
        share_alike=any(_SA.search(x) for x in lics),
        no_derivatives=any(_ND.search(x) for x in lics),
        unknown=any(x.strip().lower() == "unknown" for x in lics),
    )


def hub_license_id(license: str) -> str | None:
    """The Hub's ``license:`` value for an SPDX id (``CC-BY-4.0`` -> ``cc-by-4.0``), else None."""
    return HUB_LICENSE_IDS.get(license.strip().upper())


@dataclass
class Publication:
    """What ``medmat publish`` uploads, for the card: configs published text-only or left out."""

    repo_id: str = DEFAULT_REPO_ID
    #: config -> {"sources": [restricted keys], "rows": rows whose image was removed}
    text_only: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: config -> restricted source keys that made it skip
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _configs(report: dict, publication: Publication | None) -> list[str]:
    names = sorted(report.get("configs", {}))
    if publication is not None:
        names = [n for n in names if n not in publication.skipped]
    return names


def _sources_in(registry: Registry, report: dict, names: list[str]) -> list[Source]:
    keys = sorted({k for n in names for k in registry.subset(n).sources})
    return [registry.source(k) for k in keys]


def front_matter(registry: Registry, report: dict, publication: Publication | None = None) -> dict:
    """The Hub's YAML header: license fields, tags, one config per subset."""
    names = _configs(report, publication)
    sources = _sources_in(registry, report, names)
    licenses = sorted({s.license for s in sources})
    meta: dict[str, Any] = {"pretty_name": PRETTY_NAME, "language": ["en"]}
    hub_id = hub_license_id(licenses[0]) if len(licenses) == 1 else None
    if hub_id:
        meta["license"] = hub_id
    else:
        meta.update(license="other", license_name=LICENSE_NAME, license_link=LICENSE_TABLE)
    total = sum(sum(report["configs"][n].get("num_examples", {}).values()) for n in names)
    meta.update(
        size_categories=[_size_category(total)],
        task_categories=["visual-question-answering", "image-classification", "object-detection"],
        tags=["medical", "compositional-generalization", "med-mat", "croissant"],
    )
    terms = license_terms(licenses)
    if publication is not None and (terms.non_commercial or terms.unknown or terms.no_derivatives):
        meta["extra_gated_prompt"] = (
            "Records of this dataset are governed by the terms of their source datasets (see licenses.csv); "
            "several allow only non-commercial research use. Agree to respect each source's terms."
        )
        meta["extra_gated_fields"] = {"I will respect the license of each source dataset": "checkbox"}
    meta["configs"] = [
        {
            "config_name": n,
            "data_files": [
                {"split": "train", "path": f"{n}/train-*.parquet"},
                {"split": "test", "path": f"{n}/test-*.parquet"},
            ],
        }
        for n in names
    ]
    return meta


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def license_table(registry: Registry, report: dict) -> str:
    """``licenses.csv``: one row per source of the built configs."""
    keys = sorted({k for n in report["configs"] for k in registry.subset(n).sources})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "number", "name", "license", "license_url", "access", "redistributable", "subsets", "homepage"])
    for k in keys:
        s = registry.source(k)
        w.writerow([k, s.number, s.name, s.license, s.license_url or "", s.access, str(s.redistributable).lower(),
                    " ".join(s.subsets), s.homepage])
    return buf.getvalue()


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")


def config_context(registry: Registry, report: dict, name: str, publication: Publication | None = None) -> dict:
    """Everything the subset template shows about one config."""
    sub = registry.subset(name)
    rep = report["configs"][name]
    ledgers = rep.get("sources", {})
    sources = []
    for s in registry.sources_of(sub):
        kept = ledgers.get(s.key, {}).get("kept", {})
        groups = ledgers.get(s.key, {}).get("groups") or {}
        sources.append({
            "key": s.key, "number": s.number, "name": s.name, "homepage": s.homepage, "license": s.license,
            "license_url": s.license_url, "access": s.access, "redistributable": s.redistributable,
            "citation": s.citation.strip(), "kept_train": kept.get("train", 0), "kept_test": kept.get("test", 0),
            "unverified": {fact: " ".join(why.split()) for fact, why in s.unverified.items()},
            "group_key": _one_line(s.groups.describe()) if s.groups is not None else "none: not declared",
            "groups_train": groups.get("train", 0), "groups_test": groups.get("test", 0),
        })
    status = None
    if publication is not None:
        info = publication.text_only.get(name)
        status = (f"text-only for {', '.join(info['sources'])} ({info['rows']} rows without image); "
                  "rebuild locally for the images") if info else "all images included"
    extra = TEMPLATES_DIR / "subsets" / f"{name}.md"
    dist = {"id": "in-distribution (Table 1)", "ood": "out-of-distribution (Table 2)", "none": "detection/segmentation"}
    counts = rep.get("label_counts", {})
    return {
        "name": name, "title": sub.title, "modality": sub.modality, "area": sub.area, "task": sub.task,
        "task_group": sub.task_group, "kind": sub.kind, "paper_distribution_text": dist[sub.paper_distribution],
        "labels": list(sub.labels), "instructions": list(sub.instructions), "notes": (sub.notes or "").strip(),
        "extra_notes": extra.read_text(encoding="utf-8").strip() if extra.is_file() else "",
        "num_train": rep.get("num_examples", {}).get("train", 0), "num_test": rep.get("num_examples", {}).get("test", 0),
        "label_counts": {"train": counts.get("train", {}), "test": counts.get("test", {})} if counts else None,
        "ood": bool(rep.get("ood", False)), "sources": sources,
        "groups": {"train": rep.get("groups", {}).get("train", 0), "test": rep.get("groups", {}).get("test", 0),
                   "across": rep.get("groups", {}).get("across_splits", 0)},
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


def render_body(registry: Registry, report: dict, publication: Publication | None = None) -> str:
    """The Markdown body of the card (``dataset_cards/README.md.j2``)."""
    names = _configs(report, publication)
    configs = [config_context(registry, report, n, publication) for n in names]
    sources = _sources_in(registry, report, names)
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
    restricted = [
        {"key": s.key, "name": s.name, "access": s.access, "homepage": s.homepage, "obtain_one_line": _one_line(s.obtain)}
        for s in _sources_in(registry, report, sorted(report.get("configs", {})))
        if not s.redistributable
    ]
    settings = report.get("settings", {})
    context = {
        "pretty_name": PRETTY_NAME,
        "repo_id": publication.repo_id if publication else DEFAULT_REPO_ID,
        "configs": configs,
        "totals": {"train": sum(c["num_train"] for c in configs), "test": sum(c["num_test"] for c in configs)},
        "train_cap": f"{settings.get('train_cap', 3000):,}",
        "fields": [{"name": n, "type": t, "doc": d} for n, t, d in FIELDS],
        "answer_directive": ANSWER_DIRECTIVE,
        "box_format": ANSWER_FORMAT,
        "no_box_answer": NO_BOX_ANSWER,
        "license_summary": summary,
        "restricted_sources": restricted,
        "publication": publication,
        "citation": MEDMAT_CITATION,
    }
    text = _environment().get_template("README.md.j2").render(**context)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def render_readme(
    registry: Registry, report: dict, publication: Publication | None = None, data_folder: Path | None = None
) -> str:
    """The whole card: YAML front matter, then the Markdown body.

    With ``data_folder`` (a local export), the header also carries ``dataset_info`` (features, and per
    split the exact bytes and rows of its parquet files). ``datasets`` derives its cache key for a
    local folder from this header, so a rebuilt export with other contents is never read from the
    previous build's cache by a plain ``load_dataset("medmat", ...)``.
    """
    header = front_matter(registry, report, publication)
    if data_folder is not None:
        header["dataset_info"] = dataset_info(data_folder, [c["config_name"] for c in header["configs"]])
    meta = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    return "---\n" + meta + "---\n\n" + render_body(registry, report, publication)


def dataset_info(folder: Path, names: list[str]) -> list[dict[str, Any]]:
    """``dataset_info`` entries of the Hub header, measured from the parquet files on disk."""
    import pyarrow.parquet as pq

    from medmat_builder.builder import FEATURES

    infos = []
    for name in names:
        splits, total = [], 0
        for split in ("train", "test"):
            files = sorted((Path(folder) / name).glob(f"{split}-*.parquet"))
            size = sum(f.stat().st_size for f in files)
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            splits.append({"name": split, "num_bytes": size, "num_examples": rows})
            total += size
        infos.append({"config_name": name, "features": FEATURES._to_yaml_list(), "splits": splits,
                      "download_size": total, "dataset_size": total})
    return infos


def write_export_metadata(folder: Path, registry: Registry, report: dict) -> None:
    """Write README.md, licenses.csv and croissant.json into an export folder."""
    from medmat_builder.croissant import write_croissant

    folder = Path(folder)
    (folder / "README.md").write_text(render_readme(registry, report, data_folder=folder), encoding="utf-8")
    (folder / LICENSE_TABLE).write_text(license_table(registry, report), encoding="utf-8")
    write_croissant(folder, registry, report)
