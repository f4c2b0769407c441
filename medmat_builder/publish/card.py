"""The dataset card (``README.md``): the Hub's YAML header through ``huggingface_hub``, then the Markdown body.

The header is a :class:`huggingface_hub.DatasetCardData`: ``pretty_name``, ``license`` (the set of the
sources' licenses as Hub ids, with ``other`` plus ``license_name`` and ``license_link`` for terms that
have no Hub id), ``size_categories`` (from the rows in the export), ``task_categories`` and
``task_ids`` (from the kinds of the subsets), ``source_datasets`` (one ``extended|other-<key>`` per
source), tags, ``configs`` (so ``load_dataset(DIR, "subset_NN")`` needs no script) and, for a local
export, ``dataset_info`` (features, and per split the exact bytes and rows of its parquet files). The
paper is linked from the body (the Hub reads that link and tags the card ``arxiv:2412.20070``). ``datasets``
derives its cache key for a local folder from this header, so a rebuilt export with other contents
is never read from the previous build's cache. The body comes from :mod:`~medmat_builder.publish.card_body`;
:class:`huggingface_hub.DatasetCard` puts the two together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from medmat_builder.publish.card_body import Publication, card_configs, render_body
from medmat_builder.publish.licenses import LICENSE_NAME, export_sources, hub_licenses, license_terms
from medmat_builder.publish.naming import LICENSE_TABLE, PRETTY_NAME
from medmat_builder.records import BOX_COLUMNS, COLUMNS, SPLITS, Column
from medmat_builder.registry import Registry, Source
from medmat_builder.report import BuildReport

#: Order of the header's keys in the card.
HEADER_ORDER = ["pretty_name", "language", "license", "license_name", "license_link", "size_categories",
                "source_datasets", "task_categories", "task_ids", "tags", "extra_gated_prompt", "extra_gated_fields",
                "configs", "dataset_info"]

#: The Hub's task categories and task ids of each kind of subset (ids from the Hub's task list,
#: ``PIPELINE_DATA`` of huggingface.js ``packages/tasks/src/pipelines.ts``). Every subset is visual
#: question answering; classification subsets are also image classification with lettered options
#: (multiple choice); detection and segmentation subsets answer with boxes (object detection, which
#: has no Hub task id that fits medical findings).
KIND_TASKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "single-label": (("visual-question-answering", "image-classification", "multiple-choice"),
                     ("visual-question-answering", "multi-class-image-classification", "multiple-choice-qa")),
    "multi-label": (("visual-question-answering", "image-classification", "multiple-choice"),
                    ("visual-question-answering", "multi-label-image-classification", "multiple-choice-qa")),
    "detection": (("visual-question-answering", "object-detection"), ("visual-question-answering",)),
    "segmentation": (("visual-question-answering", "object-detection"), ("visual-question-answering",)),
}


def tasks_of(registry: Registry, names: list[str]) -> tuple[list[str], list[str]]:
    """``task_categories`` and ``task_ids`` of the configs ``names`` (sorted, each once)."""
    kinds = {registry.subset(n).kind for n in names}
    categories = sorted({c for k in kinds for c in KIND_TASKS[k][0]})
    ids = sorted({i for k in kinds for i in KIND_TASKS[k][1]})
    return categories, ids


def source_datasets(sources: list[Source]) -> list[str]:
    """``source_datasets``: ``extended|other-<key>`` for each source (``other-``: not a Hub dataset)."""
    return [f"extended|other-{s.key}" for s in sorted(sources, key=lambda s: s.key)]


def card_data(registry: Registry, report: BuildReport, publication: Publication | None = None,
              data_folder: Path | None = None) -> DatasetCardData:
    """The Hub's YAML header: license fields, tags, one config per subset (and ``dataset_info`` of ``data_folder``)."""
    names = card_configs(report, publication)
    sources = export_sources(registry, report, names)
    licenses = sorted({s.license for s in sources})
    hub_ids = hub_licenses(licenses)
    fields: dict[str, Any] = {"license": hub_ids[0] if len(hub_ids) == 1 else hub_ids}
    if "other" in hub_ids:
        fields.update(license_name=LICENSE_NAME, license_link=LICENSE_TABLE)
    terms = license_terms(licenses)
    if publication is not None and (terms.non_commercial or terms.unknown or terms.no_derivatives):
        fields["extra_gated_prompt"] = (
            "Records of this dataset are governed by the terms of their source datasets (see licenses.csv); "
            "several allow only non-commercial research use. Agree to respect each source's terms."
        )
        fields["extra_gated_fields"] = {"I will respect the license of each source dataset": "checkbox"}
    fields["configs"] = [
        {"config_name": n, "data_files": [{"split": split, "path": f"{n}/{split}-*.parquet"} for split in SPLITS]}
        for n in names
    ]
    if data_folder is not None:
        fields["dataset_info"] = dataset_info(data_folder, names)
        total = sum(s["num_examples"] for info in fields["dataset_info"] for s in info["splits"])
    else:
        total = sum(report.configs[n].num_examples.train + report.configs[n].num_examples.test for n in names)
    task_categories, task_ids = tasks_of(registry, names)
    return DatasetCardData(
        pretty_name=PRETTY_NAME,
        language=["en"],
        size_categories=[size_category(total)],
        source_datasets=source_datasets(sources),
        task_categories=task_categories,
        task_ids=task_ids,
        tags=["medical", "compositional-generalization", "med-mat", "croissant"],
        **fields,
    )


#: The Hub's size categories (``DatasetCardData``), each with the row count it stays below.
SIZE_CATEGORIES = (
    (10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"), (10**12, "100B<n<1T"),
)


def size_category(n: int) -> str:
    """The Hub's size category of ``n`` records."""
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>1T")


def _feature_yaml(column: Column) -> dict[str, Any]:
    """One column in the Hub's ``dataset_info.features`` notation (``dtype``, or ``list`` of a type or of fields)."""
    if column.dtype == "list[box]":
        return {"name": column.name, "list": [_feature_yaml(c) for c in BOX_COLUMNS]}
    if column.dtype.startswith("list["):
        return {"name": column.name, "list": column.dtype[len("list["):-1]}
    return {"name": column.name, "dtype": column.dtype}


def features_yaml() -> list[dict[str, Any]]:
    """The export's features as the card's ``dataset_info`` lists them (from :data:`~medmat_builder.records.COLUMNS`)."""
    return [_feature_yaml(c) for c in COLUMNS]


def dataset_info(folder: Path, names: list[str]) -> list[dict[str, Any]]:
    """``dataset_info`` entries of the Hub header, measured from the parquet files on disk."""
    import pyarrow.parquet as pq

    infos = []
    for name in names:
        splits, total = [], 0
        for split in SPLITS:
            files = sorted((Path(folder) / name).glob(f"{split}-*.parquet"))
            size = sum(f.stat().st_size for f in files)
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            splits.append({"name": split, "num_bytes": size, "num_examples": rows})
            total += size
        infos.append({"config_name": name, "features": features_yaml(), "splits": splits,
                      "download_size": total, "dataset_size": total})
    return infos


def render_card(registry: Registry, report: BuildReport, publication: Publication | None = None,
                data_folder: Path | None = None) -> DatasetCard:
    """The whole card: the YAML header (:func:`card_data`), then the Markdown body."""
    header = card_data(registry, report, publication, data_folder).to_yaml(original_order=HEADER_ORDER)
    return DatasetCard(f"---\n{header}\n---\n\n{render_body(registry, report, publication)}")


def render_readme(registry: Registry, report: BuildReport, publication: Publication | None = None,
                  data_folder: Path | None = None) -> str:
    """The text of ``README.md`` (see :func:`render_card`)."""
    return str(render_card(registry, report, publication, data_folder))
