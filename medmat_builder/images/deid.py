"""What counts as identifying in a DICOM header, so tests and audits can prove none of it leaks.

medmat outputs pixels only: :func:`medmat_builder.images.decode.load_image` builds a fresh PNG from the
decoded pixel array (chunks ``IHDR``/``IDAT``/``IEND`` and nothing else), ids are hashes
(:func:`medmat_builder.images.hashes.image_id`), and error details are fixed texts. This module does not
scrub headers; it lists the attributes of the DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile that name or point at a person, place or time, and collects their values
from a dataset so a test can search output bytes, ids and messages for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: Keywords from PS3.15 Table E.1-1 (basic profile) that carry identifying text. Not exhaustive of
#: the table (UIDs and private tags are covered by :func:`identifying_values` through VRs).
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers",
    "PatientMotherBirthName", "PatientAge", "PatientSize", "PatientWeight", "MilitaryRank",
    "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments", "MedicalRecordLocator",
    "IssuerOfPatientID", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
    "RequestingPhysician", "ScheduledPerformingPhysicianName", "StationName", "DeviceSerialNumber",
    "AccessionNumber", "StudyID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "AcquisitionDateTime",
    "InstanceCreationDate", "InstanceCreationTime", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "StudyDescription", "SeriesDescription",
    "RequestAttributesSequence", "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "ProtocolName", "ImageComments", "DerivationDescription",
)

#: Value representations that hold names, dates, times or unique ids wherever they appear.
IDENTIFYING_VRS: frozenset[str] = frozenset({"PN", "DA", "DT", "TM", "UI"})

#: Values too short or too common to search for meaningfully (would match any byte stream).
_MIN_LEN = 4


def identifying_values(ds, *, min_len: int = _MIN_LEN) -> set[str]:
    """Every identifying string value in ``ds`` (a pydicom Dataset), sequences included.

    An attribute counts when its keyword is in :data:`IDENTIFYING_KEYWORDS` or its VR is in
    :data:`IDENTIFYING_VRS`. Person names also yield their components (family, given ...).
    """
    found: set[str] = set()
    for elem in _walk(ds):
        if elem.VR == "SQ":
            continue
        if elem.keyword not in IDENTIFYING_KEYWORDS and elem.VR not in IDENTIFYING_VRS:
            continue
        values = elem.value if isinstance(elem.value, (list, tuple)) or type(elem.value).__name__ == "MultiValue" else [elem.value]
        for v in values:
            if v is None:
                continue
            text = str(v).strip()
            parts = [text]
            if elem.VR == "PN":
                parts += [p.strip() for p in text.replace("=", "^").split("^")]
            for p in parts:
                if len(p) >= min_len:
                    found.add(p)
    return found


def identifying_values_of_file(path: str | Path) -> set[str]:
    """:func:`identifying_values` of a DICOM file (header only; pixel data is not read)."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about odd values, quoting them
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    return identifying_values(ds)


def leaked_values(blobs: Iterable[bytes | str], values: Iterable[str]) -> list[str]:
    """The ``values`` that occur in any of ``blobs`` (as UTF-8 or Latin-1 text); empty means no leak."""
    hay = [b if isinstance(b, bytes) else b.encode("utf-8") for b in blobs]
    hits = []
    for v in sorted(set(values)):
        needles = {v.encode("utf-8"), v.encode("latin-1", "ignore")}
        if any(n and n in h for n in needles for h in hay):
            hits.append(v)
    return hits


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                yield from _walk(item)
