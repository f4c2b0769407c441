"""How the look-alike scans of :mod:`medmat_builder.images.lookalikes` are drawn: anatomy, positioning, exposure, grain.

One drawer per modality (:data:`DRAWERS`), each ``(rng, label_index, small) -> uint8 pixels``. Smooth
anatomy is drawn at about :data:`WORK_SIDE` pixels and upsampled (bicubic); thin structures (vessels,
hairs) and noise are added at full size. Only numpy and Pillow are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

# ----------------------------------------------------------------------------------------- helpers
#: Smooth anatomy is drawn at about this many pixels on the longer side, then upsampled (bicubic);
#: thin structures (vessels, hairs) and noise are added at full size.
WORK_SIDE = 192


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """A soft step from 0 to 1 around 0 (a clipped ramp: as smooth as needed, and cheap)."""
    return np.clip(0.5 + 0.25 * x, 0.0, 1.0)


@lru_cache(maxsize=2)
def _noise_bank(side: int = 1024) -> np.ndarray:
    """One seeded field of unit white noise; each image takes a window of it (cheap, deterministic)."""
    return np.random.default_rng(991).standard_normal((side, side), dtype=np.float32)


@lru_cache(maxsize=2)
def _grain_bank(side: int = 1024) -> np.ndarray:
    """The noise bank in 1/16ths of a standard deviation, as int16 (for the 8-bit finishing step)."""
    return np.clip(np.rint(_noise_bank(side) * 16), -32000, 32000).astype(np.int16)


def _finish(img: np.ndarray, w: int, h: int, rng: np.random.Generator, grain: float,
            darken: tuple[Image.Image, tuple[float, ...]] | None = None) -> np.ndarray:
    """The full-size 8-bit picture: the working-size ``img`` (0-1) upsampled (bicubic), thin structures
    darkened (``darken``: an ``L`` mask at full size and a factor per channel), film grain added
    (``grain``: standard deviation, 0-1 scale). 8-bit and integer work at full size: cheap."""
    full = Image.fromarray(_to_uint8(img)).resize((w, h), Image.Resampling.BICUBIC)
    if darken is not None:
        mask, factors = darken
        bands = [mask.point([255 - int(round(v * f)) for v in range(256)]) for f in factors]
        full = ImageChops.multiply(full, bands[0] if len(bands) == 1 else Image.merge("RGB", bands))
    arr = np.asarray(full).astype(np.int16)
    bank = _grain_bank()
    y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    noise = (bank[y : y + h, x : x + w] * int(round(grain * 255 * 16))) >> 8  # in grey levels
    arr += noise[..., None] if arr.ndim == 3 else noise
    return np.clip(arr, 0, 255).astype(np.uint8)


def _resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bicubic resize of a float32 H x W (x C) array."""
    if arr.ndim == 3:
        return np.stack([_resize(arr[..., c], w, h) for c in range(arr.shape[2])], axis=-1)
    return np.array(Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
                    .resize((w, h), Image.Resampling.BICUBIC))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Band-limited noise with about ``cells`` blobs across the longer side (unit-ish amplitude)."""
    ch, cw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    small = rng.standard_normal((ch + 2, cw + 2)).astype(np.float32)
    big = _resize(small, w + 2 * (w // cw), h + 2 * (h // ch))
    return big[h // ch : h // ch + h, w // cw : w // cw + w]


def _fractal_noise(rng: np.random.Generator, h: int, w: int, octaves: tuple[int, ...] = (4, 8, 16, 32)) -> np.ndarray:
    out = np.zeros((h, w), dtype=np.float32)
    amp = 1.0
    for cells in octaves:
        out += amp * _smooth_noise(rng, h, w, cells)
        amp *= 0.6
    return out / 1.7


@dataclass(frozen=True)
class _Frame:
    """Anatomy coordinates ``u`` (right), ``v`` (down) of every pixel of the working canvas: about -1..1
    across the shorter side, after the per-image positioning (shift, scale, tilt)."""

    u: np.ndarray
    v: np.ndarray
    px: float  # working pixels per anatomy unit
    zoom: float  # full-size pixels per working pixel
    affine: tuple[float, float, float, float, float, float]  # (u, v) -> full-size pixel (x, y)

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.affine
        return a * u + b * v + c, d * u + e * v + f


def _frame(h: int, w: int, shift: tuple[float, float], scale: float, tilt_deg: float,
           work_side: int = WORK_SIDE) -> _Frame:
    zoom = max(1.0, max(h, w) / work_side)
    hw, ww = max(2, round(h / zoom)), max(2, round(w / zoom))
    half = min(hw, ww) / 2.0
    ys = (np.arange(hw, dtype=np.float32) - (hw - 1) / 2.0) / half - shift[1]
    xs = (np.arange(ww, dtype=np.float32) - (ww - 1) / 2.0) / half - shift[0]
    t = np.deg2rad(tilt_deg)
    c, s = float(np.cos(t)), float(np.sin(t))
    u = (c * xs[None, :] + s * ys[:, None]) / scale
    v = (-s * xs[None, :] + c * ys[:, None]) / scale
    # Inverse, in full-size pixels: x = ((c*u - s*v)*scale + shift_x) * half + (ww-1)/2, then * zoom.
    k = half * scale * zoom
    affine = (c * k, -s * k, (shift[0] * half + (ww - 1) / 2.0 + 0.5) * zoom - 0.5,
              s * k, c * k, (shift[1] * half + (hw - 1) / 2.0 + 0.5) * zoom - 0.5)
    return _Frame(u.astype(np.float32), v.astype(np.float32), half * scale, zoom, affine)


def _edge(x: np.ndarray, f: _Frame, px: float = 1.0) -> np.ndarray:
    """Soft step: 1 where ``x`` (anatomy units) > 0, edge about ``px`` working pixels wide."""
    return _sigmoid(x * (f.px / px))


def _ellipse(f: _Frame, cx: float, cy: float, rx: float, ry: float, px: float = 1.0) -> np.ndarray:
    """Soft ellipse mask (1 inside)."""
    d = np.sqrt(((f.u - cx) / rx) ** 2 + ((f.v - cy) / ry) ** 2) - 1.0
    return _edge(-d * min(rx, ry), f, px)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _exposure(img: np.ndarray, rng: np.random.Generator, contrast: tuple[float, float] = (0.85, 1.15),
              gamma: tuple[float, float] = (0.8, 1.25), offset: float = 0.06) -> np.ndarray:
    img = np.clip(img, 0.0, 1.0) ** np.float32(rng.uniform(*gamma))
    return (img - 0.5) * np.float32(rng.uniform(*contrast)) + 0.5 + np.float32(rng.uniform(-offset, offset))


def _random_walk(rng: np.random.Generator, start: tuple[float, float], angle: float, step: float, n: int,
                 curve: float = 0.0, wobble: float = 0.1) -> list[tuple[float, float]]:
    """A polyline of ``n`` steps whose heading turns by ``curve`` plus a random wobble at each step."""
    headings = angle + np.cumsum(curve + rng.normal(0.0, wobble, n))
    xs = start[0] + step * np.concatenate([[0.0], np.cumsum(np.cos(headings))])
    ys = start[1] + step * np.concatenate([[0.0], np.cumsum(np.sin(headings))])
    return list(zip(xs.tolist(), ys.tolist()))


# ----------------------------------------------------------------------------------------- chest X-ray
def _chest_xray(rng: np.random.Generator, label_index: int, small: bool) -> np.ndarray:
    h = int(rng.integers(288, 416)) if small else int(rng.integers(400, 513))
    w = int(h * rng.uniform(0.84, 1.0))
    f = _frame(h, w, (rng.uniform(-0.07, 0.07), rng.uniform(-0.06, 0.08)), rng.uniform(0.88, 1.06),
               rng.uniform(-4.0, 4.0))
    u, v = f.u, f.v
    au = np.abs(u)
    # Body: air outside, soft tissue; narrower at the neck, shoulders at the top corners.
    body_half = rng.uniform(0.88, 1.0) - 0.45 * _sigmoid((-1.0 - v) * 9.0)
    body = _edge(body_half - au, f, 2.5)
    img = 0.05 + 0.55 * body + 0.06 * _sigmoid((-0.8 - v) * 6.0) * body
    # Lungs: medial edge by the mediastinum, rounded apex, lateral edge, diaphragm dome below.
    lungs = np.zeros_like(u)
    hilum = np.zeros_like(u)
    dome_top = rng.uniform(0.30, 0.50)
    for side in (-1.0, 1.0):
        a = side * u
        medial = rng.uniform(0.08, 0.13) + (0.03 if side > 0 else 0.0) + 0.05 * _sigmoid((-0.45 - v) * 8.0)
        top = rng.uniform(-0.86, -0.72)
        width = rng.uniform(0.58, 0.72)
        peak = dome_top + (rng.uniform(0.03, 0.09) if side > 0 else 0.0)  # the left dome sits lower
        s = np.clip((v - top) / (peak + 0.2 - top), 0.0, 1.0)
        lateral = medial + width * s ** 0.42
        dome = peak + rng.uniform(0.6, 1.0) * (a - medial - 0.45 * width) ** 2
        lung = _edge(lateral - a, f, 1.2) * _edge(a - medial, f, 1.2) * _edge(v - top, f, 1.5) * _edge(dome - v, f, 1.2)
        lungs = np.maximum(lungs, lung)
        hilum += np.exp(-(((a - medial - 0.1) / 0.12) ** 2 + ((v + 0.05) / 0.2) ** 2))
    heart = _ellipse(f, rng.uniform(0.08, 0.16), dome_top - rng.uniform(0.0, 0.08), rng.uniform(0.28, 0.38),
                     rng.uniform(0.22, 0.3), 2.0)
    visible = lungs * (1.0 - heart)
    markings = _fractal_noise(rng, *u.shape, (8, 16, 32))
    img = img - visible * (0.34 + rng.uniform(-0.04, 0.04) - 0.05 * markings - 0.08 * np.clip(hilum, 0, 1))
    img += 0.05 * heart * body + 0.08 * _edge(v - dome_top - 0.15, f, 6.0) * body  # denser abdomen
    # Trachea (air, darker), spine (faint through the mediastinum).
    tx = rng.uniform(-0.03, 0.03)
    img -= 0.10 * _edge(0.035 - np.abs(u - tx), f, 1.0) * _edge(-0.25 - v, f, 2.0) * body
    img += 0.05 * _edge(0.075 - np.abs(u - tx), f, 1.5) * body
    # Ribs: posterior arcs (falling laterally) and fainter anterior ones, inside the rib cage.
    cage = _edge(0.85 - au, f, 3.0) * _edge(dome_top + 0.2 - v, f, 6.0) * _edge(v + 0.95, f, 3.0)
    period = rng.uniform(0.14, 0.18)
    t = (v - rng.uniform(0.45, 0.8) * u * u) / period + rng.uniform(0, 1)
    img += 0.06 * _sigmoid((np.cos(2 * np.pi * t) - 0.3) * 5.0) * cage * (0.3 + visible)
    t2 = (v + rng.uniform(0.5, 0.8) * au) / (period * 1.2) + rng.uniform(0, 1)
    img += 0.025 * _sigmoid((np.cos(2 * np.pi * t2) - 0.4) * 5.0) * cage * visible
    # Clavicles.
    for side in (-1.0, 1.0):
        a = side * u
        y0 = rng.uniform(-0.82, -0.7)
        line = v - (y0 - rng.uniform(0.1, 0.22) * a)
        img += 0.13 * np.exp(-((line / 0.035) ** 2)) * _edge(0.62 - a, f, 2.0) * _edge(a - 0.05, f, 2.0)
    if label_index:  # pneumonia: soft opacities in the lower lung fields
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.55), rng.uniform(-0.1, 0.35)
            img += 0.2 * visible * _ellipse(f, cx, cy, rng.uniform(0.1, 0.22), rng.uniform(0.08, 0.2), 10.0)
    if rng.random() < 0.4:  # gas in the stomach under the left dome
        img -= 0.12 * _ellipse(f, rng.uniform(0.3, 0.5), dome_top + 0.3, 0.12, 0.08, 2.0) * body
    img += 0.05 * _fractal_noise(rng, *u.shape, (2, 4)) * body  # uneven exposure
    img = _exposure(img, rng)
    return _finish(img, w, h, rng, rng.uniform(0.008, 0.018))


# ----------------------------------------------------------------------------------------- fundus
def _vessel_tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, start: tuple[float, float], angle: float,
                 width: float, steps: int, step: float, curve: float, depth: int = 0) -> None:
    points = _random_walk(rng, start, angle, step, steps, curve, 0.08)
    draw.line(points, fill=255, width=max(1, int(round(width))), joint="curve")
    if depth >= 3 or width < 1.5:
        return
    for i in range(3, len(points) - 3, int(rng.integers(5, 9))):  # branches leave at an angle, thinner
        (x0, y0), (x1, y1) = points[i - 1], points[i]
        heading = float(np.arctan2(y1 - y0, x1 - x0)) + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0)
        _vessel_tree(draw, rng, points[i], heading, width * 0.65, int((steps - i) * rng.uniform(0.4, 0.8)),
                     step, curve * 0.5, depth + 1)


def _fundus(rng: np.random.Generator, label_index: int, small: bool) -> np.ndarray:
    h = int(rng.integers(320, 416)) if small else int(rng.integers(400, 513))
    w = int(h * rng.uniform(1.05, 1.4))
    f = _frame(h, w, (rng.uniform(-0.05, 0.05), rng.uniform(-0.04, 0.04)), rng.uniform(0.92, 1.04),
               rng.uniform(-8.0, 8.0))
    u, v = f.u, f.v
    r = np.sqrt(u * u + v * v)
    fov_r = rng.uniform(0.93, 1.0)
    fov = _edge(fov_r - r, f, 0.8)
    base = np.array([0.85, 0.38, 0.13], dtype=np.float32) * np.array(
        [rng.uniform(0.8, 1.12), rng.uniform(0.7, 1.25), rng.uniform(0.5, 1.4)], dtype=np.float32)
    shade = (1.0 - rng.uniform(0.3, 0.55) * (r / fov_r) ** 2) * (1 + 0.07 * _fractal_noise(rng, *u.shape, (5, 10, 20)))
    eye = float(rng.choice([-1.0, 1.0]))  # left or right eye: the optic disc sits on the nasal side
    dx, dy = eye * rng.uniform(0.36, 0.5), rng.uniform(-0.08, 0.08)
    disc_r = rng.uniform(0.1, 0.14)
    disc = _ellipse(f, dx, dy, disc_r, disc_r * rng.uniform(1.0, 1.15), 1.0)
    cup = _ellipse(f, dx + rng.uniform(-0.02, 0.02), dy, disc_r * (0.6 if label_index else rng.uniform(0.3, 0.45)),
                   disc_r * 0.55, 1.5)
    mx, my = dx - eye * rng.uniform(0.42, 0.52), dy + rng.uniform(-0.05, 0.05)
    macula = _ellipse(f, mx, my, 0.17, 0.17, 12.0)
    img = base[None, None, :] * shade[..., None]
    img = img * (1 - 0.5 * macula[..., None] * np.float32([0.45, 0.9, 0.9]))
    disc_col = np.float32([1.0, 0.82, 0.55]) * np.float32(rng.uniform(0.85, 1.0))
    img = img * (1 - disc[..., None]) + disc[..., None] * disc_col * (0.85 + 0.15 * cup[..., None])
    if label_index:  # retinopathy: yellow exudates and dark red haemorrhages
        for _ in range(int(rng.integers(4, 12))):
            cx, cy, rr = rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5), rng.uniform(0.015, 0.035)
            spot = _ellipse(f, cx, cy, rr, rr, 0.8)[..., None]
            col = np.float32([0.95, 0.85, 0.35]) if rng.random() < 0.5 else np.float32([0.45, 0.08, 0.05])
            img = img * (1 - spot) + spot * col
    img = img * np.float32(rng.uniform(0.85, 1.15)) * fov[..., None]
    # Vessels at full size: two temporal arcades curving around the macula, two nasal branches.
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    px, py = f.to_pixel(dx, dy)
    unit = f.px * f.zoom
    mpx, _ = f.to_pixel(mx, my)
    towards = 1.0 if mpx > px else -1.0  # +1: the macula lies to the right of the disc in the picture
    temporal = 0.0 if towards > 0 else np.pi
    main_w = unit * rng.uniform(0.022, 0.03)
    step = unit * 0.04
    for sign in (-1.0, 1.0):  # -1: superior arcade, +1: inferior; both bend towards the macula
        _vessel_tree(draw, rng, (px, py), temporal + sign * towards * rng.uniform(0.9, 1.3),
                     main_w * rng.uniform(0.85, 1.1), int(rng.integers(28, 38)), step,
                     -sign * towards * rng.uniform(0.03, 0.05))
        _vessel_tree(draw, rng, (px, py), temporal + np.pi - sign * towards * rng.uniform(0.5, 1.0),
                     main_w * 0.7, int(rng.integers(12, 20)), step, 0.0)
    vessels = canvas.filter(ImageFilter.BoxBlur(1))
    return _finish(img, w, h, rng, rng.uniform(0.008, 0.016), (vessels, (0.35, 0.75, 0.7)))


# ----------------------------------------------------------------------------------------- dermoscopy
def _dermoscopy(rng: np.random.Generator, label_index: int, small: bool) -> np.ndarray:
    h = int(rng.integers(288, 385)) if small else int(rng.integers(360, 481))
    w = int(round(h * 4 / 3))
    f = _frame(h, w, (rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)), rng.uniform(0.8, 1.2), rng.uniform(-30, 30))
    u, v = f.u, f.v
    skin = np.array([0.86, 0.63, 0.53], dtype=np.float32) * np.array(
        [rng.uniform(0.9, 1.05), rng.uniform(0.85, 1.05), rng.uniform(0.8, 1.1)], dtype=np.float32)
    low = _fractal_noise(rng, *u.shape, (3, 6, 12))
    img = skin[None, None, :] * (1 + 0.06 * low)[..., None]
    # Lesion: irregular outline r(theta), darker centre, pigment network.
    theta = np.arctan2(v, u)
    rad = np.sqrt(u * u + v * v)
    r0 = rng.uniform(0.4, 0.75)
    outline = np.ones_like(theta)
    for k in range(2, 8):
        outline += rng.uniform(0, 0.05 + 0.05 * label_index) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    lesion = _edge(r0 * outline - rad, f, 2.0 + 2.0 * rng.random())
    core = _edge(0.6 * r0 * outline - rad, f, 8.0)
    net = np.clip(_smooth_noise(rng, *u.shape, int(rng.integers(22, 34))), 0, None)
    brown = np.array([0.55, 0.36, 0.25], dtype=np.float32) * np.float32(rng.uniform(0.7, 1.1))
    dark = np.array([0.30, 0.18, 0.13], dtype=np.float32) * np.float32(rng.uniform(0.7, 1.1))
    col = brown[None, None, :] * (1 - core[..., None]) + dark[None, None, :] * core[..., None]
    col = col * (1 - 0.18 * net)[..., None]
    img = img * (1 - lesion[..., None]) + col * lesion[..., None]
    if label_index:  # melanoma: blue-grey veil and black regions
        for _ in range(int(rng.integers(2, 5))):
            a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.6) * r0
            blob = 0.7 * _ellipse(f, rr * np.cos(a), rr * np.sin(a), rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2), 6.0)
            tone = np.float32([0.42, 0.44, 0.5]) if rng.random() < 0.5 else np.float32([0.12, 0.09, 0.08])
            img = img * (1 - blob[..., None]) + blob[..., None] * tone
    vignette = rng.random() < 0.6
    if vignette:  # dermoscope field: dark outside a circle
        img = img * _edge(rng.uniform(1.1, 1.4) - rad * f.px / (min(u.shape) / 2), f, 6.0)[..., None]
    img = _exposure(img, rng, (0.9, 1.1), (0.85, 1.2), 0.05)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 7))):  # hairs
        start = (float(rng.uniform(0, w)), float(rng.uniform(0, h)))
        draw.line(_random_walk(rng, start, rng.uniform(0, 2 * np.pi), w / 40, 30, 0.0, 0.05), fill=255,
                  width=int(rng.integers(1, 3)))
    return _finish(img, w, h, rng, rng.uniform(0.006, 0.014), (canvas, (0.75, 0.75, 0.75)))


# ----------------------------------------------------------------------------------------- CT slice
def _ct_slice(rng: np.random.Generator, label_index: int, small: bool) -> np.ndarray:
    h = w = int(rng.choice([256, 320, 384])) if small else 512
    f = _frame(h, w, (rng.uniform(-0.06, 0.06), rng.uniform(-0.08, 0.04)), rng.uniform(0.85, 1.08),
               rng.uniform(-3, 3), work_side=256)
    u, v = f.u, f.v
    level = rng.uniform(0, 1)  # slice level: apex (small lungs) to base (large lungs, more heart)
    brx, bry = rng.uniform(0.78, 0.9), rng.uniform(0.52, 0.62)
    body = _ellipse(f, 0, 0.05, brx, bry, 0.7)
    inner = _ellipse(f, 0, 0.05, brx - 0.06, bry - 0.06, 1.5)
    img = 0.02 + body * (0.42 + 0.16 * inner)  # subcutaneous fat darker than muscle
    table_y = 0.05 + bry + rng.uniform(0.03, 0.07)
    img += 0.3 * np.exp(-(((v - table_y + 0.1 * u * u) * f.px / 1.2) ** 2))
    lungs = np.zeros_like(u)
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.3, 0.38)
        rx, ry = rng.uniform(0.2, 0.27) + 0.04 * level, rng.uniform(0.28, 0.36) + 0.04 * level
        lung = _ellipse(f, cx, rng.uniform(-0.02, 0.06), rx, ry, 1.0)
        lung *= 1 - _ellipse(f, side * 0.08, 0.05, 0.16 + 0.08 * level, 0.2, 2.0)  # the mediastinum cuts in
        lung *= 1 - _ellipse(f, 0.0, 0.36, 0.16, 0.12, 2.0)  # and the spine behind
        lungs = np.maximum(lungs, lung)
    img = img * (1 - lungs) + lungs * 0.07
    vessels = np.clip(_smooth_noise(rng, *u.shape, int(rng.integers(30, 45))) - 1.2, 0, None)
    img += 0.4 * vessels * lungs
    img += 0.08 * _ellipse(f, rng.uniform(-0.05, 0.1), -0.05 + 0.05 * level, 0.18 + 0.06 * level, 0.16, 1.5) * inner
    img += 0.25 * _ellipse(f, rng.uniform(-0.12, -0.04), 0.2, 0.055, 0.055, 0.8)  # descending aorta
    img += 0.45 * _ellipse(f, 0.0, 0.36, rng.uniform(0.08, 0.1), rng.uniform(0.07, 0.09), 0.8)  # vertebral body
    img += 0.4 * _ellipse(f, 0.0, 0.5, 0.025, 0.07, 0.8)  # spinous process
    if label_index:
        cx, cy = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.4), rng.uniform(-0.15, 0.15)
        rr = rng.uniform(0.02, 0.05)
        img += 0.4 * lungs * _ellipse(f, cx, cy, rr, rr, 0.8)
    img = _exposure(img, rng, (0.92, 1.08), (0.92, 1.08), 0.03)
    return _finish(img, w, h, rng, rng.uniform(0.015, 0.03))


DRAWERS = {"chest_xray": _chest_xray, "fundus": _fundus, "dermoscopy": _dermoscopy, "ct_slice": _ct_slice}
