"""Images kept byte for byte as their raw file are read from that file when written, not from the spool.

They are never copied into the spool (its size is watched as each config's spool closes); images whose
metadata was stripped still are; and a raw file changed between its decoding and the parquet write
stops the build with a message naming it, never with other bytes in the export.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmat_builder.build import BuildError, BuildSettings, build, loader
from medmat_builder.build.builder import MedMatBuilder
from medmat_builder.build.rawfile import RawFile, RawFileChangedError
from medmat_builder.build.spool import Spool
from medmat_builder.images.metadata import strip_metadata


@pytest.fixture()
def spooled(monkeypatch) -> list[int]:
    """The size of each spool a build closes (one per config): every byte written to it, by any process."""
    sizes: list[int] = []
    close = Spool.close

    def watched(self: Spool) -> None:
        if self._fd is not None:
            sizes.append(os.fstat(self._fd).st_size)
        close(self)

    monkeypatch.setattr(Spool, "close", watched)
    return sizes


def digest_tree(root: Path) -> dict[str, str]:
    """The export's files (not medmat's own folder .medmat/), as in test_build."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".medmat" not in p.relative_to(root).parts}


def _image_bytes(out: Path, source: str | None = None) -> list[bytes]:
    rows = [row for f in sorted(out.glob("subset_*/*.parquet")) for row in pq.read_table(f).to_pylist()]
    return [row["image"]["bytes"] for row in rows if source is None or row["source"] == source]


def test_a_raw_file_reads_back_into_a_buffer_and_any_change_is_refused(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG-some-image-bytes")
    place = RawFile.of(str(path), path.read_bytes())
    buf = bytearray(b"..") + bytearray(place.length) + bytearray(b"..")
    view = memoryview(buf)
    place.read_into(view[2:2 + place.length])
    assert bytes(buf) == b"..\x89PNG-some-image-bytes.."

    path.write_bytes(b"\x89PNG-some-IMAGE-bytes")  # the same length: only the digest tells
    with pytest.raises(RawFileChangedError, match="its bytes are not those that were decoded") as err:
        place.read_into(memoryview(bytearray(place.length)))
    assert isinstance(err.value, BuildError) and err.value.path == str(path)
    assert str(path) in str(err.value) and "run the build again" in str(err.value)
    path.write_bytes(b"\x89PNG-some-image-bytes!")
    with pytest.raises(RawFileChangedError, match="22 bytes now, 21 when it was decoded"):
        place.read_into(memoryview(bytearray(place.length)))
    path.unlink()
    with pytest.raises(RawFileChangedError, match="cannot be opened any more"):
        place.read_into(memoryview(bytearray(place.length)))


@pytest.mark.parametrize("num_proc", [1, 2])
def test_images_kept_as_their_file_are_not_spooled_and_export_as_before(tmp_path, mini_raw, mini_registry,
                                                                       monkeypatch, spooled, num_proc):
    """Every mini image is a PNG or JPEG with nothing to strip: nothing goes to the spool, and the export is
    byte for byte the one made with every image spooled (as before raw files were read back)."""
    build(None, mini_raw, tmp_path / "out", BuildSettings(num_proc=num_proc), registry=mini_registry)
    assert len(spooled) == 2 and sum(spooled) == 0

    spooled.clear()
    with monkeypatch.context() as m:  # the former path: no result names its raw file, every image spooled
        m.setattr(loader.RawFile, "of", classmethod(lambda cls, path, data: None))
        build(None, mini_raw, tmp_path / "spooled", BuildSettings(num_proc=1), registry=mini_registry)
    assert sum(spooled) == sum(len(b) for b in _image_bytes(tmp_path / "spooled")) > 0
    assert digest_tree(tmp_path / "out") == digest_tree(tmp_path / "spooled")


def _with_exif(path: Path) -> None:
    """Give the JPEG at ``path`` an EXIF block (a camera make; no orientation): the build strips it."""
    exif = Image.Exif()
    exif[0x010F] = "ACME camera"
    with Image.open(path) as im:
        im.load()
        im.save(path, format="JPEG", exif=exif.tobytes())


@pytest.mark.parametrize("num_proc", [1, 2])
def test_stripped_jpegs_still_go_through_the_spool(tmp_path, mini_raw_copy, mini_registry, spooled, num_proc):
    exif_files = sorted((mini_raw_copy / "toy_folders").rglob("*.jpeg"))
    for path in exif_files:
        _with_exif(path)
    stripped = {strip_metadata(p.read_bytes()) for p in exif_files}
    assert all(b"ACME camera" in p.read_bytes() for p in exif_files)
    build(["subset_01"], mini_raw_copy, tmp_path / "out", BuildSettings(num_proc=num_proc), registry=mini_registry)
    from_exif, from_png = _image_bytes(tmp_path / "out", "toy_folders"), _image_bytes(tmp_path / "out", "toy_table")
    assert from_exif and from_png and set(from_exif) <= stripped
    assert not any(b"ACME camera" in b for b in from_exif)
    # the stripped JPEGs, and only they, were spooled; the PNGs were read from their files
    assert spooled == [sum(len(b) for b in from_exif)]
    assert {Image.open(io.BytesIO(b)).format for b in from_png} == {"PNG"}


@pytest.mark.parametrize(("num_proc", "change"), [(1, "same_length"), (2, "same_length"), (1, "longer")])
def test_a_raw_file_changed_after_its_decoding_stops_the_build(tmp_path, mini_raw_copy, mini_registry, monkeypatch,
                                                               num_proc, change):
    """The file changes once the images are selected (decoded) and before the parquet files are written."""
    changed: list[str] = []
    select = MedMatBuilder._split_generators

    def selected_then_changed(self, dl_manager):
        generators = select(self, dl_manager)
        items = [sel for gen in generators for sel in gen.gen_kwargs["items"] if sel.raw is not None]
        path = Path(items[0].raw.path)
        data = bytearray(path.read_bytes())
        if change == "same_length":
            data[len(data) // 2] ^= 0xFF
        else:
            data += b"\0"
        path.write_bytes(bytes(data))
        changed.append(str(path))
        return generators

    monkeypatch.setattr(MedMatBuilder, "_split_generators", selected_then_changed)
    with pytest.raises(RawFileChangedError) as err:
        build(["subset_01"], mini_raw_copy, tmp_path / "out", BuildSettings(num_proc=num_proc), registry=mini_registry)
    message = str(err.value)
    assert changed and message.startswith(f"{changed[0]} changed while the build ran (")
    assert message.endswith("run the build again once the raw folder is no longer being modified")
    assert ("its bytes are not those that were decoded" if change == "same_length" else "bytes now") in message
    assert not list((tmp_path / "out").glob("subset_*/*.parquet"))  # nothing of it was committed
