"""Layouts meet archives as they really are: validation folders, official split lists, nested second
copies, image extensions other than the pattern's, and files that match no pattern (issues 15, 16)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat_builder.build.file_ledger import account_files
from medmat_builder.layouts import FoldersLayout, JsonBoxesLayout, LayoutError, MasksLayout, PathPattern, TableLayout
from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.registry import load_registry
from medmat_builder.report import SourceLedger

REGISTRY = load_registry()


class _Src:
    key = "toy"
    group_column = None


def touch(root: Path, rel: str, data: bytes | None = None) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if data is not None else rel.encode())


def png(seed: int, size: tuple[int, int] = (24, 20)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(seed))).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def records(layout, root):
    return list(layout.scan(_Src(), root))


def ledger_of(source, root, recs) -> tuple[SourceLedger, list[str]]:
    led = SourceLedger()
    claimed = {r.image for r in recs} | {m for r in recs if r.mask for m in r.mask.split("|")}
    return led, account_files(source, root, claimed, led)


# ----------------------------------------------------------------------------- Kermany pediatric CXR
KERMANY = {("train", "NORMAL"): 5, ("train", "PNEUMONIA"): 7, ("val", "NORMAL"): 2, ("val", "PNEUMONIA"): 2,
           ("test", "NORMAL"): 3, ("test", "PNEUMONIA"): 3}


def kermany_tree(root: Path, nested: bool = True) -> None:
    """chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}/ as the Kaggle upload holds it: real file-name styles,
    the nested second copy chest_xray/chest_xray/, and __MACOSX / .DS_Store litter."""
    seed = 0
    for prefix in ["chest_xray", "chest_xray/chest_xray"] if nested else ["chest_xray"]:
        seed = 0
        for (split, label), n in KERMANY.items():
            for i in range(n):
                seed += 1
                p = i + {"train": 0, "test": 100, "val": 200}[split]  # one patient per image, none in two splits
                if label == "NORMAL":
                    name = f"IM-{115 + p:04d}-0001.jpeg" if i % 2 else f"NORMAL2-IM-{1427 + p:04d}-0001.jpeg"
                else:
                    name = f"person{p + 1}_bacteria_{p + 1}.jpeg" if i % 2 else f"person{p + 1}_virus_{p + 6}.jpeg"
                touch(root, f"{prefix}/{split}/{label}/{name}", jpeg(seed))
    touch(root, "__MACOSX/chest_xray/train/NORMAL/._IM-0116-0001.jpeg", b"\0")
    touch(root, "chest_xray/.DS_Store", b"\0")


def test_kermany_val_folder_goes_to_train_and_the_nested_copy_is_read_once(tmp_path):
    source = REGISTRY.source("pediatric_pneumonia")
    kermany_tree(tmp_path)
    recs = records(source.layout, tmp_path)
    assert not [r for r in recs if r.drop_reason]
    splits = {(r.image.split("/")[-3], r.split) for r in recs}
    assert splits == {("train", "train"), ("val", "train"), ("test", "test")}
    assert len(recs) == sum(KERMANY.values()) == 22  # not 44: the copy under chest_xray/chest_xray/ is not read
    assert sum(r.split == "train" for r in recs) == 5 + 7 + 2 + 2 and sum(r.split == "test" for r in recs) == 6
    assert not any(r.image.startswith("chest_xray/chest_xray/") for r in recs)
    led, warnings = ledger_of(source, tmp_path, recs)
    assert led.read_images == 22 and led.unread_images.nested_copies == 22 and led.unread_images.unexplained == 0
    assert sorted(led.unread_images.copy_folders) == [(f"chest_xray/chest_xray/{s}", f"chest_xray/{s}")
                                               for s in ("test", "train", "val")]
    assert warnings == []


def test_kermany_build_puts_val_images_in_train_and_counts_the_copy_not_as_duplicates(tmp_path):
    from medmat_builder.build import build

    kermany_tree(tmp_path / "raw" / "pediatric_pneumonia")
    res = build(["subset_28"], tmp_path / "raw", tmp_path / "out", partial=True, registry=REGISTRY)
    led = res.report.configs["subset_28"].sources["pediatric_pneumonia"]
    assert led.raw == 22 and "duplicate" not in led.dropped
    assert led.kept.test == 6  # strictly balanced: 3 NORMAL + 3 PNEUMONIA
    assert led.kept.train == 16  # train 12 + val 4
    assert led.read_images == 22 and led.unread_images.nested_copies == 22
    assert led.unread_images.unexplained == 0


def test_validation_names_go_to_train_unless_split_map_says_otherwise():
    layout = FoldersLayout(kind="folders", images="{split:train|test}/{label}/*.png", split_map={"train": "train", "test": "test"})
    for raw in ("val", "Valid", "VALIDATION", "dev"):
        assert layout.map_split(raw) == ("train", False)
        assert PathPattern(layout.images).match(f"x/{raw}/A/1.png") == {"split": raw, "label": "A"}
    assert layout.resolve_split("holdout") == (None, "unknown_split", "split 'holdout' is not in split_map")
    dropping = layout.model_copy(update={"split_map": {"train": "train", "test": "test", "val": "drop"}})
    assert dropping.resolve_split("VAL") == (None, "unused_split", "split 'VAL' is not used by the paper")
    assert PathPattern("{split:train|test}/{label}/*.png").match("trainval/A/1.png") is None


# ----------------------------------------------------------------------------- nested copies
def test_nested_copy_needs_same_names_sizes_and_bytes(tmp_path):
    for rel in ("X/train/a/1.png", "X/train/a/2.png", "X/train/b/3.png"):
        touch(tmp_path, rel, png(hash(rel) % 1000))
        touch(tmp_path, "X/X/" + rel[2:], (tmp_path / rel).read_bytes())
    # same names and sizes, other bytes: two different scans, not a copy
    touch(tmp_path, "Y/test/a/1.png", png(1, (30, 30)))
    touch(tmp_path, "Z/test/a/1.png", png(2, (30, 30)))
    index = FileIndex(tmp_path)
    assert index.copy_folders == {"X/X/train": "X/train"}
    assert "X/X/train/a/1.png" in index.copies and index.copies["X/X/train/a/1.png"] == "X/train/a/1.png"
    assert set(index.files) == set(index.all_files) - set(index.copies)
    assert {"Y/test/a/1.png", "Z/test/a/1.png"} <= set(index.files)


def test_the_copy_the_layout_reads_is_the_one_kept(tmp_path):
    """Dental-style doubled class folders (Oral/Calculus/Calculus/) repeated flat at the top (Calculus/):
    the copy the layout's pattern reads is kept, whatever its depth."""
    for i in range(3):
        touch(tmp_path, f"Oral/Calculus/Calculus/{i}.jpg", jpeg(i))
        touch(tmp_path, f"Calculus/{i}.jpg", jpeg(i))
    layout = FoldersLayout(kind="folders", images="{label}/{label}/**/*", extensions=["jpg"])
    assert layout.file_index(tmp_path).copy_folders == {"Calculus": "Oral/Calculus/Calculus"}
    assert [r.image for r in records(layout, tmp_path)] == [f"Oral/Calculus/Calculus/{i}.jpg" for i in range(3)]
    # without patterns to prefer, the shallowest copy is kept
    assert FileIndex(tmp_path).copy_folders == {"Oral/Calculus/Calculus": "Calculus"}


# ----------------------------------------------------------------------------- official split lists
def test_folders_read_covid_ct_data_split_lists(tmp_path):
    source = REGISTRY.source("covid_ct")
    names = {"CT_COVID": ["2020.01.24.919183-p27-132.png", "2020.02.10.20021584-p6-52%0.png", "PIIS0140673620303603%8.png"],
             "CT_NonCOVID": ["0.jpg", "1%0.jpg", "2.png"]}
    for label, files in names.items():
        for i, f in enumerate(files):
            touch(tmp_path, f"Images-processed/{label}/{f}", png(i + len(label)))
    short = {"CT_COVID": "COVID", "CT_NonCOVID": "NonCOVID"}
    for label, files in names.items():
        for split, picked in (("train", files[:1]), ("val", files[1:2]), ("test", files[2:])):
            touch(tmp_path, f"Data-split/{short[label]}/{split}CT_{short[label]}.txt", "\n".join(picked).encode() + b"\n")
    recs = records(source.layout, tmp_path)
    got = {r.image.rsplit("/", 1)[-1]: r.split for r in recs}
    assert got == {"2020.01.24.919183-p27-132.png": "train", "2020.02.10.20021584-p6-52%0.png": "train",
                   "PIIS0140673620303603%8.png": "test", "0.jpg": "train", "1%0.jpg": "train", "2.png": "test"}


def test_masks_read_a_partition_table_and_bladder_reads_a_split_column(tmp_path):
    import openpyxl

    seg = REGISTRY.source("sicapv2_seg")
    root = tmp_path / "sicapv2" / "SICAPv2"
    for i, name in enumerate(["16B0001851_Block_Region_1_0_0_xini_6827_yini_59898", "17B0026834_Block_Region_3_4_1_xini_1_yini_2"]):
        touch(root, f"images/{name}.jpg", jpeg(i))
        mask = np.zeros((20, 24), dtype=np.uint8)
        mask[5:15, 5:15] = 3 + i
        buf = io.BytesIO()
        Image.fromarray(mask).save(buf, format="PNG")
        touch(root, f"masks/{name}.png", buf.getvalue())
    for split, name in (("Train", "16B0001851_Block_Region_1_0_0_xini_6827_yini_59898.jpg"),
                        ("Test", "17B0026834_Block_Region_3_4_1_xini_1_yini_2.jpg")):
        wb = openpyxl.Workbook()
        wb.active.append(["image_name", "NC", "G3", "G4", "G5", "G4C"])
        wb.active.append([name, 0, 1, 0, 0, 0])
        (root / "partition" / "Test").mkdir(parents=True, exist_ok=True)
        wb.save(root / "partition" / "Test" / f"{split}.xlsx")
    recs = records(seg.layout, tmp_path / "sicapv2")
    assert sorted((r.image.rsplit("/", 1)[-1][:10], r.split) for r in recs) == [("16B0001851", "train"), ("17B0026834", "test")]

    bladder = REGISTRY.source("bladder_tissue")
    broot = tmp_path / "bladder"
    rows = [("HGC", "case_001_frame_0001.png", "train"), ("LGC", "case_002_frame_0002.png", "val"),
            ("NST", "case_003_frame_0003.png", "test"), ("NTL", "case_004_frame_0004.png", "test")]
    for i, (label, name, _) in enumerate(rows):
        touch(broot, f"{label}/{name}", png(i))
    touch(broot, "annotations.csv", ("HLY,tissue type,imaging type,sub_dataset\n"
                                     + "".join(f"{n},{lab},WLI,{s}\n" for lab, n, s in rows)).encode())
    got = sorted((r.labels[0], r.split) for r in records(bladder.layout, broot))
    assert got == [("HGC", "train"), ("LGC", "train"), ("NST", "test"), ("NTL", "test")]
    led, warnings = ledger_of(bladder, broot, records(bladder.layout, broot))
    assert led.unmatched_tables == [] and led.unread_images.count == 0 and warnings == []


def test_split_list_conflicts_unlisted_images_and_a_missing_list(tmp_path):
    layout = FoldersLayout(kind="folders", images="{label}/*.png", split_map={"train": "train", "test": "test"},
                           split_lists=[{"path": "lists/train.txt", "split": "train"}, {"path": "lists/test.txt", "split": "test"}])
    for rel in ("A/1.png", "A/2.png", "B/3.png", "B/4.png"):
        touch(tmp_path, rel)
    touch(tmp_path, "lists/train.txt", b"1.png\nA\\2.png\n004.png\n")
    touch(tmp_path, "lists/test.txt", b"B/3.PNG\n4\n")
    got = {r.image: (r.split, r.drop_reason) for r in records(layout, tmp_path)}
    assert got == {"A/1.png": ("train", None), "A/2.png": ("train", None), "B/3.png": ("test", None),
                   "B/4.png": (None, "conflicting_split")}
    touch(tmp_path, "C/5.png")
    assert {r.image: r.split for r in records(layout, tmp_path)}["C/5.png"] is None  # unlisted: kept, no split
    dropping = layout.model_copy(update={"unlisted": "drop"})
    assert {r.image: r.drop_reason for r in records(dropping, tmp_path)}["C/5.png"] == "unlisted"
    (tmp_path / "lists" / "test.txt").rename(tmp_path / "lists" / "tset.txt")
    with pytest.raises(LayoutError, match=r"no split list matching 'lists/test.txt'.*closest file is 'lists/tset.txt'"):
        records(layout, tmp_path)


def test_json_boxes_read_split_lists_too(tmp_path):
    layout = JsonBoxesLayout(kind="json_boxes", annotations=[{"path": "ann.json"}], format="list", images="imgs/{id}.png",
                             labels_field="syms", split_map={"train": "train", "test": "test"},
                             split_lists=[{"path": "splits.csv", "column": "file", "split_column": "fold"}])
    touch(tmp_path, "ann.json", json.dumps([{"file_name": "a.png", "boxes": [[1, 1, 5, 5]], "syms": ["x"]},
                                            {"file_name": "b.png", "boxes": [[1, 1, 5, 5]], "syms": ["y"]}]).encode())
    touch(tmp_path, "imgs/a.png")
    touch(tmp_path, "imgs/b.png")
    touch(tmp_path, "splits.csv", b"file,fold\na.png,train\nb.png,test\n")
    assert [(r.image, r.split) for r in records(layout, tmp_path)] == [("imgs/a.png", "train"), ("imgs/b.png", "test")]


@pytest.mark.parametrize("kind", ["folders", "masks", "table"])
def test_split_lists_round_trip_through_the_inverse(tmp_path, kind):
    from medmat_builder.records import FakeSample

    lists = {"split_lists": [{"path": "Data-split/{split}_list.txt"}], "split_map": {"train": "train", "val": "train", "test": "test"}}
    layout = {
        "folders": lambda: FoldersLayout(kind="folders", images="{label}/*.png", **lists),
        "masks": lambda: MasksLayout(kind="masks", images="img/{id}.png", masks="gt/{id}.png", mask_values={"nonzero": "x"}, **lists),
        "table": lambda: TableLayout(kind="table", tables=[{"path": "all.csv"}], images="img/{id}.png", id_column="name",
                                     label_column="cls", **lists),
    }[kind]()
    samples = [FakeSample(i, ("x",), "test" if i % 3 == 0 else "train", png(i), ".png", 24, 20) for i in range(1, 7)]
    layout.write_fake(_Src(), tmp_path, samples)
    assert sorted(p.name for p in (tmp_path / "Data-split").iterdir()) == ["test_list.txt", "train_list.txt"]
    assert sorted(str(r.split) for r in records(layout, tmp_path)) == sorted(str(s.split) for s in samples)


# ----------------------------------------------------------------------------- image extensions
def test_chest_ctscan_pattern_reads_png_and_jpg(tmp_path):
    """The archive holds .png and .jpg files; the registry's '*.png' is a default, not a filter."""
    source = REGISTRY.source("chest_ctscan")
    # the registry now lists the extensions itself; the rule under test is the '*.png' default
    source = source.model_copy(update={"layout": source.layout.model_copy(
        update={"images": "{split}/{label}/*.png", "extensions": []})})
    touch(tmp_path, "Data/train/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib/000000 (6).png", png(1))
    touch(tmp_path, "Data/train/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib/ad3.jpg", jpeg(2))
    touch(tmp_path, "Data/valid/normal/n8.jpg", jpeg(3))
    touch(tmp_path, "Data/test/normal/6 - Copy (3).png", png(4))
    recs = records(source.layout, tmp_path)
    assert sorted((r.image.rsplit("/", 1)[-1], r.split) for r in recs) == [
        ("000000 (6).png", "train"), ("6 - Copy (3).png", "test"), ("ad3.jpg", "train"), ("n8.jpg", "train")]
    strict = source.layout.model_copy(update={"extensions": "strict"})
    assert sorted(r.image.rsplit("/", 1)[-1] for r in records(strict, tmp_path)) == ["000000 (6).png", "6 - Copy (3).png"]
    only_jpg = source.layout.model_copy(update={"extensions": ["JPG"]})
    assert sorted(r.image.rsplit("/", 1)[-1] for r in records(only_jpg, tmp_path)) == ["ad3.jpg", "n8.jpg"]
    led, _ = ledger_of(type("S", (), {"key": "chest_ctscan", "groups": None, "layout": only_jpg})(), tmp_path, records(only_jpg, tmp_path))
    assert led.unread_images.excluded == 2 and led.unread_images.unexplained == 0  # left out by the registry's extension list


def test_masks_stay_apart_from_images_when_extensions_widen(tmp_path):
    """PALM-like: images {id}.jpg anywhere, disc masks Disc_Masks/{id}.bmp, lesion masks in another folder."""
    layout = MasksLayout(kind="masks", images="{id}.jpg", masks="Disc_Masks/{id}.bmp", mask_values={"0": "optic disc"})
    touch(tmp_path, "PALM-Training400/H0001.jpg", jpeg(1))
    touch(tmp_path, "PALM-Training400/P0002.png", png(2))  # an image of another extension is still read
    touch(tmp_path, "Disc_Masks/H0001.bmp", b"bmp")
    touch(tmp_path, "Disc_Masks/P0002.bmp", b"bmp")
    touch(tmp_path, "Lesion_Masks/Atrophy/H0001.bmp", b"bmp")  # same id as an image: the .jpg wins
    recs = records(layout, tmp_path)
    assert [(r.image, r.mask) for r in recs] == [("PALM-Training400/H0001.jpg", "Disc_Masks/H0001.bmp"),
                                                 ("PALM-Training400/P0002.png", "Disc_Masks/P0002.bmp")]
    folders = FoldersLayout(kind="folders", images="{label}/*.png", exclude=["*_mask.png", "*.bmp"])
    touch(tmp_path / "f", "benign/1.png")
    touch(tmp_path / "f", "benign/1_mask.jpg")  # a mask of another extension is still excluded
    touch(tmp_path / "f", "benign/2.jpg")
    touch(tmp_path / "f", "benign/3.bmp")  # an extension-only exclude stays exact
    assert sorted(r.image for r in records(folders, tmp_path / "f")) == ["benign/1.png", "benign/2.jpg"]


def test_table_id_with_two_extensions_prefers_the_declared_one(tmp_path):
    layout = TableLayout(kind="table", tables=[{"path": "t.csv"}], images="{id}.png", id_column="id", label_column="y")
    touch(tmp_path, "t.csv", b"id,y\n1,a\n2,b\n")
    touch(tmp_path, "1.png")
    touch(tmp_path, "1.jpg")
    touch(tmp_path, "2.jpg")
    assert [(r.image, r.drop_reason) for r in records(layout, tmp_path)] == [("1.png", None), ("2.jpg", None)]


# ----------------------------------------------------------------------------- near misses
def test_folder_and_table_that_match_no_pattern_are_named_with_the_closest(tmp_path):
    source = REGISTRY.source("pediatric_pneumonia")
    kermany_tree(tmp_path, nested=False)
    (tmp_path / "chest_xray" / "train").rename(tmp_path / "chest_xray" / "Trainning")
    recs = records(source.layout, tmp_path)
    led, warnings = ledger_of(source, tmp_path, recs)
    assert led.unread_images.unexplained == 12
    assert {f.folder for f in led.unread_images.folders} == {"chest_xray/Trainning/NORMAL", "chest_xray/Trainning/PNEUMONIA"}
    assert all(f.closest_pattern == source.layout.images and "'Trainning' does not match" in f.hint
               and "(closest: 'train')" in f.hint for f in led.unread_images.folders)
    assert len(warnings) == 1 and "comes closest to" in warnings[0] and "'Trainning'" in warnings[0]

    table = type("S", (), {"key": "toy", "groups": None, "layout": TableLayout(
        kind="table", tables=[{"path": "train.csv"}], images="{id}.png", id_column="id", label_column="y")})()
    touch(tmp_path / "t", "1.png")
    touch(tmp_path / "t", "Train_labels.CSV", b"id,y\n1,a\n")
    touch(tmp_path / "t", "metadata.xlsx", b"")
    with pytest.raises(LayoutError, match=r"no table matching train.csv .*closest file is 'Train_labels.CSV'"):
        records(table.layout, tmp_path / "t")
    touch(tmp_path / "t", "Train.CSV", b"id,y\n1,a\n")  # another case is the same name: read, not a miss
    assert [r.image for r in records(table.layout, tmp_path / "t")] == ["1.png"]
    (tmp_path / "t" / "Train.CSV").rename(tmp_path / "t" / "train.csv")
    led, warnings = ledger_of(table, tmp_path / "t", records(table.layout, tmp_path / "t"))
    assert [(t.path, t.closest_pattern) for t in led.unmatched_tables] == [
        ("Train_labels.CSV", "train.csv"), ("metadata.xlsx", None)]
    assert warnings == ["source toy: table 'Train_labels.CSV' matches no pattern of its layout; closest is "
                        "'train.csv' ('Train_labels.CSV' does not match 'train.csv')"]


def test_missing_source_folder_with_a_typo_names_the_close_folder(tmp_path, mini_raw_copy, mini_registry):
    from medmat_builder.build import MissingSourcesError, build

    (mini_raw_copy / "toy_table").rename(mini_raw_copy / "Toy_Table")
    with pytest.raises(MissingSourcesError) as err:
        build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    assert f"found {mini_raw_copy / 'Toy_Table'}/ instead: if that is this source, rename it to {mini_raw_copy / 'toy_table'}/" in str(err.value)
