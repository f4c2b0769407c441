"""The ground floor: plain records and every constant that more than one part of medmat uses.

Nothing here imports anything of medmat's, so every other module may import from here. What lives
here, one home each:

- :class:`RawRecord` (one image-label pair as a layout finds it on disk), :class:`Box` (a pixel box
  with its raw label) and :class:`FakeSample` (what the demo asks a layout to write);
- the split names, the paper's numbers (train cap, test fraction and caps, 53 subsets, seed 42);
- the question template's pieces (option letters, the answer directives) and the box answer format;
- the mask conventions shared by the mask readers and the mask decoder;
- :data:`DROP_REASONS`, the reasons a raw record can be dropped for (the build report counts by them);
- :data:`COLUMNS`, the columns of an exported record, with their types and what they hold (the
  builder's features, the dataset card and the Croissant metadata are all made from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --------------------------------------------------------------------------- splits and the paper's numbers
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")

#: Section 2.1: each training set is limited to 3,000 samples.
TRAIN_CAP = 3000
#: App. B: sources without an official split are split 9:1.
TEST_FRACTION = 0.1
#: Single-label test sets are strictly label-balanced with at most this many records per label.
TEST_MAX_PER_LABEL = 250
#: Multi-label and detection/segmentation test sets hold at most this many records.
TEST_CAP = 1000
#: Section 4.1: the seed of splits, orders, questions and mixtures.
DEFAULT_SEED = 42
#: Table 9: the paper's subsets, named ``subset_01`` .. ``subset_53``.
NUM_SUBSETS = 53
CONFIG_NAMES: tuple[str, ...] = tuple(f"subset_{i:02d}" for i in range(1, NUM_SUBSETS + 1))
MEDMAT_HOMEPAGE = "https://github.com/FreedomIntelligence/Med-MAT"

# --------------------------------------------------------------------------- the question template (Figure 8)
#: Option letters of a single-choice question.
LETTERS = "ABCD"
MAX_OPTIONS = len(LETTERS)
#: The last line of every classification question.
ANSWER_DIRECTIVE = "Answer with the option's letter from the given choices directly."
#: The last line of every detection/segmentation question.
BOX_DIRECTIVE = (
    "Answer with 'label: [x1, y1, x2, y2]' for each object, coordinates as integers from 0 to 1000 "
    "relative to the image width and height, objects separated by '; '."
)
#: Box coordinates are integers from 0 to this, relative to the image width and height.
SCALE = 1000
#: The answer of a detection/segmentation question with no box.
NO_BOX_ANSWER = "none"
#: How a box answer looks.
ANSWER_FORMAT = "label: [x1, y1, x2, y2]; label: [x1, y1, x2, y2]"

# --------------------------------------------------------------------------- mask conventions
#: Joins the paths of several mask files of one record (``RawRecord.mask``).
MASK_SEPARATOR = "|"
#: Mask value of "any on pixel of a binary mask" (``RawRecord.mask_labels``).
ANY_FOREGROUND = -1
#: Mask values at or above this are ``COLOR_FLAG | 0xRRGGBB`` colours.
COLOR_FLAG = 1 << 24


def color_value(rgb: str | tuple[int, ...] | list[int]) -> int:
    """Mask value of an RGB colour: ``"#00AA55"`` or ``(0, 170, 85)`` -> ``COLOR_FLAG | 0x00AA55``."""
    if isinstance(rgb, str):
        text = rgb.strip().lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {rgb!r} must look like #RRGGBB")
        packed = int(text, 16)
    else:
        r, g, b = (int(c) for c in rgb)
        packed = (r << 16) | (g << 8) | b
    return COLOR_FLAG | packed


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the raw image, with its raw label."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class RawRecord:
    """One image-label pair as found on disk, before any image is opened.

    ``image`` is relative to the source folder. ``split`` is ``train``/``test`` when the source
    fixes it, else ``None`` (a seeded 9:1 split is made later). ``drop_reason`` is set when the
    record is already known to be unusable (unreadable table row, image missing ...): it is still
    yielded so the build report can count it. ``group`` is the raw subject id read from the
    layout's own table (a source declaring ``groups: {column: ...}``); other group keys are
    resolved later from the path or a side table (:mod:`medmat_builder.build.groups`).
    ``mask``/``mask_labels`` follow the mask conventions above (see :mod:`medmat_builder.images.masks`).
    """

    source: str
    ref: str
    image: str
    labels: tuple[str, ...] = ()
    split: Split | None = None
    boxes: tuple[Box, ...] = ()
    mask: str | None = None
    mask_labels: tuple[tuple[int, str], ...] = ()
    drop_reason: str | None = None
    detail: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class FakeSample:
    """What the demo asks a layout to write for one synthetic record.

    ``labels`` are raw labels (as the source spells them); ``split`` is the split the record must
    land in (``None``: the layout's own default). ``image`` is encoded image bytes in ``ext``.
    ``mask`` (segmentation) is a PNG-encoded mask; ``boxes`` (detection) are pixel boxes.

    Subjects: ``group`` is the raw subject id (patient, lesion, volume) that a table layout writes
    into the source's group column, and the side table of ``groups: {table: ...}`` lists. For
    ``groups: {path: [...]}`` the demo gives path hints instead, so that the file lands where the
    group pattern finds its subject: ``path_values`` (values of placeholders the layout does not
    fill itself, e.g. a patient folder), ``star`` (text of a ``*`` in the file name) and
    ``dir_star`` (text of a ``*`` in a folder), or ``path``: the whole relative path, in the source's
    real naming scheme (:mod:`medmat_builder.demo.path_hints`), which the layout's image pattern must match.
    """

    index: int
    labels: tuple[str, ...]
    split: Split | None
    image: bytes
    ext: str
    width: int
    height: int
    mask: bytes | None = None
    boxes: tuple[Box, ...] = ()
    group: str | None = None
    path_values: tuple[tuple[str, str], ...] = ()
    star: str | None = None
    dir_star: str | None = None
    path: str | None = None


# --------------------------------------------------------------------------- drop reasons
#: Why a raw record did not land in a split. Keys of a ledger's ``dropped`` are always one of these.
DROP_REASONS: dict[str, str] = {
    "unlabeled": "the record carries no label",
    "unused_label": "its raw label maps to an explicit drop (the paper does not use it)",
    "unknown_label": "its raw label is not in the source's clusters (only with --lenient)",
    "multiple_labels": "a single-label subset got a record with several canonical labels",
    "unreadable_row": "its table row could not be parsed",
    "missing_image": "the table names an image that is not on disk",
    "undecodable_name": "its file name (or a folder's) is not valid UTF-8; never opened (rename it to keep it)",
    "outside_link": "its image or mask is a link that leads outside the source's folder; never opened",
    "ambiguous_image": "the table id matches several files",
    "missing_mask": "a segmentation image has no mask file",
    "ambiguous_mask": "several mask files match one image where one is expected",
    "unknown_split": "its split folder/value is not declared in the layout",
    "unused_split": "it belongs to a split the paper does not use",
    "conflicting_split": "the source's split lists name it in splits that map to train and to test",
    "unlisted": "the source's split lists do not name it (layout says unlisted: drop)",
    "empty": "zero-byte image file",
    "truncated": "the image file is cut short",
    "corrupt": "the image cannot be decoded",
    "too_large": "the image exceeds the decompression-bomb pixel limit",
    "unsupported": "the image format is not supported",
    "unsupported_dicom": "DICOM pixel data in a transfer syntax that nothing installed decodes (the detail names "
                         "it, e.g. 1.2.840.10008.1.2.4.100 MPEG2 video, and what would decode it)",
    "multiframe": "multi-frame image (animated GIF, multi-frame DICOM)",
    "no_annotation": "a detection/segmentation record without any box",
    "duplicate": "the same decoded pixels were already kept in this subset",
    "near_duplicate": "a near-identical image (perceptual hash close, thumbnails confirming) was already kept in this subset",
    "label_conflict": "the same picture is filed under other labels in this subset (both copies are dropped)",
    "over_cap": "not needed: the split's cap (train 3,000) was reached with labels balanced",
    "balance": "not needed: the test split is strictly label-balanced",
    "subject_in_test": "its subject (patient, lesion, volume ...) has images in the source's official test split; "
                       "kept out of train so that no subject spans train and test",
}


# --------------------------------------------------------------------------- the exported record
@dataclass(frozen=True)
class Column:
    """One column of an exported record: its name, its type and what it holds.

    ``dtype`` is ``string``, ``int32``, ``image``, ``list[string]`` or ``list[box]`` (a list of
    :data:`BOX_COLUMNS`); ``card_type`` is how the dataset card shows it.
    """

    name: str
    dtype: str
    doc: str

    @property
    def card_type(self) -> str:
        return {"image": "Image", "list[box]": "list[{label, x1, y1, x2, y2}]"}.get(self.dtype, self.dtype)


#: The fields of one box in the ``boxes`` column (normalized to integers 0-1000).
BOX_COLUMNS: tuple[Column, ...] = (
    Column("label", "string", "canonical label of the boxed structure"),
    *(Column(c, "int32", f"{c} on the 0-1000 grid") for c in ("x1", "y1", "x2", "y2")),
)

#: The columns of an exported record, in parquet order.
COLUMNS: tuple[Column, ...] = (
    Column("id", "string", "stable id, `subset_NN-<hash>`"),
    Column("image", "image", "the image (empty in text-only uploads of sources that forbid redistribution)"),
    Column("question", "string",
           "instruction, lettered options and answer directive (classification) or box request"),
    Column("options", "list[string]", "at most 4 options (empty for detection/segmentation)"),
    Column("answer", "string", "letter `A`-`D` (classification) or box text (detection/segmentation)"),
    Column("answer_label", "string", "text of the answer option, or the structure label(s)"),
    Column("labels", "list[string]", "canonical labels of the record"),
    Column("boxes", "list[box]", "boxes normalized to integers 0-1000 (empty for classification)"),
    Column("modality", "string", "M of the MAT triplet"),
    Column("area", "string", "A of the MAT triplet"),
    Column("task", "string", "T of the MAT triplet"),
    Column("subset", "string", "config name"),
    Column("source", "string", "key of the source dataset (see `licenses.csv`)"),
    Column("license", "string", "license or terms of the source dataset"),
    Column("group", "string",
           "subject (patient, lesion, volume, video) as a pseudonym: 16 hex digits of a salted hash of the source "
           "and its subject id, never the id itself; the same in every config (use it for GroupKFold)"),
    Column("image_hash", "string",
           "xxh3-128 of the decoded 8-bit pixels (mode, size, bytes): the same image has the same hash in every "
           "config; training's leakage guard and `medmat fill` compare it, never decoding to check identity"),
)
