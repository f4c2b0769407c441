"""Where an export comes from and how to use it responsibly: the paper, the creators, the release date and
the Responsible-AI statements shared by the dataset card and the Croissant metadata.

Everything here is fixed text or derived from fixed inputs, so a rebuild writes the same bytes: the
publication date is :data:`RELEASE_DATE` unless ``SOURCE_DATE_EPOCH`` (the reproducible-builds
convention) names another day.
"""

from __future__ import annotations

import datetime as dt
import os

from medmat_builder.records import MEDMAT_HOMEPAGE

#: The Med-MAT paper (Cai et al., 2024) on arXiv.
ARXIV_ID = "2412.20070"
ARXIV_URL = f"https://arxiv.org/abs/{ARXIV_ID}"
#: The paper's page on the Hub; a card that links it is listed under the paper and tagged ``arxiv:<id>``.
HF_PAPER_URL = f"https://huggingface.co/papers/{ARXIV_ID}"
PAPER_TITLE = "On the Compositional Generalization of Multimodal LLMs for Medical Imaging"

#: Publication date of exports made by this version of medmat (the date its export format was fixed).
RELEASE_DATE = dt.date(2026, 12, 3)

#: Who created the dataset: the Med-MAT authors, whose subsets, labels and question templates it rebuilds.
CREATORS = (
    {"name": "FreedomIntelligence (Med-MAT authors)", "url": MEDMAT_HOMEPAGE,
     "description": f"Authors of Med-MAT ({PAPER_TITLE}, {ARXIV_URL})."},
)


class ReleaseDateError(ValueError):
    """``SOURCE_DATE_EPOCH`` is set but is not a number of seconds."""


def date_published() -> dt.date:
    """The export's publication date: the UTC day of ``SOURCE_DATE_EPOCH`` if set, else :data:`RELEASE_DATE`."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return RELEASE_DATE
    try:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).date()
    except (ValueError, OverflowError, OSError):
        raise ReleaseDateError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since 1970; unset it or set e.g. "
            "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)") from None


#: Responsible-AI statements (Croissant RAI 1.0 vocabulary, ``rai:`` properties of the dataset).
DATA_COLLECTION = (
    "No new data were collected. Every image comes from a public medical imaging dataset (one of the 106 "
    "sources of Med-MAT, Tables 10-11 of the paper) as its owners distribute it; medmat reads each source "
    "from the user's own download. The sources were gathered by hospitals, challenges and research groups "
    "under their own ethics approvals; see each source's homepage in licenses.csv."
)
DATA_COLLECTION_TYPE = ("Secondary data analysis",)
DATA_COLLECTION_RAW_DATA = (
    "The original archives of each source (images with label tables, folders, masks or box annotations), "
    "unchanged; medmat never redistributes images of a source whose terms forbid it."
)
DATA_PREPROCESSING = (
    "Images are decoded (DICOM, NIfTI and video frames included), converted to 8-bit and re-encoded; "
    "PNG/JPEG metadata (EXIF, XMP, IPTC, comments, text chunks) is removed and DICOM headers are not kept.",
    "Raw labels are mapped onto each subset's canonical labels as the registry declares; unmapped labels "
    "are dropped and counted in build_report.json.",
    "Exact and near-duplicate images are removed across splits; both copies of an image filed under "
    "conflicting labels are dropped.",
    "Splits are by subject (patient, lesion, volume or video): a source's official split is kept, else a "
    "seeded 9:1 split stratified by label; training splits are capped and test splits label-balanced.",
)
DATA_ANNOTATION = (
    "Labels and boxes are the source datasets' own annotations (boxes of segmentation sources are the tight "
    "boxes of the masks' connected components, normalized to 0-1000).",
    "Questions, options and answers are generated from the paper's templates (six instructions per subset, "
    "at most four lettered options); no new human annotation was made.",
)
MACHINE_ANNOTATION_TOOLS = ("medmat (rule-based question templates; boxes from mask connected components)",)
DATA_USE_CASES = (
    "Research on compositional generalization of multimodal LLMs across Modality/Area/Task triplets, "
    "as in the Med-MAT paper: training on some subsets and evaluating on held-out combinations.",
    "Not validated for clinical use: no model trained on it is a medical device.",
)
DATA_BIASES = (
    "Sources come from a few hospitals, countries and imaging devices; patient demographics are not recorded "
    "and are likely unbalanced, so results need not transfer to other populations or scanners.",
    "Training splits are capped and test splits label-balanced, so label frequencies do not reflect "
    "prevalence.",
)
DATA_LIMITATIONS = (
    "Mapping raw labels onto canonical labels loses distinctions some sources make, and sources annotate "
    "with different protocols.",
    "Boxes derived from masks ignore small specks; multi-label subsets offer comma-joined label sets as options.",
    "Rows of sources that may not be redistributed are published without images (text-only) and must be "
    "rebuilt from the user's own download.",
)
PERSONAL_SENSITIVE_INFORMATION = (
    "Medical images of patients (health data). All sources are de-identified public releases; DICOM headers "
    "are not carried over and image metadata is stripped. The group column is a pseudonym of the subject, "
    "never a name or record number. Report any record that appears to identify a person to the source's "
    "owners.",
)
DATA_SOCIAL_IMPACT = (
    "Benchmarking medical multimodal models on public data can speed up research, but models trained on it "
    "may inherit the sources' biases and must not be used for diagnosis without clinical validation."
)
DATA_RELEASE_MAINTENANCE_PLAN = (
    "The export is rebuilt deterministically from the registry (sources.yaml) by medmat; corrections to a "
    "source's mapping or terms are made in the registry and take effect at the next build."
)
