"""The generic reader kinds on hand-made trees: every quirk named in the registry issue."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmat_builder.layouts import FoldersLayout, LayoutError, PathPattern, TableLayout
from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.layouts.patterns import is_junk


class _Src:
    """Just enough of a Source for a layout's scan()."""

    key = "toy"
    group_column = None


def touch(root: Path, rel: str, data: bytes = b"x") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def records(layout, root):
    return list(layout.scan(_Src(), root))


# ----------------------------------------------------------------------------- patterns
def test_pattern_matches_with_or_without_archive_top_folder():
    p = PathPattern("{split}/{label}/*.jpeg")
    assert p.match("train/NORMAL/a.jpeg") == {"split": "train", "label": "NORMAL"}
    assert p.match("chest_xray/train/NORMAL/a.JPEG") == {"split": "train", "label": "NORMAL"}
    assert p.match("train/a.jpeg") is None
    assert PathPattern("**/img/{id}.png").match("a/b/img/7.png") == {"id": "7"}
    assert PathPattern("{id:\\d+}_{label}.png").match("x/0012_benign.png") == {"id": "0012", "label": "benign"}


def test_junk_is_never_an_image(tmp_path):
    for rel in ["__MACOSX/train/A/a.jpeg", "train/A/.DS_Store", "train/A/._a.jpeg", "train/A/Thumbs.db", "train/A/a.jpeg"]:
        touch(tmp_path, rel)
    assert FileIndex(tmp_path).files == ["train/A/a.jpeg"]
    assert is_junk("x/__MACOSX/y.png") and not is_junk("x/macosx.png")


# ----------------------------------------------------------------------------- folders
def test_folders_split_map_exclude_and_unknown_split(tmp_path):
    layout = FoldersLayout(kind="folders", images="{split}/{label}/*", exclude=["*_mask.png"],
                           split_map={"train": "train", "val": "train", "test": "test", "extra": "drop"})
    for rel in ["Top/train/benign/1.png", "Top/train/benign/1_mask.png", "Top/val/malignant/2.png",
                "Top/test/benign/3.png", "Top/extra/benign/4.png", "Top/weird/benign/5.png", "Top/test/benign/notes.txt"]:
        touch(tmp_path, rel)
    recs = records(layout, tmp_path)
    by_image = {r.image: r for r in recs}
    assert "Top/train/benign/1_mask.png" not in by_image and "Top/test/benign/notes.txt" not in by_image
    assert by_image["Top/val/malignant/2.png"].split == "train"
    assert by_image["Top/test/benign/3.png"].split == "test"
    assert by_image["Top/extra/benign/4.png"].drop_reason == "unused_split"
    assert by_image["Top/weird/benign/5.png"].drop_reason == "unknown_split"
    assert by_image["Top/weird/benign/5.png"].detail == "split 'weird' is not in split_map"


def test_a_copy_with_new_fields_does_not_keep_patterns_worked_out_from_the_old_ones(tmp_path):
    layout = FoldersLayout(kind="folders", images="{label}/*")
    for rel in ["benign/1.png", "benign/1_mask.png"]:
        touch(tmp_path, rel)
    assert layout.exclude_patterns == [] and len(layout.read_patterns) == 1  # worked out (and cached) here
    copy = layout.model_copy(update={"exclude": ["*_mask.png"], "images": "{label}/1*"})
    assert [p.regex.pattern for p in copy.exclude_patterns] == [layout.mask_pattern("*_mask.png").regex.pattern]
    assert copy.read_patterns[0].pattern == "{label}/1*" and layout.read_patterns[0].pattern == "{label}/*"
    assert [r.image for r in records(copy, tmp_path)] == ["benign/1.png"]
    assert sorted(r.image for r in records(layout, tmp_path)) == ["benign/1.png", "benign/1_mask.png"]


def test_folders_label_in_file_name(tmp_path):
    layout = FoldersLayout(kind="folders", images="images/{id}_{label}.bmp")
    touch(tmp_path, "images/001_drusen.bmp")
    touch(tmp_path, "images/002_normal.BMP")
    assert sorted(r.labels for r in records(layout, tmp_path)) == [("drusen",), ("normal",)]


# ----------------------------------------------------------------------------- tables
def table(**kw) -> TableLayout:
    return TableLayout(kind="table", **kw)


def test_table_header_space_zero_padding_and_extension_in_id(tmp_path):
    layout = table(tables=[{"path": "labels.csv"}], images="imgs/{id}.jpg", id_column=" image", label_column="level")
    (tmp_path / "labels.csv").write_text(" image,level\n17.jpg,2\n0018,0\n")
    touch(tmp_path, "release/imgs/00017.jpg")
    touch(tmp_path, "release/imgs/18.jpg")
    recs = records(layout, tmp_path)
    assert [(r.image, r.labels) for r in recs] == [("release/imgs/00017.jpg", ("2",)), ("release/imgs/18.jpg", ("0",))]


def test_table_one_hot_empty_label_and_xlsx(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ID", "N", "D", "G"])
    ws.append([1, 0, 1, 1])
    ws.append([2, 0, 0, 0])
    wb.save(tmp_path / "ann.xlsx")
    touch(tmp_path, "Images/1.png")
    touch(tmp_path, "Images/2.png")
    layout = table(tables=[{"path": "ann.xlsx"}], images="Images/{id}.png", id_column="ID",
                   label_columns=["N", "D", "G"], empty_label="N")
    assert [r.labels for r in records(layout, tmp_path)] == [("D", "G"), ("N",)]


def test_table_multilabel_separator_split_column_and_merged_rows(tmp_path):
    (tmp_path / "data.tsv").write_text("file\tfinding\tfold\na.png\tEffusion|Mass\ttrain\nb.png\t\ttest\na.png\tNodule\ttrain\n")
    touch(tmp_path, "a.png")
    touch(tmp_path, "b.png")
    layout = table(tables=[{"path": "data.tsv"}], images="{id}.png", id_column="file", label_column="finding",
                   label_separator="|", split_column="fold", empty_label="No Finding",
                   split_map={"train": "train", "test": "test"})
    recs = records(layout, tmp_path)
    assert [(r.image, r.labels, r.split) for r in recs] == [
        ("a.png", ("Effusion", "Mass", "Nodule"), "train"),
        ("b.png", ("No Finding",), "test"),
    ]


def test_table_path_like_ids_match_either_unpacking(tmp_path):
    (tmp_path / "train.csv").write_text("Path,Label\nCheXpert-v1.0-small/train/p1/s1/view1.jpg,A\n")
    touch(tmp_path, "train/p1/s1/view1.jpg")  # unpacked without the archive's top folder
    layout = table(tables=[{"path": "train.csv", "split": "train"}], images="{id:.+}.jpg", id_column="Path",
                   label_column="Label", split_map={"train": "train"})
    (rec,) = records(layout, tmp_path)
    assert rec.image == "train/p1/s1/view1.jpg" and rec.drop_reason is None


def test_table_bad_rows_and_missing_images_are_counted_not_lost(tmp_path):
    (tmp_path / "labels.csv").write_text("id,label\n1,a\n2,b,EXTRA\n,c\n3,a\n")
    touch(tmp_path, "1.png")
    layout = table(tables=[{"path": "labels.csv"}], images="{id}.png", id_column="id", label_column="label")
    recs = records(layout, tmp_path)
    reasons = [(r.ref, r.drop_reason) for r in recs]
    assert reasons == [("labels.csv:3", "unreadable_row"), ("labels.csv:4", "unreadable_row"),
                       ("labels.csv:2", None), ("labels.csv:5", "missing_image")]
    assert "no file matching '{id}.png' for id '3'" in recs[-1].detail


def test_table_missing_column_and_missing_table_name_file_and_source(tmp_path):
    (tmp_path / "labels.csv").write_text("id,diagnosis\n1,a\n")
    layout = table(tables=[{"path": "labels.csv"}], images="{id}.png", id_column="id", label_column="label")
    with pytest.raises(LayoutError, match=r"source toy: table labels.csv has no column 'label'"):
        records(layout, tmp_path)
    layout = table(tables=[{"path": "other.csv"}], images="{id}.png", id_column="id", label_column="label")
    with pytest.raises(LayoutError, match="source toy: no table matching other.csv"):
        records(layout, tmp_path)


def test_table_boxes_from_columns(tmp_path):
    (tmp_path / "ann.csv").write_text("image_id,class_name,x_min,y_min,x_max,y_max\n"
                                      "a,Osteophytes,1,2,30,40\na,Disc space narrowing,5,5,9,9\nb,No finding,,,,\n")
    touch(tmp_path, "a.dicom")
    touch(tmp_path, "b.dicom")
    layout = table(tables=[{"path": "ann.csv"}], images="{id}.dicom", id_column="image_id", label_column="class_name",
                   box_columns=["x_min", "y_min", "x_max", "y_max"])
    a, b = records(layout, tmp_path)
    assert [(x.label, x.x1, x.y2) for x in a.boxes] == [("Osteophytes", 1.0, 40.0), ("Disc space narrowing", 5.0, 9.0)]
    assert b.boxes == () and b.labels == ("No finding",)


def test_table_headerless_whitespace_ragged_rows(tmp_path):
    # MIAS-style: "mdb001 G CIRC B 535 425 197" and short rows for normal images.
    (tmp_path / "Info.txt").write_text("mdb001 G CIRC B 535 425 197\nmdb003 D NORM\n")
    touch(tmp_path, "all-mias/mdb001.pgm")
    touch(tmp_path, "all-mias/mdb003.pgm")
    layout = table(tables=[{"path": "Info.txt", "sep": "whitespace", "pad_short_rows": True,
                            "columns": ["ref", "tissue", "class", "severity", "x", "y", "radius"]}],
                   images="{id}.pgm", id_column="ref", label_column="class")
    assert [(r.image, r.labels) for r in records(layout, tmp_path)] == [
        ("all-mias/mdb001.pgm", ("CIRC",)), ("all-mias/mdb003.pgm", ("NORM",))]


def test_table_json_lists_regex_ids_and_label_strip(tmp_path):
    (tmp_path / "train.json").write_text('[{"file_name": "scans/a_1.png", "syms": ["Effusion", "Mass"]},'
                                         ' {"file_name": "scans/b_2.png", "syms": []}]')
    (tmp_path / "meta.csv").write_text("image,finding\nimg/a_1.png,\"['Mass', 'Suspicious Calcification']\"\n")
    touch(tmp_path, "a_1.png")
    touch(tmp_path, "b_2.png")
    js = table(tables=[{"path": "train.json"}], images="{id}.png", id_column="file_name", label_column="syms",
               label_separator="|", empty_label="No Finding")
    assert [r.labels for r in records(js, tmp_path)] == [("Effusion", "Mass"), ("No Finding",)]
    cs = table(tables=[{"path": "meta.csv"}], images="{id}.png", id_column="image", id_regex=r"/(?P<id>[^/]+)$",
               label_column="finding", label_separator=",", label_strip_chars="[]' ")
    assert [r.labels for r in records(cs, tmp_path)] == [("Mass", "Suspicious Calcification")]


def test_table_split_lists_and_multiple_images_per_id(tmp_path):
    (tmp_path / "Data_Entry.csv").write_text("Image Index,Finding Labels\n1.png,Mass\n2.png,No Finding\n")
    (tmp_path / "test_list.txt").write_text("2.png\n")
    (tmp_path / "train_val_list.txt").write_text("1.png\n")
    touch(tmp_path, "images_001/1.png")
    touch(tmp_path, "images_002/2.png")
    layout = table(tables=[{"path": "Data_Entry.csv"}], images="{id}.png", id_column="Image Index",
                   label_column="Finding Labels", label_separator="|",
                   split_lists=[{"path": "train_val_list.txt", "split": "train"}, {"path": "test_list.txt", "split": "test"}],
                   split_map={"train": "train", "test": "test"})
    assert [(r.image, r.split) for r in records(layout, tmp_path)] == [("images_001/1.png", "train"), ("images_002/2.png", "test")]
    # Indiana-style: one report id, two views on disk.
    (tmp_path / "reports.csv").write_text("uid,Problems\n7,normal\n")
    touch(tmp_path, "views/7_IM-1.png")
    touch(tmp_path, "views/7_IM-2.png")
    both = table(tables=[{"path": "reports.csv"}], images="views/{id}_*.png", id_column="uid", label_column="Problems",
                 on_multiple_images="all")
    assert [r.image for r in records(both, tmp_path)] == ["views/7_IM-1.png", "views/7_IM-2.png"]
    one = both.model_copy(update={"on_multiple_images": "drop"})
    assert [r.drop_reason for r in records(one, tmp_path)] == ["ambiguous_image"]


@pytest.mark.parametrize("spec", [
    {"tables": [{"path": "{split}_labels.csv"}], "split_map": {"train": "train", "test": "test"}},
    {"tables": [{"path": "labels.txt", "sep": "whitespace", "columns": ["name", "cls"]}]},
    {"tables": [{"path": "labels.json"}]},
    {"tables": [{"path": "all.csv"}], "split_lists": [{"path": "tr.txt", "split": "train"}, {"path": "te.txt", "split": "test"}],
     "split_map": {"train": "train", "test": "test"}},
])
def test_table_inverse_round_trips_splits(tmp_path, spec):
    from medmat_builder.records import FakeSample

    layout = table(images="img/{id}.png", id_column="name", label_column="cls", **spec)
    has_split = bool(layout.split_map)
    samples = [FakeSample(i, (lab,), ("test" if i % 3 == 0 else "train") if has_split else None, b"img", ".png", 1, 1)
               for i, lab in enumerate(["a", "b", "c", "a", "b", "c"], start=1)]
    layout.write_fake(_Src(), tmp_path, samples)
    recs = records(layout, tmp_path)
    assert sorted((r.labels, r.split) for r in recs) == sorted((s.labels, s.split) for s in samples)


def test_table_label_from_several_columns_and_dotted_names(tmp_path):
    (tmp_path / "meta.csv").write_text("name,Label_1,Label_2\n1-s2.0-a.jpg,Virus,COVID-19\nb.jpeg,bacteria,\nc.png,,\n")
    for f in ("1-s2.0-a.jpg", "b.jpeg", "c.png"):
        touch(tmp_path, "train/" + f)
    layout = table(tables=[{"path": "meta.csv"}], images="train/{id}.*", id_column="name",
                   label_column=["Label_1", "Label_2"], empty_label="Normal")
    recs = records(layout, tmp_path)
    assert [(r.image, r.labels) for r in recs] == [
        ("train/1-s2.0-a.jpg", ("Virus / COVID-19",)), ("train/b.jpeg", ("bacteria",)), ("train/c.png", ("Normal",))]
