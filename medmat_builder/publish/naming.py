"""How the dataset names and cites itself, and the names of the files that describe an export."""

from __future__ import annotations

DATASET_NAME = "medmat"
PRETTY_NAME = "Med-MAT (rebuilt with medmat)"
DEFAULT_REPO_ID = "ORG/medmat"
#: The dataset card (YAML header and Markdown body).
CARD_NAME = "README.md"
#: One row per source: license, URL, access, ``redistributable``.
LICENSE_TABLE = "licenses.csv"
#: Croissant 1.1 metadata of the export.
CROISSANT_NAME = "croissant.json"

MEDMAT_CITATION = """@misc{cai2024medmat,
  title  = {On the Compositional Generalization of Multimodal LLMs for Medical Imaging},
  author = {Cai, Zhenyang and Chen, Junying and Wang, Rongsheng and Wang, Weihong and Deng, Yonglin and Song, Dingjie and Chen, Yize and Zhang, Zixu and Wang, Benyou},
  year   = {2024},
  eprint = {2412.20070},
  archivePrefix = {arXiv},
  url    = {https://arxiv.org/abs/2412.20070},
  note   = {Med-MAT, github.com/FreedomIntelligence/Med-MAT}
}"""
