"""Detection and segmentation readers against files written by hand, as the formats' public descriptions say.

Nothing here is written by medmat's own inverses (``write_fake``): a misunderstanding shared by a
reader and its inverse would pass the round trips of tests/test_layouts_detseg.py, not these. Each
file is literal text (a COCO JSON, a ChestX-Det list, run-length tables) or a mask drawn with numpy,
and the expected boxes are worked out by hand (pixel edges: a region over columns 3..6 has x1 = 3,
x2 = 7).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image
from pydantic import TypeAdapter

from medmat_builder.build import resolve_boxes
from medmat_builder.layouts import Layout

SRC = SimpleNamespace(key="handmade", group_column=None)


def layout_of(cfg: dict):
    return TypeAdapter(Layout).validate_python(cfg)


def image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), 90, dtype=np.uint8)).save(path)


def box_tuples(boxes) -> list[tuple]:
    return sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in boxes)


# ---------------------------------------------------------------- COCO (cocodataset.org/#format-data)
# "bbox": [x, y, width, height], x and y the top-left corner, in pixels; category ids need not be 1..n.
COCO = """{
  "info": {"description": "hand-written", "version": "1.0"},
  "images": [
    {"id": 397133, "file_name": "000000397133.jpg", "width": 80, "height": 60},
    {"id": 37777, "file_name": "000000037777.jpg", "width": 80, "height": 60},
    {"id": 252219, "file_name": "000000252219.jpg", "width": 80, "height": 60}
  ],
  "annotations": [
    {"id": 1, "image_id": 397133, "category_id": 13, "bbox": [10.5, 20.0, 30.0, 15.0], "area": 450.0, "iscrowd": 0},
    {"id": 2, "image_id": 397133, "category_id": 7, "bbox": [0, 0, 8, 6], "area": 48.0, "iscrowd": 0},
    {"id": 3, "image_id": 37777, "category_id": 13, "bbox": [40, 30, 40, 30], "area": 1200.0, "iscrowd": 0}
  ],
  "categories": [
    {"id": 7, "name": "polyp", "supercategory": "lesion"},
    {"id": 13, "name": "mass", "supercategory": "lesion"}
  ]
}"""


def test_coco_boxes_are_corner_plus_size(tmp_path):
    for name in ("000000397133", "000000037777", "000000252219"):
        image(tmp_path / "val2017" / f"{name}.jpg", 80, 60)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(COCO)
    layout = layout_of({"kind": "json_boxes", "format": "coco", "images": "val2017/{id}.jpg",
                        "annotations": [{"path": "annotations/instances_{split}2017.json"}],
                        "split_map": {"val": "test"}})
    recs = {r.image: r for r in layout.scan(SRC, tmp_path)}
    assert set(recs) == {"val2017/000000397133.jpg", "val2017/000000037777.jpg", "val2017/000000252219.jpg"}
    first = recs["val2017/000000397133.jpg"]
    assert first.split == "test" and first.labels == ("mass", "polyp")
    assert box_tuples(first.boxes) == [("mass", 10.5, 20.0, 40.5, 35.0), ("polyp", 0.0, 0.0, 8.0, 6.0)]
    assert box_tuples(recs["val2017/000000037777.jpg"].boxes) == [("mass", 40.0, 30.0, 80.0, 60.0)]
    assert recs["val2017/000000252219.jpg"].labels == () and recs["val2017/000000252219.jpg"].boxes == ()


# ---------------------------------------------------------------- ChestX-Det (github.com/Deepwise-AILab/ChestX-Det-Dataset)
# A list of {"file_name", "syms": [finding per box], "boxes": [[x1, y1, x2, y2], ...], "polygons": [...]}.
CHESTX_DET = """[
  {"file_name": "36199.png", "syms": ["Atelectasis", "Effusion"],
   "boxes": [[102, 384, 256, 480], [300, 40, 350, 90]],
   "polygons": [[[102, 384], [256, 384], [256, 480]], [[300, 40], [350, 40], [350, 90]]]},
  {"file_name": "36204.png", "syms": [], "boxes": [], "polygons": []}
]"""


def test_chestx_det_list_of_corner_boxes(tmp_path):
    image(tmp_path / "train" / "36199.png", 512, 512)
    image(tmp_path / "train" / "36204.png", 512, 512)
    (tmp_path / "ChestX_Det_train.json").write_text(CHESTX_DET)
    layout = layout_of({"kind": "json_boxes", "format": "list", "images": "{split}/{id}.png",
                        "annotations": [{"path": "ChestX_Det_train.json", "split": "train"}],
                        "id_field": "file_name", "boxes_field": "boxes", "labels_field": "syms",
                        "empty_label": "No Finding", "split_map": {"train": "train"}})
    recs = {r.image: r for r in layout.scan(SRC, tmp_path)}
    assert box_tuples(recs["train/36199.png"].boxes) == [("Atelectasis", 102.0, 384.0, 256.0, 480.0),
                                                         ("Effusion", 300.0, 40.0, 350.0, 90.0)]
    assert recs["train/36204.png"].labels == ("No Finding",) and recs["train/36204.png"].boxes == ()


# ---------------------------------------------------------------- run-length tables (Kaggle segmentation contests)
# One region in a 20 x 10 image: columns 3..6, rows 2..5 -> box (3, 2, 7, 6).
# Kaggle's usual encoding: pixels numbered 1, 2, ... from top to bottom, then left to right (column by
# column), pairs "start length": column x holds pixels x*10+1 .. x*10+10, so rows 2..5 of column x are
# start x*10+3, length 4.
COLUMN_MAJOR_ONE_BASED = "33 4 43 4 53 4 63 4"
# SIIM-ACR pneumothorax (stage 1): column by column from 0, each start counted from the end of the run
# before: the first run starts at 3*10+2 = 32; each next one 6 pixels after the last ended.
COLUMN_MAJOR_RELATIVE = "32 4 6 4 6 4 6 4"
# UW-Madison GI tract: pixels numbered 1, 2, ... along rows: row y holds y*20+1 .. y*20+20, so columns
# 3..6 of row y are start y*20+4, length 4.
ROW_MAJOR_ONE_BASED = "44 4 64 4 84 4 104 4"


def test_column_major_run_lengths_absolute_and_relative(tmp_path):
    for name in ("1.2.276.0.7230010.3.1.4.8323329.5597", "1.2.276.0.7230010.3.1.4.8323329.12515",
                 "1.2.276.0.7230010.3.1.4.8323329.4904"):
        image(tmp_path / "dicom-images-train" / "1.2.276.0.7230010" / f"{name}.png", 20, 10)
    (tmp_path / "train-rle.csv").write_text(
        "ImageId, EncodedPixels\n"
        f"1.2.276.0.7230010.3.1.4.8323329.5597, {COLUMN_MAJOR_RELATIVE}\n"
        "1.2.276.0.7230010.3.1.4.8323329.12515, -1\n"
        "1.2.276.0.7230010.3.1.4.8323329.4904, 2 4 6 4 6 4 6 4\n"
        "1.2.276.0.7230010.3.1.4.8323329.4904, 82 4 6 4 6 4 6 4\n"
    )
    layout = layout_of({"kind": "rle_table", "tables": [{"path": "train-rle.csv"}],
                        "images": "dicom-images-train/**/{id}.png", "id_column": "ImageId",
                        "rle_column": " EncodedPixels", "label": "Pneumothorax", "empty_label": "No pneumothorax",
                        "image_size": [20, 10], "rle_order": "column", "rle_starts": "relative"})
    recs = {r.image.rsplit("/", 1)[-1]: r for r in layout.scan(SRC, tmp_path)}
    assert box_tuples(recs["1.2.276.0.7230010.3.1.4.8323329.5597.png"].boxes) == [("Pneumothorax", 3, 2, 7, 6)]
    assert recs["1.2.276.0.7230010.3.1.4.8323329.12515.png"].labels == ("No pneumothorax",)
    # two rows of one image: columns 0..3 rows 2..5 (start 2, then each 6 after the end of the last run), and
    # columns 8..11 rows 2..5 (start 82 = 8*10+2): two regions, two boxes
    assert box_tuples(recs["1.2.276.0.7230010.3.1.4.8323329.4904.png"].boxes) == [
        ("Pneumothorax", 0, 2, 4, 6), ("Pneumothorax", 8, 2, 12, 6)]

    one_based = layout_of({"kind": "rle_table", "tables": [{"path": "masks.csv"}], "images": "{id}.png",
                           "id_column": "id", "rle_column": "rle_mask", "label": "ship", "image_size": [20, 10],
                           "rle_order": "column", "rle_starts": "absolute", "rle_base": 1})
    image(tmp_path / "one" / "a.png", 20, 10)
    (tmp_path / "one" / "masks.csv").write_text(f"id,rle_mask\na,{COLUMN_MAJOR_ONE_BASED}\n")
    (rec,) = one_based.scan(SRC, tmp_path / "one")
    assert box_tuples(rec.boxes) == [("ship", 3, 2, 7, 6)]


def test_row_major_run_lengths_with_classes_and_sizes_in_the_file_name(tmp_path):
    scans = tmp_path / "train" / "case123" / "case123_day20" / "scans"
    image(scans / "slice_0065_20_10_1.50_1.50.png", 20, 10)
    image(scans / "slice_0066_20_10_1.50_1.50.png", 20, 10)
    (tmp_path / "train.csv").write_text(
        "id,class,segmentation\n"
        f"case123_day20_slice_0065,stomach,{ROW_MAJOR_ONE_BASED}\n"
        "case123_day20_slice_0065,large_bowel,1 16 21 16 41 16\n"
        "case123_day20_slice_0065,small_bowel,\n"
        "case123_day20_slice_0066,stomach,\n"
        "case123_day20_slice_0066,large_bowel,\n"
        "case123_day20_slice_0066,small_bowel,\n"
    )
    layout = layout_of({"kind": "rle_table", "tables": [{"path": "train.csv"}],
                        "images": "{case}/{caseday}/scans/slice_{slice:\\d+}_{width:\\d+}_{height:\\d+}_{sx}_{sy}.png",
                        "image_id": "{caseday}_slice_{slice}", "id_column": "id", "rle_column": "segmentation",
                        "label_column": "class", "empty_label": "none", "rle_order": "row"})
    recs = {r.image.rsplit("/", 1)[-1]: r for r in layout.scan(SRC, tmp_path)}
    first = recs["slice_0065_20_10_1.50_1.50.png"]
    assert first.labels == ("stomach", "large_bowel")
    # large_bowel: columns 0..15 of rows 0..2 (starts 1, 21, 41: row y begins at y*20+1)
    assert box_tuples(first.boxes) == [("large_bowel", 0, 0, 16, 3), ("stomach", 3, 2, 7, 6)]
    assert recs["slice_0066_20_10_1.50_1.50.png"].labels == ("none",)


# ---------------------------------------------------------------- masks drawn with numpy
def test_colour_coded_mask_classes(tmp_path):
    """A colour-coded mask (one RGB colour per class, as CholecSeg8k's watershed masks): each class's colour
    gives its own boxes; other colours (an unlisted class) and black are ignored."""
    image(tmp_path / "video01" / "frame_80_endo.png", 40, 30)
    mask = np.zeros((30, 40, 3), dtype=np.uint8)
    mask[5:15, 2:12] = (170, 255, 85)      # grasper: rows 5..14, columns 2..11 -> (2, 5, 12, 15)
    mask[10:28, 20:38] = (255, 160, 165)   # liver: rows 10..27, columns 20..37 -> (20, 10, 38, 28)
    mask[0:4, 30:40] = (0, 0, 255)         # a colour no class of the registry names
    Image.fromarray(mask).save(tmp_path / "video01" / "frame_80_endo_watershed_mask.png")
    layout = layout_of({"kind": "masks", "images": "{video}/frame_{id}_endo.png",
                        "masks": "{video}/frame_{id}_endo_watershed_mask.png",
                        "mask_values": {"#AAFF55": "grasper", "#FFA0A5": "liver"}})
    (rec,) = layout.scan(SRC, tmp_path)
    assert rec.labels == ("grasper", "liver")
    assert box_tuples(resolve_boxes(rec, tmp_path, (40, 30))) == [("grasper", 2, 5, 12, 15), ("liver", 20, 10, 38, 28)]


def test_grey_level_classes_and_one_mask_file_per_class(tmp_path):
    """Grey levels as classes (0 background, 1 liver, 2 tumour), and one binary file per class in its own folder
    (Montgomery County's leftMask/rightMask)."""
    image(tmp_path / "volumes" / "liver_7.png", 32, 32)
    grey = np.zeros((32, 32), dtype=np.uint8)
    grey[4:28, 4:28] = 1     # liver -> (4, 4, 28, 28)
    grey[10:16, 18:24] = 2   # tumour inside it -> (18, 10, 24, 16)
    (tmp_path / "segmentations").mkdir()
    Image.fromarray(grey).save(tmp_path / "segmentations" / "liver_7.png")
    levels = layout_of({"kind": "masks", "images": "volumes/{id}.png", "masks": "segmentations/{id}.png",
                        "mask_values": {"1": "liver", "2": "tumour"}})
    (rec,) = levels.scan(SRC, tmp_path)
    assert box_tuples(resolve_boxes(rec, tmp_path, (32, 32))) == [("liver", 4, 4, 28, 28), ("tumour", 18, 10, 24, 16)]

    cxr = tmp_path / "montgomery"
    image(cxr / "CXR_png" / "MCUCXR_0001_0.png", 40, 20)
    for side, columns in (("left", slice(22, 36)), ("right", slice(4, 18))):
        m = np.zeros((20, 40), dtype=np.uint8)
        m[3:17, columns] = 255
        (cxr / "ManualMask" / f"{side}Mask").mkdir(parents=True)
        Image.fromarray(m).save(cxr / "ManualMask" / f"{side}Mask" / "MCUCXR_0001_0.png")
    per_class = layout_of({"kind": "masks", "images": "CXR_png/{id}.png", "masks": "ManualMask/{class}Mask/{id}.png",
                           "classes": {"left": "left lung", "right": "right lung"}})
    (rec,) = per_class.scan(SRC, cxr)
    assert rec.labels == ("left lung", "right lung")
    assert box_tuples(resolve_boxes(rec, cxr, (40, 20))) == [("left lung", 22, 3, 36, 17), ("right lung", 4, 3, 18, 17)]
