"""Facts of registry range r3 corrected against public evidence, each checked on a hand-made tree in the
real on-disk layout (names as the evidence in ``sources.yaml`` shows them), read with the shipped registry.

- m2caiSeg masks are ``groundtruth/<image stem>_gt.png`` (``0.jpg`` with ``0_gt.png``).
- FIVES' mask folder is spelled ``Ground truth`` by one loader and ``Groud truth`` by another description.
- Group path patterns capture the subject from real file names (CheXpert patient, IU X-ray report uid,
  UW-Madison case, Duke Liver patient folder, SICAPv2 slide id).
- VinDr-Mammo and VinDr-SpineXR are PhysioNet restricted-access projects (DUA, no credentialing).
- ISIC 2016 / 2017 downloads carry the md5 that downloaders in the code index verify.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat_builder.build import resolve_boxes
from medmat_builder.layouts.patterns import PathPattern
from medmat_builder.registry import load_registry

REGISTRY = load_registry()


def _jpeg(size=(64, 48), colour=(120, 60, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _png_rgb(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _m2cai_mask(w=64, h=48) -> np.ndarray:
    """Black frame with a grasper (0,85,170) block and a liver (85,170,0) block, as in the archive's colour code."""
    m = np.zeros((h, w, 3), dtype=np.uint8)
    m[5:15, 5:25] = (0, 85, 170)
    m[25:40, 30:60] = (85, 170, 0)
    return m


def test_m2caiseg_masks_are_stem_gt_png(tmp_path):
    source = REGISTRY.source("m2caiseg")
    root = tmp_path / source.folder / "m2caiSeg dataset"
    mask = _png_rgb(_m2cai_mask())
    # train/ (dropped: its images are repeated in trainval/), trainval/ (train + validation), test/
    for split, stems in {"train": ["00"], "trainval": ["00", "225"], "test": ["0", "475"]}.items():
        for stem in stems:
            _write(root / split / "images" / f"{stem}.jpg", _jpeg())
            _write(root / split / "groundtruth" / f"{stem}_gt.png", mask)
    recs = {r.image: r for r in source.layout.scan(source, tmp_path / source.folder)}
    assert set(recs) == {
        f"m2caiSeg dataset/{s}/images/{n}.jpg"
        for s, ns in {"train": ["00"], "trainval": ["00", "225"], "test": ["0", "475"]}.items() for n in ns
    }
    kept = {k: r for k, r in recs.items() if r.drop_reason is None}
    assert {k: r.split for k, r in kept.items()} == {
        "m2caiSeg dataset/trainval/images/00.jpg": "train",
        "m2caiSeg dataset/trainval/images/225.jpg": "train",
        "m2caiSeg dataset/test/images/0.jpg": "test",
        "m2caiSeg dataset/test/images/475.jpg": "test",
    }
    assert recs["m2caiSeg dataset/train/images/00.jpg"].drop_reason == "unused_split"
    assert kept["m2caiSeg dataset/test/images/0.jpg"].mask == "m2caiSeg dataset/test/groundtruth/0_gt.png"
    # the colour-coded mask yields the classes it paints, mapped through the registry
    rec = kept["m2caiSeg dataset/test/images/0.jpg"]
    found = sorted({b.label for b in resolve_boxes(rec, tmp_path / source.folder, (64, 48))})
    assert found == ["grasper", "liver"]
    assert source.labels["grasper"] == "Grasper" and source.labels["liver"] == "Liver"


def test_m2caiseg_mask_with_the_image_stem_only_is_not_taken(tmp_path):
    """A mask named like the image (0.png) is not the archive's naming and must not pair."""
    source = REGISTRY.source("m2caiseg")
    root = tmp_path / source.folder / "m2caiSeg dataset" / "test"
    _write(root / "images" / "0.jpg", _jpeg())
    _write(root / "groundtruth" / "0.png", _png_rgb(_m2cai_mask()))
    (rec,) = source.layout.scan(source, tmp_path / source.folder)
    assert rec.drop_reason == "missing_mask"


@pytest.mark.parametrize("gt_folder", ["Ground truth", "Groud truth"])
def test_fives_mask_folder_either_spelling(tmp_path, gt_folder):
    source = REGISTRY.source("fives")
    root = tmp_path / source.folder / "FIVES A Fundus Image Dataset for AI-based Vessel Segmentation"
    vessel = np.zeros((48, 64), dtype=np.uint8)
    vessel[10:30, 20:24] = 255
    buf = io.BytesIO()
    Image.fromarray(vessel).save(buf, format="PNG")
    for split in ("train", "test"):
        for name in ("1_A.png", "2_D.png"):
            _write(root / split / "Original" / name, _jpeg())  # content irrelevant to the scan
            _write(root / split / gt_folder / name, buf.getvalue())
    recs = list(source.layout.scan(source, tmp_path / source.folder))
    assert len(recs) == 4 and all(r.drop_reason is None for r in recs)
    assert sorted(r.split for r in recs) == ["test", "test", "train", "train"]
    assert all(f"/{gt_folder}/" in r.mask for r in recs)
    assert all(r.labels == ("vessel",) for r in recs)


@pytest.mark.parametrize(
    ("key", "image", "group"),
    [
        ("chexpert_small", "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "patient00001"),
        ("chexpert_small", "CheXpert-v1.0-small/valid/patient64541/study1/view2_lateral.jpg", "patient64541"),
        ("iu_xray", "images/images_normalized/1000_IM-0003-1001.dcm.png", "1000"),
        ("iu_xray", "images/images_normalized/1000_IM-0003-3001.dcm.png", "1000"),
        ("uw_madison_gi", "train/case101/case101_day20/scans/slice_0001_266_266_1.50_1.50.png", "case101"),
        ("duke_liver_v2", "Segmentation/0004/7/images/00012.dicom", "0004"),
        ("sicapv2_seg", "SICAPv2/images/16B0001851_Block_Region_1_0_1_xini_7827_yini_59786.jpg", "16B0001851"),
    ],
)
def test_group_path_patterns_capture_the_subject(key, image, group):
    source = REGISTRY.source(key)
    assert source.groups is not None and source.groups.path, f"{key} declares no group path pattern"
    captured = next((m["group"] for p in source.groups.path if (m := PathPattern(p).match(image))), None)
    assert captured == group
    # the pattern describes images the layout itself reads
    assert PathPattern(source.layout.images).match(image) is not None


NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
SPINE_HEADER = "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax"


def test_nih_group_column_is_read_from_the_real_data_entry_table(tmp_path):
    """Data_Entry_2017_v2020.csv as the NIH ships it: one patient with two follow-ups, one with one image."""
    source = REGISTRY.source("nih_chestxray14")
    root = tmp_path / source.folder
    rows = ["00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143,",
            "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143,",
            "00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171,"]
    _write(root / "Data_Entry_2017_v2020.csv", "\n".join([NIH_HEADER, *rows]).encode())
    _write(root / "train_val_list.txt", b"00000001_000.png\n00000001_001.png\n")
    _write(root / "test_list.txt", b"00000002_000.png\n")
    for row in rows:
        _write(root / "images" / row.split(",")[0], b"png")
    recs = sorted(source.layout.scan(source, root), key=lambda r: r.image)
    assert [(r.image, r.split, r.drop_reason) for r in recs] == [
        ("images/00000001_000.png", "train", None), ("images/00000001_001.png", "train", None),
        ("images/00000002_000.png", "test", None)]
    assert source.groups.column == "Patient ID" and "Patient ID" in NIH_HEADER.split(",")
    assert REGISTRY.source("nih_cxr_sample").groups.column == "Patient ID"


def test_vindr_spinexr_group_column_is_a_column_of_the_annotation_csv(tmp_path):
    for key in ("vindr_spinexr", "vindr_spinexr_det"):
        source = REGISTRY.source(key)
        root = tmp_path / key
        _write(root / "annotations" / "train.csv",
               f"{SPINE_HEADER}\ns1,se1,img1,rad1,Osteophytes,10,10,40,40\ns1,se2,img2,rad1,No finding,,,,\n".encode())
        _write(root / "annotations" / "test.csv", f"{SPINE_HEADER}\ns2,se3,img3,rad2,No finding,,,,\n".encode())
        for split, img in (("train", "img1"), ("train", "img2"), ("test", "img3")):
            _write(root / f"{split}_images" / f"{img}.dicom", b"dicom")
        recs = list(source.layout.scan(source, root))
        assert {r.image for r in recs} == {"train_images/img1.dicom", "train_images/img2.dicom", "test_images/img3.dicom"}
        assert source.groups.column == "study_id" and "study_id" in SPINE_HEADER.split(",")
    assert REGISTRY.source("vindr_mammo").groups.column == "study_id"


def test_every_r3_source_states_its_group_key_and_each_fact_once():
    keys = ("pbc nih_cxr_sample brain_tumor_xray diabetic_retinopathy arthrosis chestx_det iu_xray chexpert_small "
            "nih_chestxray14 vindr_mammo hpa_single_cell rsna_pneumonia vindr_spinexr vindr_pcxr ph2 isbi_2016_seg "
            "isic_2016_seg isic_2017_seg cvc_clinicdb kvasir_seg m2caiseg edd2020 sicapv2_seg busi_seg tn3k "
            "nlm_montgomery_seg vindr_spinexr_det vindr_pcxr_det chestx_det_seg uw_madison_gi duke_liver_v1 "
            "duke_liver_v2 siim_acr_pneumothorax fives rim_one_dl palm19").split()
    for key in keys:
        src = REGISTRY.source(key)
        assert src.groups is not None, key
        assert not (src.groups.none or "").startswith("not yet"), key
        facts = {**src.evidence, **src.unverified}
        assert set(facts) == {"homepage", "license", "access", "layout", "labels", "split", "groups", "checksums"}, key
        assert not any("not yet re-verified" in v for v in facts.values()), key


@pytest.mark.parametrize("key", ["vindr_mammo", "vindr_spinexr", "vindr_spinexr_det"])
def test_vindr_restricted_access_projects(key):
    src = REGISTRY.source(key)
    assert src.license == "PhysioNet Restricted Health Data License 1.5.0"
    assert src.access == "restricted" and not src.redistributable
    assert "credential" not in src.obtain.lower()


def test_isic_2016_2017_downloads_carry_published_md5():
    md5 = {d.filename: d.md5 for k in ("isic_2016_seg", "isic_2017_seg") for d in REGISTRY.source(k).downloads}
    assert md5["ISBI2016_ISIC_Part1_Training_Data.zip"] == "2029f387e62dcc062b1370b1efc1f7fb"
    assert md5["ISBI2016_ISIC_Part1_Test_GroundTruth.zip"] == "492a7711a2e19b96114cab6c96bd1ad5"
    assert md5["ISIC-2017_Training_Data.zip"] == "a14a7e622c67a358797ae59abb8a0b0c"
    assert md5["ISIC-2017_Test_v2_Part1_GroundTruth.zip"] == "b1742de6bd257faca3b2b21a4aa3b781"
    assert all(md5.values()), [k for k, v in md5.items() if not v]
