"""Dataset card (README.md with YAML ``configs:``) and the per-source license table of an export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from medmat_builder.registry import Registry

MEDMAT_CITATION = """@misc{cai2024medmat,
  title  = {On the Compositional Generalization of Multimodal LLMs for Medical Imaging},
  author = {Cai, Zhenyang and Chen, Junying and Wang, Rongsheng and Wang, Weihong and Deng, Yonglin and Song, Dingjie and Chen, Yize and Zhang, Zixu and Wang, Benyou},
  year   = {2024},
  note   = {Med-MAT, github.com/FreedomIntelligence/Med-MAT}
}"""


def front_matter(registry: Registry, report: dict) -> dict:
    """The Hub's YAML header: one config per built subset, license fields."""
    configs = []
    for name in sorted(report["configs"]):
        configs.append(
            {
                "config_name": name,
                "data_files": [
                    {"split": "train", "path": f"{name}/train-*.parquet"},
                    {"split": "test", "path": f"{name}/test-*.parquet"},
                ],
            }
        )
    licenses = sorted({s.license for n in report["configs"] for s in registry.sources_of(n)})
    meta: dict = {"pretty_name": "Med-MAT (rebuilt with medmat)"}
    if len(licenses) == 1 and licenses[0] not in ("unknown",) and " " not in licenses[0]:
        meta["license"] = licenses[0].lower()
    else:
        meta.update(license="other", license_name="medmat-per-source", license_link="licenses.csv")
    meta.update(
        task_categories=["visual-question-answering", "image-classification"],
        tags=["medical", "compositional-generalization", "med-mat"],
        configs=configs,
    )
    return meta


def license_table(registry: Registry, report: dict) -> str:
    keys = sorted({k for n in report["configs"] for k in registry.subset(n).sources})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "number", "name", "license", "license_url", "access", "redistributable", "subsets", "homepage"])
    for k in keys:
        s = registry.source(k)
        w.writerow([k, s.number, s.name, s.license, s.license_url or "", s.access, str(s.redistributable).lower(),
                    " ".join(s.subsets), s.homepage])
    return buf.getvalue()


def render_readme(registry: Registry, report: dict) -> str:
    meta = yaml.safe_dump(front_matter(registry, report), sort_keys=False, allow_unicode=True)
    lines = ["---", meta.rstrip(), "---", "", "# Med-MAT (rebuilt with medmat)", ""]
    lines.append("| config | triplet | kind | train | test | sources |")
    lines.append("|---|---|---|---|---|---|")
    for name, rep in sorted(report["configs"].items()):
        sub = registry.subset(name)
        n = rep.get("num_examples", {})
        lines.append(
            f"| {name} | {sub.modality}, {sub.area}, {sub.task} | {sub.kind} | {n.get('train', 0)} | "
            f"{n.get('test', 0)} | {', '.join(sub.sources)} |"
        )
    lines += ["", "## Citation", "", "```bibtex", MEDMAT_CITATION, "```", ""]
    return "\n".join(lines)


def write_export_metadata(folder: Path, registry: Registry, report: dict) -> None:
    """Write README.md and licenses.csv into an export folder."""
    (folder / "README.md").write_text(render_readme(registry, report), encoding="utf-8")
    (folder / "licenses.csv").write_text(license_table(registry, report), encoding="utf-8")
