"""The visual build report (``OUT/report/``): written by every build, self-contained, counts equal to the
parquet files', boxes drawn where they are, the same bytes for the same build.

The headless-browser check (:func:`test_pages_render_in_chromium`) runs where ``chromium`` is installed
(``bash scripts/setup_chromium.sh``) and is skipped elsewhere; run it alone with
``python -m pytest tests/test_visual_report.py -k chromium``.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageStat

from medmat_builder.build import build
from medmat_builder.cli.main import main
from medmat_builder.publish.visual import INDEX, RAW_PATHS, REPORT_DIR, render_visual_report
from medmat_builder.publish.visual.rawpaths import RawPaths
from medmat_builder.publish.visual.thumbs import make_thumbnail
from medmat_builder.registry import load_registry
from medmat_builder.report import BuildReport
from medmat_builder.safe_paths import UnsafePathError


class Page(HTMLParser):
    """The parts of a page the tests look at: links, sources, rows with data attributes, thumbnails by id."""

    def __init__(self, text: str):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.counts: dict[tuple[str, ...], str] = {}
        self.thumbs: dict[str, str] = {}
        self.captions: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._cells: list[str] = []
        self._figure: str | None = None
        self._in_caption = False
        self._text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])
        if tag == "link" and "href" in a:
            self.srcs.append(a["href"])
        if tag == "tr":
            self._row, self._cells = {k: v for k, v in a.items() if k.startswith("data-")}, []
        if tag == "td" and self._row is not None:
            self._text = []
        if tag == "figure":
            self._figure = a.get("data-id")
        if tag == "img" and a.get("data-id"):
            self.thumbs[a["data-id"]] = a["src"]
        if tag == "figcaption":
            self._in_caption, self._text = True, []

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None:
            self._cells.append("".join(self._text).strip())
        if tag == "tr" and self._row:
            r = self._row
            if "data-label" in r:
                self.counts[(r["data-split"], r["data-label"])] = self._cells[-1]
            elif "data-config" in r:
                self.counts[(r["data-config"], "train")] = self._cells[6]
                self.counts[(r["data-config"], "test")] = self._cells[7]
            self._row = None
        if tag == "figcaption" and self._figure:
            self.captions[self._figure] = " ".join(t.strip() for t in self._text if t.strip())
            self._in_caption = False


def _page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def _rows(config_dir: Path, split: str, columns: list[str]) -> list[dict]:
    out: list[dict] = []
    for f in sorted(config_dir.glob(f"{split}-*.parquet")):
        out += pq.read_table(f, columns=columns).to_pylist()
    return out


def _from_red(rgb: tuple[int, int, int]) -> float:
    """Distance of a pixel from pure red (the colour of a record's first box)."""
    r, g, b = rgb
    return ((255 - r) ** 2 + g**2 + b**2) ** 0.5


def _decode(uri: str) -> Image.Image:
    head, _, data = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


@pytest.fixture(scope="module")
def demo(demo_export):
    out = demo_export / "medmat"
    return out, out / REPORT_DIR, BuildReport.read(out)


def test_build_writes_the_report_as_its_own_files(demo):
    out, rep_dir, report = demo
    names = sorted(p.name for p in rep_dir.iterdir())
    assert names == sorted([INDEX, RAW_PATHS, *(f"{c}.html" for c in report.configs)])
    owned = set(json.loads((out / ".medmat" / "owner.json").read_text())["files"])
    assert {f"{REPORT_DIR}/{n}" for n in names} <= owned


def test_pages_parse_and_every_link_and_source_resolves(demo):
    _, rep_dir, report = demo
    for path in sorted(rep_dir.glob("*.html")):
        page = _page(path)
        for src in page.srcs:  # every embedded resource is inline: the pages open offline
            assert src.startswith("data:image/jpeg;base64,"), f"{path.name}: {src[:60]}"
            assert _decode(src).size[0] > 0
        for href in page.hrefs:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https"):
                continue  # a source's homepage: a link to follow, not a resource of the page
            assert not parts.scheme and not parts.netloc, f"{path.name}: {href}"
            assert (rep_dir / unquote(parts.path)).is_file(), f"{path.name} links to missing {href}"
    index = _page(rep_dir / INDEX)
    assert sorted(h for h in index.hrefs if not h.startswith("http")) == sorted(f"{c}.html" for c in report.configs)


def test_counts_equal_the_parquet_files(demo):
    out, rep_dir, report = demo
    index = _page(rep_dir / INDEX)
    for name in report.configs:
        page = _page(rep_dir / f"{name}.html")
        for split in ("train", "test"):
            rows = _rows(out / name, split, ["labels"])
            assert index.counts[(name, split)] == str(len(rows)), (name, split)
            expected = Counter(lab for r in rows for lab in dict.fromkeys(r["labels"]))
            shown = {label: int(n) for (s, label), n in page.counts.items() if s == split}
            assert shown == dict(expected), (name, split)


def test_samples_name_their_source_and_raw_file(demo_export, demo):
    out, rep_dir, report = demo
    page = _page(rep_dir / "subset_01.html")
    assert page.thumbs
    ids = {r["id"]: r["source"] for split in ("train", "test") for r in _rows(out / "subset_01", split, ["id", "source"])}
    registry = load_registry()
    for rid in page.thumbs:
        source, raw_path = page.captions[rid].split(" ", 1)
        assert source == ids[rid]
        assert (demo_export / "raw" / raw_path).is_file(), raw_path
        assert raw_path.startswith(registry.source(source).folder + "/")


def test_boxes_are_drawn_where_they_are(demo):
    out, rep_dir, report = demo
    registry = load_registry()
    grounding = [c for c in report.configs if registry.subset(c).kind in ("detection", "segmentation")]
    assert grounding
    checked = 0
    for name in grounding[:3]:
        page = _page(rep_dir / f"{name}.html")
        rows = {r["id"]: r for split in ("train", "test") for r in _rows(out / name, split, ["id", "image", "boxes"])}
        for rid, uri in sorted(page.thumbs.items()):
            boxes = rows[rid]["boxes"]
            if len(boxes) != 1:
                continue
            (box,) = boxes
            thumb = _decode(uri)
            w, h = thumb.size
            # the left edge of the box, half-way down it, in thumbnail pixels (boxes are on a 0-1000 grid)
            x = round(box["x1"] * (w - 1) / 1000)
            y = round((box["y1"] + box["y2"]) / 2 * (h - 1) / 1000)
            plain = make_thumbnail(rows[rid]["image"]["bytes"]).convert("RGB").getpixel((x, y))
            if _from_red(plain) < 120:
                continue  # the image itself is reddish there: no evidence either way
            assert _from_red(thumb.getpixel((x, y))) < 70, (name, rid, (x, y), thumb.getpixel((x, y)))
            checked += 1
    assert checked >= 3


def test_same_build_same_bytes(demo_export, demo):
    out, rep_dir, report = demo
    registry = load_registry()
    first = render_visual_report(out, registry, report, raw=demo_export / "raw")
    assert first == {p.name: p.read_bytes() for p in rep_dir.iterdir()}  # what the build wrote
    assert render_visual_report(out, registry, report, raw=demo_export / "raw") == first
    # without the raw folder: the raw paths the report recorded (duplicate pairs lose their images)
    second = render_visual_report(out, registry, report)
    assert second[RAW_PATHS] == first[RAW_PATHS]
    assert second["subset_01.html"] == first["subset_01.html"]


def test_report_size_is_small(demo):
    _, rep_dir, _ = demo
    assert sum(p.stat().st_size for p in rep_dir.iterdir()) < 20_000_000


def test_templates_ship_as_package_data():
    templates = files("medmat_builder.publish.visual") / "templates"
    assert {"base.html.j2", "index.html.j2", "config.html.j2"} <= {t.name for t in templates.iterdir()}


# --------------------------------------------------------------------------- the command and the folder rule
@pytest.fixture()
def mini_build(tmp_path, mini_raw, mini_registry):
    out = tmp_path / "medmat"
    build(None, mini_raw, out, registry=mini_registry)
    return out


def test_cli_rewrites_the_same_report(mini_build, capsys):
    rep_dir = mini_build / REPORT_DIR
    before = {p.name: p.read_bytes() for p in rep_dir.iterdir()}
    registry = str(Path(__file__).parent / "fixtures" / "mini_registry.yaml")
    (rep_dir / "subset_02.html").unlink()
    assert main(["report", str(mini_build), "--registry", registry]) == 0
    assert f"wrote {rep_dir / INDEX}" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in rep_dir.iterdir()} == before


def test_a_build_hands_the_report_its_raw_paths_instead_of_scanning_again(tmp_path, mini_raw, mini_registry,
                                                                           monkeypatch):
    scanned: list[str] = []
    scan = RawPaths._scan
    monkeypatch.setattr(RawPaths, "_scan", lambda self, key: scanned.append(key) or scan(self, key))
    out = tmp_path / "medmat"
    build(None, mini_raw, out, registry=mini_registry)
    assert scanned == []  # every shown row's raw path came from the build
    written = {p.name: p.read_bytes() for p in (out / REPORT_DIR).iterdir()}
    assert json.loads(written[RAW_PATHS])  # paths were shown
    assert "raw_paths" not in (out / "build_report.json").read_text()  # noted in memory, never written
    # a report read back from the file knows no raw paths: scanning finds the same ones, same bytes
    assert render_visual_report(out, mini_registry, BuildReport.read(out), raw=mini_raw) == written
    assert scanned


def test_a_user_file_in_the_report_folder_is_refused_before_any_work(mini_build, mini_raw, mini_registry, capsys):
    user = mini_build / REPORT_DIR / "my_notes.txt"
    user.write_text("mine")
    parquet = sorted(mini_build.glob("subset_01/*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in parquet]
    with pytest.raises(UnsafePathError, match="report/my_notes.txt"):
        build(None, mini_raw, mini_build, registry=mini_registry)
    assert [p.stat().st_mtime_ns for p in parquet] == stamps
    registry = str(Path(__file__).parent / "fixtures" / "mini_registry.yaml")
    assert main(["report", str(mini_build), "--registry", registry]) == 2
    assert "report/my_notes.txt" in capsys.readouterr().err
    assert user.read_text() == "mine"


def test_cli_needs_an_export(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "medmat build" in capsys.readouterr().err


# --------------------------------------------------------------------------- in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (bash scripts/setup_chromium.sh)")
def test_pages_render_in_chromium(demo, tmp_path):
    _, rep_dir, report = demo
    grounding = next(c for c in report.configs if load_registry().subset(c).kind == "segmentation")
    for page in (INDEX, f"{grounding}.html"):
        png = tmp_path / (page + ".png")
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1000,1400", "--virtual-time-budget=10000", f"--screenshot={png}",
                        (rep_dir / page).as_uri()], capture_output=True, timeout=120, check=True)
        shot = Image.open(png).convert("L")
        assert ImageStat.Stat(shot).stddev[0] > 10, f"{page} renders blank"
        assert len(shot.getcolors(1 << 16) or []) > 20, f"{page} renders (nearly) one colour"
