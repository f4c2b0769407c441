"""Realistic look-alike scans and their copies, for measuring duplicate detection (bench and tests).

Distinct scans of one modality share their global layout, as real ones do: every chest X-ray has two
dark lungs in a bright thorax, every fundus photograph an orange disc with a bright optic disc and
vessels. What tells two patients apart is anatomy (lung and heart size, rib spacing, vessel tree,
lesion outline), positioning (shift, scale, tilt), exposure and contrast, and fine detail (texture,
noise). :func:`lookalike_scan` draws one such DISTINCT scan; :func:`lookalike_copy` makes a COPY of
one, the way the same picture reaches a collection twice (byte-identical, metadata stripped, PNG
saved as JPEG, JPEG re-encoded at quality 75-95, resized 0.75-1.25x, resized and re-encoded, or the
same picture filed under another class).

Modalities (:data:`MODALITIES`):

- ``chest_xray``: grey, 320-512 px portrait/square; body outline and shoulders, two lungs with
  apices and diaphragm domes, spine and mediastinum, heart, posterior ribs and clavicles, vascular
  markings; label ``Pneumonia`` adds soft opacities.
- ``fundus``: RGB, 384-512 px high, wider than high; black surround, circular field of view with
  vignetting, orange-red choroid, bright optic disc and cup, darker macula, vessel arcades drawn as
  branching random walks; label ``Retinopathy`` adds exudates and haemorrhages.
- ``dermoscopy``: RGB, 4:3, 288-480 px high; skin with colour variation and skin lines, a central
  brown lesion with an irregular outline and pigment network, hairs, often a dark dermoscope
  vignette; label ``Melanoma`` gives a more irregular, multi-coloured lesion.
- ``ct_slice``: grey, 512x512 (256-512 in small runs); patient table, elliptic chest with fat layer,
  two lungs with vessels, heart, aorta, vertebra; label ``Nodule`` adds a round nodule in a lung.

Everything is seeded: the same ``(modality, index, seed)`` gives the same pixels and the same file
bytes. Drawing (:mod:`medmat_builder.images.lookalike_anatomy`) uses only numpy and Pillow; a 512 px scan
takes about 20 ms of CPU with its encoding.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from medmat_builder.images.lookalike_anatomy import DRAWERS
from medmat_builder.images.metadata import strip_metadata
from medmat_builder.images.synthetic import seeded_rng

MODALITIES: tuple[str, ...] = ("chest_xray", "fundus", "dermoscopy", "ct_slice")


#: The two labels of each modality (the second one adds a finding).
LABELS: dict[str, tuple[str, str]] = {
    "chest_xray": ("Normal", "Pneumonia"),
    "fundus": ("Normal", "Retinopathy"),
    "dermoscopy": ("Nevus", "Melanoma"),
    "ct_slice": ("Normal", "Nodule"),
}


#: Ways one picture reaches a collection twice. ``identical`` and ``metadata_stripped`` decode to the
#: same pixels (exact duplicates); the others are near duplicates; ``other_class`` is the same
#: picture (byte-identical or resized and re-encoded, alternately) under the other label.
COPY_KINDS: tuple[str, ...] = (
    "identical", "metadata_stripped", "png_to_jpeg", "jpeg_reencoded", "resized", "resized_jpeg", "other_class",
)


#: Copy kinds whose decoded pixels equal the original's.
EXACT_COPY_KINDS = frozenset({"identical", "metadata_stripped"})


@dataclass(frozen=True)
class LookalikeScan:
    """One generated image file: ``data`` holds PNG or JPEG bytes (``ext`` says which)."""

    modality: str
    index: int
    label: str
    data: bytes
    ext: str
    #: "distinct" for an original scan, else the copy kind it was made with.
    kind: str = "distinct"


# ----------------------------------------------------------------------------------------- public API
def lookalike_pixels(modality: str, index: int, *, seed: int = 0, small: bool = False) -> tuple[np.ndarray, str]:
    """Pixels (H x W grey or H x W x 3 RGB ``uint8``) and label of distinct scan ``index`` of ``modality``.

    ``small`` draws smaller images (about 256-416 px instead of 384-512) for fast tests.
    """
    if modality not in DRAWERS:
        raise ValueError(f"unknown look-alike modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    rng = seeded_rng("lookalike", modality, seed, index)
    label_index = int(rng.random() < 0.5)
    return DRAWERS[modality](rng, label_index, small), LABELS[modality][label_index]


def _encode(pixels: np.ndarray | Image.Image, fmt: str, *, quality: int = 92, comment: bytes | None = None,
            exif: bytes | None = None) -> bytes:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buf = io.BytesIO()
    if fmt == "JPEG":
        kwargs = {"quality": quality}
        if comment:
            kwargs["comment"] = comment
        if exif:
            kwargs["exif"] = exif
        img.save(buf, format="JPEG", **kwargs)
    else:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        if comment:
            info.add_text("Comment", comment.decode("latin-1"))
        img.save(buf, format="PNG", compress_level=1, pnginfo=info)
    return buf.getvalue()


def _exif_block(rng: np.random.Generator) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SyntheticScanner"  # Make
    exif[0x0132] = f"2019:0{int(rng.integers(1, 10))}:1{int(rng.integers(0, 10))} 10:00:00"  # DateTime
    return exif.tobytes()


def lookalike_scan(modality: str, index: int, *, seed: int = 0, small: bool = False) -> LookalikeScan:
    """Distinct scan ``index`` as a file: JPEG (quality 90-97; 3 in 4 grey scans, 9 in 10 colour ones)
    or PNG, with a comment and (JPEG) an EXIF block, as files from scanners and cameras carry."""
    pixels, label = lookalike_pixels(modality, index, seed=seed, small=small)
    rng = seeded_rng("lookalike-file", modality, seed, index)
    jpeg = rng.random() < (0.75 if pixels.ndim == 2 else 0.9)
    comment = f"synthetic {modality} {index}".encode()
    if jpeg:
        data = _encode(pixels, "JPEG", quality=int(rng.integers(90, 98)), comment=comment, exif=_exif_block(rng))
    else:
        data = _encode(pixels, "PNG", comment=comment)
    return LookalikeScan(modality, index, label, data, ".jpg" if jpeg else ".png")


def lookalike_copy(scan: LookalikeScan, kind: str, *, seed: int = 0) -> LookalikeScan:
    """A copy of ``scan`` made the way ``kind`` says (one of :data:`COPY_KINDS`); seeded."""
    rng = seeded_rng("lookalike-copy", scan.modality, scan.index, kind, seed)
    img = Image.open(io.BytesIO(scan.data))
    img.load()
    is_jpeg = scan.ext == ".jpg"

    def resized() -> Image.Image:
        factor = rng.uniform(0.75, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 1.25)
        size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
        return img.resize(size, Image.Resampling.LANCZOS if rng.random() < 0.5 else Image.Resampling.BILINEAR)

    if kind == "identical":
        data, ext = scan.data, scan.ext
    elif kind == "metadata_stripped":  # the original's EXIF block and comment removed, pixels untouched
        data, ext = strip_metadata(scan.data), scan.ext
    elif kind == "png_to_jpeg":  # the lossless pixels saved as a JPEG (as a PNG source is re-shared)
        data, ext = _encode(img, "JPEG", quality=int(rng.integers(85, 96))), ".jpg"
    elif kind == "jpeg_reencoded":
        data, ext = _encode(img, "JPEG", quality=int(rng.integers(75, 96))), ".jpg"
    elif kind == "resized":
        data, ext = _encode(resized(), "JPEG" if is_jpeg else "PNG", quality=95), scan.ext
    elif kind == "resized_jpeg":
        data, ext = _encode(resized(), "JPEG", quality=int(rng.integers(75, 96))), ".jpg"
    elif kind == "other_class":
        if scan.index % 2 == 0:
            data, ext = scan.data, scan.ext
        else:
            data, ext = _encode(resized(), "JPEG", quality=int(rng.integers(75, 96))), ".jpg"
        labels = LABELS[scan.modality]
        return replace(scan, label=labels[1 - labels.index(scan.label)], data=data, ext=ext, kind=kind)
    else:
        raise ValueError(f"unknown copy kind {kind!r}; choose one of {', '.join(COPY_KINDS)}")
    return replace(scan, data=data, ext=ext, kind=kind)


def contact_sheet(scans: list[LookalikeScan], columns: int = 8, cell: int = 160) -> Image.Image:
    """A grid of thumbnails (for looking at what the generator draws)."""
    rows = (len(scans) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * cell), (40, 40, 40))
    for i, scan in enumerate(scans):
        im = Image.open(io.BytesIO(scan.data)).convert("RGB")
        im.thumbnail((cell - 4, cell - 4))
        sheet.paste(im, ((i % columns) * cell + 2, (i // columns) * cell + 2))
    return sheet
