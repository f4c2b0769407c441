"""Detection/segmentation layouts (masks, json_boxes, rle_table) and the box helpers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pydantic import TypeAdapter

from medmat_builder.build import format_box_answer, normalize_boxes, resolve_boxes
from medmat_builder.images.masks import boxes_from_array, color_value, mask_boxes, min_component_area
from medmat_builder.images.rle import decode_rle, encode_rle
from medmat_builder.layouts import Layout
from medmat_builder.records import ANY_FOREGROUND, MASK_SEPARATOR, NO_BOX_ANSWER, Box, FakeSample, RawRecord

SRC = SimpleNamespace(key="demo_src", group_column=None)
W, H = 64, 48


def make_layout(cfg: dict):
    return TypeAdapter(Layout).validate_python(cfg)


def png(mode: str = "RGB", size=(W, H), fill=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, fill).save(buf, format="PNG")
    return buf.getvalue()


def sample(i: int, labels, split=None, boxes=(), mask=None) -> FakeSample:
    return FakeSample(index=i, labels=tuple(labels), split=split, image=png(), ext=".png",
                      width=W, height=H, mask=mask, boxes=tuple(boxes))


def boxes_of(layout, root: Path, rec: RawRecord):
    return sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in resolve_boxes(rec, root, (W, H)))


# ---------------------------------------------------------------- boxes from masks
def two_blob_mask() -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[5:15, 4:20] = 255  # 16 x 10 blob
    m[30:40, 40:60] = 255  # 20 x 10 blob
    m[45, 2] = 255  # a one-pixel speck
    return m


def test_two_components_give_two_boxes_and_specks_are_ignored():
    boxes = boxes_from_array(two_blob_mask(), [(ANY_FOREGROUND, "lesion")])
    got = sorted((b.x1, b.y1, b.x2, b.y2) for b in boxes)
    assert got == [(4, 5, 20, 15), (40, 30, 60, 40)]
    assert all(b.label == "lesion" for b in boxes)


def test_min_component_area_is_relative_with_a_floor():
    assert min_component_area(10, 10) == 16
    assert min_component_area(1000, 1000) == 500


def test_multiclass_grey_and_colour_masks():
    grey = np.zeros((H, W), dtype=np.uint8)
    grey[0:10, 0:10] = 1
    grey[20:30, 20:30] = 2
    got = {b.label: (b.x1, b.y1, b.x2, b.y2) for b in boxes_from_array(grey, [(1, "a"), (2, "b")])}
    assert got == {"a": (0, 0, 10, 10), "b": (20, 20, 30, 30)}
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[2:12, 30:50] = (0, 85, 170)
    rgb[30:44, 0:8] = (255, 0, 0)
    pairs = [(color_value("#0055AA"), "grasper"), (color_value((255, 0, 0)), "blood")]
    got = {b.label: (b.x1, b.y1, b.x2, b.y2) for b in boxes_from_array(rgb, pairs)}
    assert got == {"grasper": (30, 2, 50, 12), "blood": (0, 30, 8, 44)}


def test_inverted_mask_where_zero_is_the_structure():
    m = np.full((H, W), 255, dtype=np.uint8)
    m[10:20, 10:30] = 0
    (box,) = boxes_from_array(m, [(0, "optic disc")])
    assert (box.x1, box.y1, box.x2, box.y2) == (10, 10, 30, 20)


def test_lossy_jpeg_mask_is_thresholded(tmp_path):
    Image.fromarray(two_blob_mask()).save(tmp_path / "m.jpg", quality=70)
    boxes = mask_boxes(tmp_path, "m.jpg", [(ANY_FOREGROUND, "polyp")])
    assert len(boxes) == 2
    for b, (x1, y1, x2, y2) in zip(sorted(boxes, key=lambda b: b.x1), [(4, 5, 20, 15), (40, 30, 60, 40)]):
        assert abs(b.x1 - x1) <= 1 and abs(b.y1 - y1) <= 1 and abs(b.x2 - x2) <= 1 and abs(b.y2 - y2) <= 1


def test_several_mask_files_and_scaling_to_the_image(tmp_path):
    a = np.zeros((H, W), dtype=np.uint8)
    a[0:10, 0:10] = 255
    b = np.zeros((H, W), dtype=np.uint8)
    b[20:30, 40:50] = 1
    Image.fromarray(a).save(tmp_path / "left.png")
    Image.fromarray(b).save(tmp_path / "right.png")
    rec = RawRecord("s", "r", "img.png", mask=f"left.png{MASK_SEPARATOR}right.png",
                    mask_labels=((ANY_FOREGROUND, "left lung"), (ANY_FOREGROUND, "right lung")))
    got = sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in resolve_boxes(rec, tmp_path, (2 * W, 2 * H)))
    assert got == [("left lung", 0, 0, 20, 20), ("right lung", 80, 40, 100, 60)]


def test_record_boxes_win_and_no_annotation_gives_no_box(tmp_path):
    rec = RawRecord("s", "r", "x.png", boxes=(Box("Mass", 1, 2, 3, 4),))
    assert resolve_boxes(rec, tmp_path, (W, H)) == [Box("Mass", 1, 2, 3, 4)]
    assert resolve_boxes(RawRecord("s", "r", "x.png"), tmp_path, (W, H)) == []


def test_missing_mask_names_file_and_source(tmp_path):
    rec = RawRecord("kvasir_seg", "r", "x.png", mask="masks/x.jpg", mask_labels=((ANY_FOREGROUND, "polyp"),))
    with pytest.raises(RuntimeError, match=r"kvasir_seg.*masks/x.jpg"):
        resolve_boxes(rec, tmp_path, (W, H))


# ---------------------------------------------------------------- normalization and answer text
def test_normalize_rounds_clamps_and_orders_corners():
    boxes = [Box("a", 0, 0, 64, 48), Box("b", 70, -5, 32, 24), Box("c", 6.4, 4.8, 12.8, 9.6)]
    assert normalize_boxes(boxes, 64, 48) == [
        ("a", 0, 0, 1000, 1000),
        ("b", 500, 0, 1000, 500),
        ("c", 100, 100, 200, 200),
    ]
    with pytest.raises(ValueError):
        normalize_boxes(boxes, 0, 48)


def test_answer_format_is_sorted_and_documented():
    norm = [("polyp", 600, 40, 720, 180), ("polyp", 102, 220, 380, 515), ("adenoma", 5, 5, 9, 9)]
    assert format_box_answer(norm) == (
        "adenoma: [5, 5, 9, 9]; polyp: [600, 40, 720, 180]; polyp: [102, 220, 380, 515]"
    )
    assert format_box_answer(norm, with_labels=False).startswith("[5, 5, 9, 9]; [600, 40")
    assert format_box_answer([]) == NO_BOX_ANSWER


# ---------------------------------------------------------------- run-length masks
def test_rle_decode_row_major_one_based():
    m = decode_rle("2 3 9 2", width=4, height=3)
    expected = np.zeros((3, 4), dtype=bool)
    expected.flat[1:4] = True
    expected.flat[8:10] = True
    assert (m == expected).all()


def test_rle_decode_column_major_relative_siim_style():
    # pixels (0-based, column-major) 1,2 then 2 pixels after a gap of 3 -> 6,7
    m = decode_rle("1 2 3 2", width=3, height=3, order="column", starts="relative")
    expected = np.zeros((3, 3), dtype=bool)
    for p in (1, 2, 6, 7):
        expected[p % 3, p // 3] = True
    assert (m == expected).all()


@pytest.mark.parametrize("order,starts,base", [("row", "absolute", 1), ("column", "relative", 0), ("column", "absolute", 0)])
def test_rle_encode_is_the_inverse(order, starts, base):
    m = two_blob_mask() > 0
    assert (decode_rle(encode_rle(m, order, starts, base), W, H, order, starts, base) == m).all()


def test_rle_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        decode_rle("10 5", width=3, height=3)


# ---------------------------------------------------------------- masks layout round trips
def test_masks_layout_split_folders_roundtrip(tmp_path):
    layout = make_layout({
        "kind": "masks",
        "images": "ISIC-2017_{split}_Data/{id}.jpg",
        "masks": "ISIC-2017_{split}_Part1_GroundTruth/{id}_segmentation.png",
        "exclude": ["*_superpixels.png"],
        "mask_values": {"nonzero": "lesion"},
        "split_map": {"Training": "train", "Test_v2": "test"},
    })
    samples = [sample(1, ["lesion"], "train", boxes=[Box("lesion", 4, 4, 20, 20)]), sample(2, ["lesion"], "test")]
    layout.write_fake(SRC, tmp_path, samples)
    recs = sorted(layout.scan(SRC, tmp_path), key=lambda r: r.split == "test")
    assert [(r.split, r.labels, r.drop_reason) for r in recs] == [("train", ("lesion",), None), ("test", ("lesion",), None)]
    assert all(r.mask and r.mask.endswith("_segmentation.png") for r in recs)
    assert boxes_of(layout, tmp_path, recs[0]) == [("lesion", 4, 4, 20, 20)]
    assert len(boxes_of(layout, tmp_path, recs[1])) == 1


def test_masks_layout_label_folders_several_masks_and_missing(tmp_path):
    layout = make_layout({
        "kind": "masks",
        "images": "{label}/{id}.png",
        "masks": "{label}/{id}_mask*.png",
        "split_map": {},
    })
    layout.write_fake(SRC, tmp_path, [sample(1, ["benign"]), sample(2, ["malignant"])])
    # a second mask of the first image, and an image without mask
    extra = np.zeros((H, W), dtype=np.uint8)
    extra[30:40, 40:60] = 255
    Image.fromarray(extra).save(tmp_path / "benign" / "fake00001_mask_1.png")
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "lonely.png").write_bytes(png())
    recs = {r.image: r for r in layout.scan(SRC, tmp_path)}
    assert set(recs) == {"benign/fake00001.png", "malignant/fake00002.png", "normal/lonely.png"}
    assert recs["normal/lonely.png"].drop_reason == "missing_mask"
    first = recs["benign/fake00001.png"]
    assert first.labels == ("benign",) and first.mask.count(MASK_SEPARATOR) == 1
    assert [b[0] for b in boxes_of(layout, tmp_path, first)] == ["benign", "benign"]
    assert recs["malignant/fake00002.png"].labels == ("malignant",)


def test_masks_layout_missing_mask_keep(tmp_path):
    layout = make_layout({"kind": "masks", "images": "{label}/{id}.png", "masks": "{label}/{id}_mask.png",
                          "missing_mask": "keep"})
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "a.png").write_bytes(png())
    (rec,) = layout.scan(SRC, tmp_path)
    assert rec.drop_reason is None and rec.mask is None and rec.labels == ("normal",)


def test_masks_layout_one_file_per_class(tmp_path):
    layout = make_layout({
        "kind": "masks",
        "images": "CXR_png/{id}.png",
        "masks": "ManualMask/{class}Mask/{id}.png",
        "classes": {"left": "left lung", "right": "right lung"},
    })
    layout.write_fake(SRC, tmp_path, [sample(1, ["left lung", "right lung"]), sample(2, ["left lung"])])
    assert (tmp_path / "ManualMask/leftMask/fake00001.png").exists()
    recs = sorted(layout.scan(SRC, tmp_path), key=lambda r: r.image)
    assert [r.labels for r in recs] == [("left lung", "right lung"), ("left lung",)]
    assert [b[0] for b in boxes_of(layout, tmp_path, recs[0])] == ["left lung", "right lung"]


def test_masks_layout_colour_values_roundtrip(tmp_path):
    layout = make_layout({
        "kind": "masks",
        "images": "{split}/images/{id}.jpg",
        "masks": "{split}/groundtruth/{id}.png",
        "mask_values": {"#0055AA": "grasper", "#55AA00": "liver"},
        "split_map": {"train": "train", "test": "test"},
    })
    s = sample(1, ["grasper", "liver"], "train",
               boxes=[Box("grasper", 2, 2, 10, 10), Box("liver", 30, 20, 60, 40)])
    layout.write_fake(SRC, tmp_path, [s])
    (rec,) = layout.scan(SRC, tmp_path)
    assert rec.labels == ("grasper", "liver") and rec.split == "train"
    assert boxes_of(layout, tmp_path, rec) == [("grasper", 2, 2, 10, 10), ("liver", 30, 20, 60, 40)]


def test_masks_layout_uses_given_mask_bytes(tmp_path):
    layout = make_layout({"kind": "masks", "images": "images/{id}.jpg", "masks": "masks/{id}.jpg",
                          "mask_values": {"nonzero": "polyp"}})
    buf = io.BytesIO()
    Image.fromarray(two_blob_mask()).save(buf, format="PNG")
    layout.write_fake(SRC, tmp_path, [sample(1, ["polyp"], mask=buf.getvalue())])
    (rec,) = layout.scan(SRC, tmp_path)
    assert len(boxes_of(layout, tmp_path, rec)) == 2


def test_masks_layout_rejects_unusable_configs():
    with pytest.raises(Exception, match="mask_values"):
        make_layout({"kind": "masks", "images": "i/{id}.png", "masks": "m/{id}.png"})
    with pytest.raises(Exception, match="nonzero"):
        make_layout({"kind": "masks", "images": "i/{id}.png", "masks": "m/{id}.png", "mask_values": {"white": "x"}})


# ---------------------------------------------------------------- json_boxes round trips
@pytest.mark.parametrize("cfg", [
    {"format": "list", "id_field": "file_name", "boxes_field": "boxes", "labels_field": "syms",
     "empty_label": "No Finding"},
    {"format": "dict", "boxes_field": "bbox", "box_keys": ["xmin", "ymin", "xmax", "ymax"], "label_key": "label"},
    {"format": "coco"},
    {"format": "list", "items_field": "items", "boxes_field": "b", "box_format": "xywh", "label": "polyp"},
])
def test_json_boxes_roundtrip(tmp_path, cfg):
    layout = make_layout({
        "kind": "json_boxes",
        "annotations": [{"path": "ann_train.json", "split": "train"}, {"path": "ann_test.json", "split": "test"}],
        "images": "{split}/{id}.png",
        "split_map": {"train": "train", "test": "test"},
        **cfg,
    })
    lab = cfg.get("label", "Mass")
    samples = [sample(1, [lab], "train", boxes=[Box(lab, 3, 4, 30, 40)]), sample(2, [lab], "test")]
    layout.write_fake(SRC, tmp_path, samples)
    recs = sorted(layout.scan(SRC, tmp_path), key=lambda r: r.image)
    assert [(r.split, r.labels, r.drop_reason) for r in recs] == [("test", (lab,), None), ("train", (lab,), None)]
    assert [(b.label, b.x1, b.y1, b.x2, b.y2) for b in recs[1].boxes] == [(lab, 3, 4, 30, 40)]
    assert len(recs[0].boxes) == 1


def test_json_boxes_empty_entry_and_missing_image(tmp_path):
    layout = make_layout({"kind": "json_boxes", "annotations": [{"path": "train.json"}], "format": "list",
                          "images": "train/{id}.png", "labels_field": "syms", "empty_label": "No Finding"})
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "00000042_006.png").write_bytes(png())
    (tmp_path / "train.json").write_text(json.dumps([
        {"file_name": "00000042_006.png", "syms": [], "boxes": []},
        {"file_name": "gone.png", "syms": ["Mass"], "boxes": [[1, 2, 3, 4]]},
    ]))
    recs = {r.ref.split(":")[-1]: r for r in layout.scan(SRC, tmp_path)}
    assert recs["00000042_006.png"].labels == ("No Finding",) and recs["00000042_006.png"].boxes == ()
    assert recs["gone.png"].drop_reason == "missing_image"


# ---------------------------------------------------------------- rle_table round trips
def test_rle_table_fixed_size_siim_style(tmp_path):
    layout = make_layout({
        "kind": "rle_table",
        "tables": [{"path": "train-rle.csv"}],
        "images": "dicom-images-train/**/{id}.png",
        "id_column": "ImageId",
        "rle_column": " EncodedPixels",
        "label": "Pneumothorax",
        "empty_label": "No pneumothorax",
        "image_size": [W, H],
        "rle_order": "column",
        "rle_starts": "relative",
    })
    samples = [sample(1, ["Pneumothorax"], boxes=[Box("Pneumothorax", 5, 6, 25, 30)]), sample(2, ["No pneumothorax"])]
    layout.write_fake(SRC, tmp_path, samples)
    header = (tmp_path / "train-rle.csv").read_text().splitlines()[0]
    assert header == "ImageId, EncodedPixels"
    recs = sorted(layout.scan(SRC, tmp_path), key=lambda r: r.image)
    assert [r.labels for r in recs] == [("Pneumothorax",), ("No pneumothorax",)]
    assert [(b.x1, b.y1, b.x2, b.y2) for b in recs[0].boxes] == [(5, 6, 25, 30)]
    assert recs[1].boxes == ()


def test_rle_table_size_from_file_name_uw_style(tmp_path):
    layout = make_layout({
        "kind": "rle_table",
        "tables": [{"path": "train.csv"}],
        "images": "{case}/{caseday}/scans/slice_{slice:\\d+}_{width:\\d+}_{height:\\d+}_{sx}_{sy}.png",
        "image_id": "{caseday}_slice_{slice}",
        "id_column": "id",
        "rle_column": "segmentation",
        "label_column": "class",
        "empty_label": "empty",
    })
    samples = [sample(1, ["stomach", "large_bowel"]), sample(2, ["empty"])]
    layout.write_fake(SRC, tmp_path, samples)
    recs = sorted(layout.scan(SRC, tmp_path), key=lambda r: r.image)
    assert [r.labels for r in recs] == [("stomach", "large_bowel"), ("empty",)]
    assert sorted(b.label for b in recs[0].boxes) == ["large_bowel", "stomach"]


def test_rle_table_bad_run_is_counted_not_lost(tmp_path):
    layout = make_layout({"kind": "rle_table", "tables": [{"path": "t.csv"}], "images": "{id}.png",
                          "id_column": "id", "rle_column": "rle", "label": "x", "image_size": [4, 4]})
    (tmp_path / "a.png").write_bytes(png(size=(4, 4)))
    (tmp_path / "t.csv").write_text("id,rle\na,100 5\n")
    (rec,) = layout.scan(SRC, tmp_path)
    assert rec.drop_reason == "unreadable_row" and "t.csv" in rec.detail


def test_dicom_mask_is_read_with_pydicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    arr = np.zeros((H, W), dtype=np.uint16)
    arr[10:20, 30:50] = 1
    ds.Rows, ds.Columns = H, W
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "m.dicom", enforce_file_format=True)
    (box,) = mask_boxes(tmp_path, "m.dicom", [(ANY_FOREGROUND, "liver")])
    assert (box.label, box.x1, box.y1, box.x2, box.y2) == ("liver", 30, 10, 50, 20)


# ---------------------------------------------------------------- EXIF orientation: one frame for pixels and boxes
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_boxes_moves_boxes_like_pillow_moves_pixels(orientation):
    from PIL import ImageOps

    from medmat_builder.build.boxes import orient_boxes

    stored = np.zeros((30, 50), dtype=np.uint8)  # not square, box off every axis of symmetry
    stored[5:12, 8:20] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="PNG", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
    ys, xs = np.nonzero(shown)
    (box,) = orient_boxes([Box("x", 8, 5, 20, 12)], orientation, (50, 30))
    assert (box.x1, box.y1, box.x2, box.y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


ORIENTED_W, ORIENTED_H = 96, 64
ORIENTED_BOXES = {o: (6 + 4 * o, 5 + 2 * o, 30 + 4 * o, 19 + 2 * o) for o in range(1, 9)}  # stored-frame pixels


def _oriented_jpeg(orientation: int, seed: int) -> bytes:
    """A dim synthetic photo with a bright rectangle at its box, stored unrotated, EXIF saying how to show it."""
    from medmat_builder.images import fake_pixels

    pixels = (fake_pixels(seed, (ORIENTED_W, ORIENTED_H)) // 3).astype(np.uint8)
    x1, y1, x2, y2 = ORIENTED_BOXES[orientation]
    pixels[y1:y2, x1:x2] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


ORIENTED_REGISTRY = """
version: 1
subsets:
  - name: subset_01
    title: Oriented photos
    modality: Endoscopy
    area: Colon
    task: Lesion
    task_group: Lesion
    kind: detection
    paper_distribution: id
    labels: [Lesion]
    instructions: ["Locate the lesion.", "Find the lesion.", "Where is the lesion?", "Box the lesion.",
                   "Mark the lesion.", "Show the lesion."]
    sources: [oriented_json, oriented_masks]
sources:
  - number: 1
    key: oriented_json
    name: Oriented photos with JSON boxes
    homepage: https://example.org/oriented-json
    license: CC0-1.0
    access: open
    redistributable: true
    citation: "@misc{orientedjson, title={Toy}}"
    subsets: [subset_01]
    obtain: "Synthetic."
    layout:
      kind: json_boxes
      annotations: [{path: "boxes.json"}]
      format: list
      images: "photos/{id}.jpg"
      id_field: file_name
      boxes_field: boxes
      labels_field: labels
    labels: {lesion: Lesion}
  - number: 2
    key: oriented_masks
    name: Oriented photos with masks
    homepage: https://example.org/oriented-masks
    license: CC0-1.0
    access: open
    redistributable: true
    citation: "@misc{orientedmasks, title={Toy}}"
    subsets: [subset_01]
    obtain: "Synthetic."
    layout:
      kind: masks
      images: "images/{id}.jpg"
      masks: "masks/{id}_mask.png"
      mask_values: {nonzero: lesion}
    labels: {lesion: Lesion}
"""


@pytest.fixture(scope="module")
def oriented_export(tmp_path_factory):
    """Photos with EXIF orientations 1-8 in a detection layout (JSON boxes) and a mask layout (masks
    without EXIF), boxes and masks drawn on the stored pixels; built end to end."""
    from medmat_builder.build import BuildSettings, build
    from medmat_builder.registry import load_registry

    base = tmp_path_factory.mktemp("oriented")
    (base / "registry.yaml").write_text(ORIENTED_REGISTRY)
    raw = base / "raw"
    entries = []
    for o in range(1, 9):
        x1, y1, x2, y2 = ORIENTED_BOXES[o]
        photo = raw / "oriented_json" / "photos" / f"photo{o}.jpg"
        photo.parent.mkdir(parents=True, exist_ok=True)
        photo.write_bytes(_oriented_jpeg(o, seed=100 + o))
        entries.append({"file_name": f"photo{o}.jpg", "boxes": [[x1, y1, x2, y2]], "labels": ["lesion"]})
        image = raw / "oriented_masks" / "images" / f"scan{o}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(_oriented_jpeg(o, seed=200 + o))
        mask = np.zeros((ORIENTED_H, ORIENTED_W), dtype=np.uint8)
        mask[y1:y2, x1:x2] = 255
        (raw / "oriented_masks" / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(raw / "oriented_masks" / "masks" / f"scan{o}_mask.png")
    (raw / "oriented_json" / "boxes.json").write_text(json.dumps(entries))
    registry = load_registry(base / "registry.yaml")
    result = build(["subset_01"], raw, base / "out", BuildSettings(), registry=registry)
    return base / "out", result.report.configs["subset_01"]


def test_exif_oriented_photos_keep_their_boxes_on_the_object(oriented_export):
    import datasets

    out, report = oriented_export
    for key in ("oriented_json", "oriented_masks"):
        assert report.sources[key].kept.train + report.sources[key].kept.test == 8, report.sources[key]
    ds = datasets.load_dataset(str(out), "subset_01")
    examples = [ex for split in ("train", "test") for ex in ds[split]]
    assert len(examples) == 16
    for ex in examples:
        img = np.asarray(ex["image"].convert("L"))
        h, w = img.shape
        ys, xs = np.nonzero(img >= 200)  # the bright rectangle, wherever the orientation put it
        bright = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        label, coords = ex["answer"].split(": ")
        x1, y1, x2, y2 = (int(v) for v in coords.strip("[]").split(", "))
        box = (x1 * w / 1000, y1 * h / 1000, x2 * w / 1000, y2 * h / 1000)
        assert label == "Lesion"
        assert all(abs(a - b) <= 1.5 for a, b in zip(box, bright)), (ex["source"], (w, h), box, bright)


def test_displayed_size_is_the_rotated_one(oriented_export):
    import datasets

    out, _ = oriented_export
    ds = datasets.load_dataset(str(out), "subset_01")
    sizes = {ex["image"].size for split in ("train", "test") for ex in ds[split]}
    assert sizes == {(ORIENTED_W, ORIENTED_H), (ORIENTED_H, ORIENTED_W)}
