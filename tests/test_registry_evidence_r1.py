"""Registry facts of sources 1-32, 64, 68, 71, 72, 74 checked on hand-made trees in their real layouts.

Each fixture is written with plain file writes, using the file names, folder nesting and table headers
that public evidence shows (the entry's ``evidence`` says where), then scanned with the layout of the
shipped registry. The group keys are checked on real file names the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medmat_builder.layouts import PathPattern
from medmat_builder.registry import load_registry

REGISTRY = load_registry()


def write(root: Path, rel: str, data: bytes = b"\xff\xd8\xff\xe0 not decoded by scan") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def scan(key: str, root: Path) -> list:
    source = REGISTRY.source(key)
    return list(source.layout.scan(source, root / source.folder))


def by_image(records) -> dict[str, tuple[tuple[str, ...], str | None, str | None]]:
    return {r.image: (r.labels, r.split, r.drop_reason) for r in records}


# ----------------------------------------------------------------------------- corrected layouts
def test_chest_ctscan_reads_jpg_and_png_in_all_three_split_folders(tmp_path):
    """The Tianchi / Kaggle archive holds .jpg and .png (openmedlab: File Format 'JPG, PNG')."""
    root = tmp_path / "chest_ctscan" / "Data"
    files = {
        "train/adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib/000000 (6).png": ("adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib", "train"),
        "train/normal/2 - Copy - Copy.png": ("normal", "train"),
        "train/squamous.cell.carcinoma_left.hilum_T1_N2_M0_IIIa/000002 (4).jpg": (
            "squamous.cell.carcinoma_left.hilum_T1_N2_M0_IIIa", "train"),
        "valid/large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa/000108 (2).png": (
            "large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa", "train"),
        "test/adenocarcinoma/000108 (3).jpg": ("adenocarcinoma", "test"),
        "test/normal/6 - Copy (2) - Copy.png": ("normal", "test"),
    }
    for rel in files:
        write(root, rel)
    records = by_image(scan("chest_ctscan", tmp_path))
    assert records == {f"Data/{rel}": ((label,), split, None) for rel, (label, split) in files.items()}
    source = REGISTRY.source("chest_ctscan")
    assert {source.labels[lab] for (lab,), _, _ in records.values()} == {
        "Adenocarcinoma", "Normal", "Squamous cell carcinoma", "Large cell carcinoma"}


def test_monkeypox_msld_reads_only_the_original_images(tmp_path):
    """README: Augmented Images and the Fold1 cross-validation copies hold augmented variants."""
    root = tmp_path / "monkeypox_msld"
    originals = ["Original Images/Original Images/Monkey Pox/M01_01.jpg",
                 "Original Images/Original Images/Monkey Pox/M31_02.jpg",
                 "Original Images/Original Images/Others/NM01_01.jpg"]
    for rel in originals + [
        "Augmented Images/Augmented Images/Monkeypox_augmented/M01_01_00.jpg",
        "Fold1/Fold1/Fold1/Train/Monkeypox/M01_01_00.jpg",
        "Fold1/Fold1/Fold1/Val/Others/NM01_01_03.jpg",
        "Fold1/Fold1/Fold1/Test/Monkeypox/M31_02.jpg",
    ]:
        write(root, rel)
    write(root, "Monkeypox_Dataset_metadata.csv", b"ImageID,Label\nM01_01,Monkeypox\n")
    records = by_image(scan("monkeypox_msld", tmp_path))
    assert sorted(records) == sorted(originals)
    assert [records[o][0] for o in originals] == [("Monkey Pox",), ("Monkey Pox",), ("Others",)]
    source = REGISTRY.source("monkeypox_msld")
    assert source.labels["Monkey Pox"] == "Monkeypox" and source.labels["Others"] is None


def test_dental_condition_skips_the_augmented_preview_copies(tmp_path):
    """Loaders show '<class>/<class>/<...original...>/' beside '<class>/<class>/<...augmented...>/preview/'."""
    root = tmp_path / "dental_condition" / "archive"
    kept = {
        "Calculus/Calculus/calculus (1).jpg": "Calculus",
        "Gingivitis/Gingivitis/gingivitis (7).jpg": "Gingivitis",
        "hypodontia/hypodontia/hypo (2).jpeg": "hypodontia",
        "Data caries/Data caries/caries orignal data set/done/wc1.jpg": "Data caries",
        "Mouth Ulcer/Mouth Ulcer/ulcer original dataset/ulcer original dataset/ulcer (3).png": "Mouth Ulcer",
        "Tooth Discoloration/Tooth Discoloration/tooth discoloration original dataset/"
        "tooth discoloration original dataset/td (1).jpg": "Tooth Discoloration",
    }
    for rel in kept:
        write(root, rel)
    for rel in [
        "Data caries/Data caries/caries augmented data set/preview/_0_1234.jpeg",
        "Mouth Ulcer/Mouth Ulcer/Mouth_Ulcer_augmented_DataSet/preview/_0_99.jpeg",
        "Tooth Discoloration/Tooth Discoloration/Tooth_discoloration_augmented_dataser/preview/_1_5.jpeg",
        "Caries_Gingivitus_ToothDiscoloration_Ulcer-yolo_annotated-Dataset/Data/images/train/a.jpg",
    ]:
        write(root, rel)
    records = by_image(scan("dental_condition", tmp_path))
    assert {img: labels for img, (labels, _, _) in records.items()} == {
        f"archive/{rel}": (label,) for rel, label in kept.items()}


def test_fitzpatrick17k_finds_images_saved_with_any_extension(tmp_path):
    """The repository has no download script; images are saved from the url column as <md5hash>.<ext>."""
    root = tmp_path / "fitzpatrick17k"
    header = "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,url_alphanum\n"
    rows = (
        "5e82a45bc5d78bd24ae9202d194423f8,3,3,drug induced pigmentary changes,inflammatory,non-neoplastic,,"
        "https://www.dermaamin.com/site/images/clinical-pic/m/minocycline-pigmentation/minocycline-pigmentation1.jpg,x.jpg\n"
        "fa2911a9b13b6f8af79cb700937cc14f,1,1,photodermatoses,inflammatory,non-neoplastic,,"
        "https://www.dermaamin.com/site/images/clinical-pic/p/photosensitivity/photosensitivity18.jpg,y.jpg\n"
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9,2,2,melanoma,malignant melanoma,malignant,,https://example.org/m.png,z.png\n"
    )
    (root).mkdir(parents=True)
    (root / "fitzpatrick17k.csv").write_text(header + rows)
    write(root, "images/5e82a45bc5d78bd24ae9202d194423f8.jpg")
    write(root, "images/fa2911a9b13b6f8af79cb700937cc14f.jpeg")
    write(root, "images/0a1b2c3d4e5f60718293a4b5c6d7e8f9.png")
    records = scan("fitzpatrick17k", tmp_path)
    assert sorted((r.image, r.labels, r.drop_reason) for r in records) == [
        ("images/0a1b2c3d4e5f60718293a4b5c6d7e8f9.png", ("malignant melanoma",), None),
        ("images/5e82a45bc5d78bd24ae9202d194423f8.jpg", ("inflammatory",), None),
        ("images/fa2911a9b13b6f8af79cb700937cc14f.jpeg", ("inflammatory",), None),
    ]


# ----------------------------------------------------------------------------- group keys
GROUP_CASES = [
    ("nerthus", "nerthus-dataset-frames/0/bowel_1_score_0-0_00000001.jpg", "bowel_1"),
    ("nerthus", "nerthus-dataset-frames/2/bowel_13_score_0-0_00000002.jpg", "bowel_13"),
    ("bladder_tissue", "HGC/case_002_pt_003_frame_0009.png", "case_002"),
    ("bladder_tissue", "NST/case_6_cys_pt1_0039.png", "case_6"),
    ("aod", "AMD/43_left.jpg", "43"),
    ("aod", "cataract/43_right.jpg", "43"),
    ("monkeypox_msld", "Original Images/Original Images/Monkey Pox/M31_02.jpg", "M31"),
    ("monkeypox_msld", "Original Images/Original Images/Others/NM01_01.jpg", "NM01"),
    ("covid19_ct_images", "COVID-19-CT SCAN IMAGES_Neg_Samples_datasets/IM-0115-0001.jpeg", "IM-0115"),
    ("covid19_ct_images", "COVID-19-CT SCAN IMAGES_Neg_Samples_datasets/F051E018-DAD1-4506-AD43-BE4CA29E960B.jpeg", None),
]


def group_of(key: str, image: str) -> str | None:
    groups = REGISTRY.source(key).groups
    assert groups is not None and groups.path, f"{key} declares no path groups"
    for pattern in groups.path:
        found = PathPattern(pattern).match(image)
        if found is not None:
            return found["group"]
    return None


@pytest.mark.parametrize(("key", "image", "group"), GROUP_CASES, ids=[f"{k}:{g}" for k, _, g in GROUP_CASES])
def test_path_group_keys_on_real_file_names(key, image, group):
    assert group_of(key, image) == group


def test_nerthus_frames_of_one_video_share_a_group_and_videos_differ(tmp_path):
    names = ["nerthus-dataset-frames/1/bowel_3_score_1-0_00000001.jpg",
             "nerthus-dataset-frames/1/bowel_3_score_1-0_00000417.jpg",
             "nerthus-dataset-frames/1/bowel_30_score_1-1_00000001.jpg"]
    for rel in names:
        write(tmp_path / "nerthus", rel)
    records = scan("nerthus", tmp_path)
    assert sorted(group_of("nerthus", r.image) for r in records) == ["bowel_3", "bowel_3", "bowel_30"]


def test_pad_ufes_20_patient_column_is_in_the_real_metadata_header(tmp_path):
    """metadata.csv header as a public script prints it; images sit in images/imgs_part_<n>/."""
    root = tmp_path / "pad_ufes_20"
    header = ("patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,"
              "skin_cancer_history,cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,"
              "diameter_2,diagnostic,itch,grew,hurt,changed,bleed,elevation,img_id,biopsed")
    rows = ["PAT_46,881,False,False,POMERANIA,POMERANIA,55,False,FEMALE,True,True,True,True,3.0,NECK,6.0,5.0,BCC,"
            "True,True,False,True,True,True,PAT_46_881_14.png,True",
            "PAT_46,882,False,False,POMERANIA,POMERANIA,55,False,FEMALE,True,True,True,True,3.0,FACE,4.0,3.0,ACK,"
            "True,False,False,False,False,True,PAT_46_882_16.png,True"]
    root.mkdir(parents=True)
    (root / "metadata.csv").write_text("\n".join([header, *rows]) + "\n")
    write(root, "images/imgs_part_1/PAT_46_881_14.png")
    write(root, "images/imgs_part_2/PAT_46_882_16.png")
    records = scan("pad_ufes_20", tmp_path)
    assert sorted((r.image, r.labels) for r in records) == [
        ("images/imgs_part_1/PAT_46_881_14.png", ("BCC",)),
        ("images/imgs_part_2/PAT_46_882_16.png", ("ACK",)),
    ]
    column = REGISTRY.source("pad_ufes_20").groups.column
    with open(root / "metadata.csv", newline="") as fh:
        assert {row[column] for row in csv.DictReader(fh)} == {"PAT_46"}


@pytest.mark.parametrize(("key", "column", "header"), [
    ("isic_2020", "patient_id", "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
                                "benign_malignant,target"),
    ("odir_5k", "ID", "ID,Patient Age,Patient Sex,Left-Fundus,Right-Fundus,Left-Diagnostic Keywords,"
                      "Right-Diagnostic Keywords,N,D,G,C,A,H,M,O,filepath,labels,target,filename"),
])
def test_group_columns_are_columns_of_the_layout_table(key, column, header):
    source = REGISTRY.source(key)
    assert source.groups is not None and source.groups.column == column
    assert column in header.split(",")
    assert source.layout.id_column in header.split(",")


@pytest.mark.parametrize(("key", "table", "header"), [
    ("isic_2018", "ISIC2018_Task3_Training_LesionGroupings.csv", "image,lesion_id"),
    ("isic_2019", "ISIC_2019_Training_Metadata.csv", "image,age_approx,anatom_site_general,lesion_id,sex"),
])
def test_lesion_tables_map_images_to_lesions(tmp_path, key, table, header):
    source = REGISTRY.source(key)
    groups = source.groups
    assert groups is not None and groups.table is not None and groups.table.path == table
    path = tmp_path / table
    body = {"isic_2018": ["ISIC_0024306,HAM_0000550", "ISIC_0024307,HAM_0003577", "ISIC_0024308,HAM_0000550"],
            "isic_2019": ["ISIC_0024306,45.0,lower extremity,HAM_0000550,male",
                          "ISIC_0024307,50.0,anterior torso,HAM_0003577,female",
                          "ISIC_0024308,45.0,lower extremity,HAM_0000550,male"]}[key]
    path.write_text("\n".join([header, *body]) + "\n")
    with open(path, newline="") as fh:
        mapping = {row[groups.table.id_column]: row[groups.table.group_column] for row in csv.DictReader(fh)}
    assert mapping["ISIC_0024306"] == mapping["ISIC_0024308"] != mapping["ISIC_0024307"]


def test_isic_2018_fetches_its_lesion_groupings():
    files = {d.filename: d for d in REGISTRY.source("isic_2018").downloads}
    groupings = files["ISIC2018_Task3_Training_LesionGroupings.csv"]
    assert groupings.url == "https://isic-challenge-data.s3.amazonaws.com/2018/ISIC2018_Task3_Training_LesionGroupings.csv"
    assert groupings.extract is False


def test_airogs_pins_the_published_md5_of_its_first_archive():
    files = {d.filename: d for d in REGISTRY.source("airogs").downloads}
    assert files["0.zip"].md5 == "9af51fcaa069c9f0d61dd2cd4e1c05b4"


# ----------------------------------------------------------------------------- facts stay accounted for
R1_KEYS = ("intel_mobileodt ct_kidney sarscov2_ctscan covid_ct chest_ctscan covid19_ct_images head_ct ct_brain "
           "med_node isic_2020 pad_ufes_20 web_skin isbi_2016 isic_2019 skin_cancer_isic dental_condition oral_cancer "
           "nerthus bladder_tissue kvasir_v2 acrima aod jsiec mured rfmid2 toxofundus_processed toxofundus_raw adam "
           "aptos_2019 drimdb glaucoma_detection airogs fitzpatrick17k odir_5k isic_2018 isic_2017 monkeypox_msld").split()


@pytest.mark.parametrize("key", R1_KEYS)
def test_every_fact_was_researched(key):
    source = REGISTRY.source(key)
    statements = {**source.evidence, **source.unverified}
    assert not [f for f, text in statements.items() if "not yet re-verified" in text]
    assert source.groups is not None
    assert source.groups.none != "not yet researched"
