"""Croissant 1.1 metadata (``croissant.json``) of an export.

One ``FileSet`` per config (its parquet files) and one ``RecordSet`` per config whose fields read the
parquet columns; ``split`` comes from the file name. The JSON is built as plain, sorted data (no
dates, no absolute paths) so a rebuild writes the same bytes. :func:`validate_croissant` runs the
``mlcroissant`` checker (the same as ``mlcroissant validate --jsonld croissant.json``, offline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medmat_builder.registry import Registry

CROISSANT_NAME = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
PARQUET = "application/x-parquet"
HOMEPAGE = "https://github.com/FreedomIntelligence/Med-MAT"

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

#: (column, Croissant data type, is a list, description)
_TEXT_COLUMNS: list[tuple[str, bool, str]] = [
    ("id", False, "Stable record id."),
    ("question", False, "Instruction, lettered options and answer directive (or box request)."),
    ("options", True, "At most 4 answer options (empty for detection/segmentation)."),
    ("answer", False, "Option letter, or box text 'label: [x1, y1, x2, y2]; ...' with integers 0-1000."),
    ("answer_label", False, "Text of the answer option, or the structure label(s)."),
    ("labels", True, "Canonical labels of the record."),
    ("modality", False, "Modality of the MAT triplet."),
    ("area", False, "Anatomical area of the MAT triplet."),
    ("task", False, "Task of the MAT triplet."),
    ("subset", False, "Config name."),
    ("source", False, "Key of the source dataset."),
    ("license", False, "License or terms of the source dataset."),
    ("group", False, "Subject pseudonym (salted hash of source and patient/lesion/volume id; never the id)."),
]


def _source(file_set: str, column: str, json_path: str | None = None) -> dict:
    src: dict[str, Any] = {"fileSet": {"@id": file_set}, "extract": {"column": column}}
    if json_path:
        src["transform"] = {"jsonPath": json_path}
    return src


def _record_set(name: str, title: str) -> tuple[dict, dict]:
    fs = f"{name}-parquet"
    file_set = {
        "@type": "cr:FileSet",
        "@id": fs,
        "name": fs,
        "description": f"Parquet files of {name} (train and test).",
        "encodingFormat": PARQUET,
        "includes": f"{name}/*.parquet",
    }
    fields: list[dict] = [
        {
            "@type": "cr:Field",
            "@id": f"{name}/split",
            "name": "split",
            "description": "train or test (from the file name).",
            "dataType": "sc:Text",
            "source": {
                "fileSet": {"@id": fs},
                "extract": {"fileProperty": "filename"},
                "transform": {"regex": "^(train|test)-.*\\.parquet$"},
            },
        },
        {
            "@type": "cr:Field",
            "@id": f"{name}/image",
            "name": "image",
            "description": "The image (encoded bytes); empty in text-only uploads of restricted sources.",
            "dataType": "sc:ImageObject",
            "source": _source(fs, "image", "bytes"),
        },
    ]
    for col, is_list, doc in _TEXT_COLUMNS:
        f = {
            "@type": "cr:Field",
            "@id": f"{name}/{col}",
            "name": col,
            "description": doc,
            "dataType": "sc:Text",
            "source": _source(fs, col),
        }
        if is_list:
            f["cr:isArray"] = True
        fields.append(f)
    sub_fields = [
        {
            "@type": "cr:Field",
            "@id": f"{name}/boxes/{part}",
            "name": part,
            "dataType": "sc:Text" if part == "label" else "sc:Integer",
            "source": _source(fs, "boxes", part),
        }
        for part in ("label", "x1", "y1", "x2", "y2")
    ]
    fields.append({
        "@type": "cr:Field",
        "@id": f"{name}/boxes",
        "name": "boxes",
        "description": "Boxes normalized to integers 0-1000 (empty for classification).",
        "cr:isArray": True,
        "subField": sub_fields,
    })
    record_set = {"@type": "cr:RecordSet", "@id": name, "name": name, "description": title, "field": fields}
    return file_set, record_set


def croissant_metadata(registry: Registry, report: dict, configs: list[str] | None = None,
                       url: str = HOMEPAGE) -> dict:
    """Croissant JSON-LD of the export's configs (all built configs by default)."""
    from medmat_builder.cards import LICENSE_TABLE, MEDMAT_CITATION, PRETTY_NAME

    names = sorted(configs if configs is not None else report.get("configs", {}))
    licenses = sorted({
        s.license_url or s.license for n in names for s in registry.sources_of(n)
    })
    distribution, record_sets = [], []
    for n in names:
        fs, rs = _record_set(n, registry.subset(n).title)
        distribution.append(fs)
        record_sets.append(rs)
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": "medmat",
        "alternateName": PRETTY_NAME,
        "description": (
            "Med-MAT medical image VQA subsets rebuilt from their public sources; each config covers one "
            "Modality/Area/Task triplet. Per-source terms are in the license column and in "
            f"{LICENSE_TABLE}."
        ),
        "citeAs": MEDMAT_CITATION,
        "license": licenses,
        "url": url,
        "version": "1.0.0",
        "keywords": ["medical imaging", "visual question answering", "compositional generalization"],
        "distribution": distribution,
        "recordSet": record_sets,
    }


def write_croissant(folder: Path, registry: Registry, report: dict, configs: list[str] | None = None,
                    url: str = HOMEPAGE) -> Path:
    """Write ``croissant.json`` into ``folder``."""
    path = Path(folder) / CROISSANT_NAME
    path.write_text(dumps(croissant_metadata(registry, report, configs, url)), encoding="utf-8")
    return path


def dumps(meta: dict) -> str:
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


def validate_croissant(path: str | Path) -> str:
    """Validate with ``mlcroissant`` (offline); returns its warnings report, raises ``ValueError`` on errors."""
    import mlcroissant as mlc

    try:
        ds = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as exc:
        raise ValueError(f"{path} is not valid Croissant:\n{exc}") from None
    return ds.metadata.ctx.issues.report()
