"""Registry facts corrected against public evidence (sources 33-81 of the r2 pass), each checked on a small
hand-written tree in the source's real on-disk layout (file names, folders and separators as the evidence in
``sources.yaml`` shows them), scanned with the layout the registry ships.

The trees are written with plain file writes, not with the layouts' own ``write_fake``: they stand for the
real archives, so a layout that only agrees with its own inverse fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medmat_builder.layouts.patterns import PathPattern
from medmat_builder.records import RawRecord
from medmat_builder.registry import load_registry

REGISTRY = load_registry()


def write(root: Path, rel: str, data: bytes | str = b"\x89PNG fake") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def scan(key: str, root: Path) -> list[RawRecord]:
    source = REGISTRY.source(key)
    return list(source.layout.scan(source, root))


def kept(records: list[RawRecord]) -> dict[str, tuple[tuple[str, ...], str | None]]:
    return {r.image: (r.labels, r.split) for r in records if not r.drop_reason}


def group_of(key: str, relpath: str) -> str | None:
    """The group a source's declared path patterns give an image (first matching pattern wins)."""
    for pattern in REGISTRY.source(key).groups.path:
        match = PathPattern(pattern).match(relpath)
        if match is not None:
            return match["group"]
    return None


# ---------------------------------------------------------------------------------------------- icpr_hep2
def icpr_2012_tree(root: Path) -> None:
    """ICPR 2012 contest archive: ';'-separated tables with a header line inside each image folder,
    cells %03d.png with their %03d_mask.png beside them."""
    write(root, "training/gt_training.csv", "ID;Pattern\n1;homogeneous\n2;coarse_speckled\n3;cytoplasmatic\n")
    write(root, "test/gt_test.csv", "ID;Pattern\n1;centromere\n2;fine_speckled\n")
    for rel in ("training/001", "training/002", "training/003", "test/001", "test/002"):
        write(root, f"{rel}.png")
        write(root, f"{rel}_mask.png")


def test_icpr_hep2_reads_semicolon_tables_inside_the_image_folders(tmp_path):
    icpr_2012_tree(tmp_path)
    recs = scan("icpr_hep2", tmp_path)
    assert kept(recs) == {
        "training/001.png": (("homogeneous",), "train"),
        "training/002.png": (("coarse_speckled",), "train"),
        "training/003.png": (("cytoplasmatic",), "train"),
        "test/001.png": (("centromere",), "test"),
        "test/002.png": (("fine_speckled",), "test"),
    }
    # The header line (spelling unconfirmed, so the layout names the columns) is the only drop, once per table.
    drops = [(r.ref, r.drop_reason) for r in recs if r.drop_reason]
    assert drops == [("training/gt_training.csv:1", "missing_image"), ("test/gt_test.csv:1", "missing_image")]
    assert not any(r.image.endswith("_mask.png") for r in recs)


def test_icpr_hep2_maps_the_capitalised_2014_class_names():
    labels = REGISTRY.source("icpr_hep2").labels
    for raw in ("Homogeneous", "Speckled", "Nucleolar", "Centromere", "NuMem", "Golgi"):
        assert labels[raw] is not None, raw
    assert labels["Homogeneous"] == labels["homogeneous"]
    assert labels["Centromere"] == labels["centromere"]
    assert labels["Nucleolar"] == labels["nucleolar"]


# -------------------------------------------------------------------------------------------- biomeditech
def test_biomeditech_reads_the_class_digit_of_the_subwindow_names(tmp_path):
    """RPE_dataset/Subwindows/<class>_<image>_<window>_<r>_<c>.tif beside the originals in Images/."""
    write(tmp_path, "RPE_dataset/Images/1_00001.tif")
    write(tmp_path, "RPE_dataset/Subwindows/1_00001_001_1_1.tif")
    write(tmp_path, "RPE_dataset/Subwindows/1_00001_002_1_2.tif")
    write(tmp_path, "RPE_dataset/Subwindows/4_00187_016_4_4.tif")
    write(tmp_path, "RPE_dataset/Description.pdf", b"%PDF")
    write(tmp_path, "RPE_dataset/license.txt", "terms")
    assert kept(scan("biomeditech", tmp_path)) == {
        "RPE_dataset/Subwindows/1_00001_001_1_1.tif": (("1",), None),
        "RPE_dataset/Subwindows/1_00001_002_1_2.tif": (("1",), None),
        "RPE_dataset/Subwindows/4_00187_016_4_4.tif": (("4",), None),
    }


def test_biomeditech_license_is_unknown_and_not_redistributed():
    source = REGISTRY.source("biomeditech")
    assert source.license_is_unknown and not source.redistributable


# ---------------------------------------------------------------------------------------------- leukemia
def test_leukemia_reads_the_folds_under_either_top_folder(tmp_path):
    write(tmp_path, "C-NMC_Leukemia/training_data/fold_0/all/UID_11_10_1_all.bmp")
    write(tmp_path, "C-NMC_Leukemia/training_data/fold_2/hem/UID_H11_10_1_hem.bmp")
    write(tmp_path, "C-NMC_training_data/fold_1/hem/UID_H6_14_1_hem.bmp")
    write(tmp_path, "C-NMC_test_prelim_phase_data/1.bmp")
    assert kept(scan("leukemia", tmp_path)) == {
        "C-NMC_Leukemia/training_data/fold_0/all/UID_11_10_1_all.bmp": (("all",), None),
        "C-NMC_Leukemia/training_data/fold_2/hem/UID_H11_10_1_hem.bmp": (("hem",), None),
        "C-NMC_training_data/fold_1/hem/UID_H6_14_1_hem.bmp": (("hem",), None),
    }


# ------------------------------------------------------------------------------------ covid19_radiography
def test_covid19_radiography_both_releases_map_every_raw_label(tmp_path):
    # HeyWhale / early release (openmedlab tree) and the later Kaggle release with images/ and masks/.
    write(tmp_path, "COVID-19 Radiography Database/COVID/COVID (1).png")
    write(tmp_path, "COVID-19 Radiography Database/NORMAL/NORMAL (1).png")
    write(tmp_path, "COVID-19 Radiography Database/Viral Pneumonia/Viral Pneumonia (1).png")
    write(tmp_path, "COVID-19 Radiography Database/COVID.metadata.xlsx", b"PK")
    write(tmp_path, "COVID-19_Radiography_Dataset/Normal/images/Normal-1.png")
    write(tmp_path, "COVID-19_Radiography_Dataset/Normal/masks/Normal-1.png")
    write(tmp_path, "COVID-19_Radiography_Dataset/Lung_Opacity/images/Lung_Opacity-1.png")
    source = REGISTRY.source("covid19_radiography")
    recs = kept(scan("covid19_radiography", tmp_path))
    assert len(recs) == 5 and not any("/masks/" in image for image in recs)
    raw = {labels[0] for labels, _ in recs.values()}
    assert raw == {"COVID", "NORMAL", "Viral Pneumonia", "Normal", "Lung_Opacity"}
    assert all(lab in source.labels for lab in raw)
    assert source.labels["NORMAL"] == source.labels["Normal"] == "Normal"


# ----------------------------------------------------------------------------------------- retinal_oct_c8
def test_retinal_oct_c8_needs_no_fixed_top_folder(tmp_path):
    write(tmp_path, "Retinal OCT-C8/train/AMD/amd_train_1001.jpg")
    write(tmp_path, "Retinal OCT-C8/val/CNV/cnv_val_1001.jpg")
    write(tmp_path, "RetinalOCT_Dataset/RetinalOCT_Dataset/test/NORMAL/normal_test_1001.jpg")
    assert kept(scan("retinal_oct_c8", tmp_path)) == {
        "Retinal OCT-C8/train/AMD/amd_train_1001.jpg": (("AMD",), "train"),
        "Retinal OCT-C8/val/CNV/cnv_val_1001.jpg": (("CNV",), "train"),
        "RetinalOCT_Dataset/RetinalOCT_Dataset/test/NORMAL/normal_test_1001.jpg": (("NORMAL",), "test"),
    }


# ------------------------------------------------------------------------------------ pediatric_pneumonia
def test_pediatric_pneumonia_reads_a_val_folder_into_train(tmp_path):
    base = "Pediatric Chest X-ray Pneumonia"
    write(tmp_path, f"{base}/train/PNEUMONIA/person1000_bacteria_2931.jpeg")
    write(tmp_path, f"{base}/val/NORMAL/NORMAL2-IM-1427-0001.jpeg")
    write(tmp_path, f"{base}/test/NORMAL/IM-0001-0001.jpeg")
    assert kept(scan("pediatric_pneumonia", tmp_path)) == {
        f"{base}/train/PNEUMONIA/person1000_bacteria_2931.jpeg": (("PNEUMONIA",), "train"),
        f"{base}/val/NORMAL/NORMAL2-IM-1427-0001.jpeg": (("NORMAL",), "train"),
        f"{base}/test/NORMAL/IM-0001-0001.jpeg": (("NORMAL",), "test"),
    }


# ------------------------------------------------------------------------------- downloads, access, terms
def test_nct_crc_downloads_carry_the_zenodo_md5():
    md5 = {d.filename: d.md5 for d in REGISTRY.source("nct_crc_he_100k").downloads}
    # 035777cf... is the md5 of NCT-CRC-HE-100K-NONORM.zip, which is not downloaded.
    assert md5 == {
        "NCT-CRC-HE-100K.zip": "6fd702d11df6292bc054397ae038a464",
        "CRC-VAL-HE-7K.zip": "2fd1651b4f94ebd818ebf90ad2b6ce06",
    }


def test_covidgr_is_an_open_github_release():
    source = REGISTRY.source("covidgr")
    assert source.access == "open"
    assert "OD-covidgr" in source.obtain


# --------------------------------------------------------------------------------------------- group keys
@pytest.mark.parametrize(
    ("key", "path", "group"),
    [
        ("kermany_oct", "OCT2017/train/CNV/CNV-1016042-1.jpeg", "1016042"),
        ("kermany_oct", "OCT2017/test/DRUSEN/DRUSEN-1016042-3.jpeg", "1016042"),
        ("pediatric_pneumonia", "x/train/PNEUMONIA/person1_bacteria_1.jpeg", "person1"),
        ("pediatric_pneumonia", "x/test/PNEUMONIA/person1_virus_6.jpeg", "person1"),
        ("pediatric_pneumonia", "x/train/NORMAL/IM-0115-0001.jpeg", "IM-0115"),
        ("pediatric_pneumonia", "x/train/NORMAL/NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("coronahack", "Coronahack-Chest-XRay-Dataset/train/person1_virus_6.jpeg", "person1"),
        ("coronahack", "Coronahack-Chest-XRay-Dataset/train/1-s2.0-S0140673620303706-fx1_lrg.jpg", None),
        ("knee_oa", "train/0/9001695L.png", "9001695"),
        ("knee_oa", "test/2/9001695R.png", "9001695"),
        ("breakhis", "BreaKHis_v1/histology_slides/breast/benign/SOB/adenosis/SOB_B_A_14-22549AB/40X/"
                     "SOB_B_A-14-22549AB-40-001.png", "14-22549AB"),
        ("breakhis", "breast/malignant/SOB/ductal_carcinoma/SOB_M_DC_14-10926/400X/SOB_M_DC-14-10926-400-001.png",
         "14-10926"),
        ("lymphoma", "CLL/sj-03-476_001.tif", "sj-03-476"),
        ("lymphoma", "FL/sj-05-588-R1_001.tif", "sj-05-588"),
        ("lymphoma", "MCL/sj-05-588-R2_002.tif", "sj-05-588"),
        ("sicapv2", "SICAPv2/images/16B0001851_Block_Region_1_0_0_xini_6803_yini_59786.jpg", "16B0001851"),
        ("sicapv2", "images/18B0001159D_Block_Region_3_5_26_xini_35472_yini_8051.jpg", "18B0001159D"),
        ("leukemia", "training_data/fold_0/hem/UID_H11_10_1_hem.bmp", "H11"),
        ("leukemia", "training_data/fold_0/all/UID_11_10_1_all.bmp", "11"),
        ("biomeditech", "RPE_dataset/Subwindows/1_00001_001_1_1.tif", "00001"),
        ("biomeditech", "RPE_dataset/Subwindows/3_00001_016_4_4.tif", "00001"),
        ("chest_xray_pd", "COVID19_Pneumonia_Normal_Chest_Xray_PA_Dataset/normal/00000002_000.png", "00000002"),
        ("chest_xray_pd", "COVID19_Pneumonia_Normal_Chest_Xray_PA_Dataset/pneumonia/00000002_001.png", "00000002"),
        ("chest_xray_pd", "COVID19_Pneumonia_Normal_Chest_Xray_PA_Dataset/covid/0C7E78DA-FAFC-480D-1068x817.jpeg",
         None),
    ],
)
def test_group_patterns_key_real_file_names(key, path, group):
    assert group_of(key, path) == group


@pytest.mark.parametrize("key", ["cbis_ddsm", "covidx_cxr4"])
def test_patient_id_group_columns(key):
    assert REGISTRY.source(key).groups.column == "patient_id"


def test_covidx_names_its_patient_column():
    """The COVIDx lists have no header; the layout names the first field patient_id (COVIDx.md: patientId)."""
    tables = REGISTRY.source("covidx_cxr4").layout.tables
    assert all(t.columns and t.columns[0] == "patient_id" for t in tables)
