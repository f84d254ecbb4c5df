"""A synthetic Cityscapes: street scenes drawn from random layouts, in the official package layout.

Why: real Cityscapes needs an account and 11 GB, so tests and smoke runs use this instead. It writes
exactly the official names (gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png, _color.png,
_instanceIds.png; leftImg8bit/{split}/{city}/..._leftImg8bit.png) and optionally the two official zips,
so every downstream command runs on it unchanged.

Each frame is a scene, not noise: a horizon and vanishing point, a road and sidewalks in perspective,
building blocks, trees, terrain, walls, poles with signs and traffic lights, cars, people and an ego
vehicle (void id 1) at the bottom, laid out differently in every frame. The label map uses the real
Cityscapes ids and colours (cityscapesscripts). The photo is rendered from the label map and the
drawn segments: per-class colours and textures (windows, foliage, asphalt, tiles), per-object colour
variation, lighting that changes per frame, cast shadows, sensor noise and a slight blur. So
labels <-> photo is a real, learnable translation, and unpaired training can be checked on it.

Deterministic: frame i of a split is drawn from numpy's Generator seeded with (seed, split, i), so the
same seed gives the same bytes, and adding frames does not change the earlier ones.
"""

import io
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from PIL import Image, ImageFilter
from tqdm import tqdm

from repro import ReproError, __version__
from repro.data.labels import COLOUR_BY_ID, HAS_INSTANCES
from repro.io import DiskFull, free_space, is_disk_full, partial_folder, read_json_or_empty

DEFAULT_SIZE = (256, 128)  # (W, H): the real packages are 2048x1024, the same 2:1 aspect
DEFAULT_TRAIN = 200
DEFAULT_VAL = 50
CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster")}
FRAME_NUMBER = 19  # real gtFine frames are the 20th frame of each 30-frame snippet: *_000019
MARKER = "synth-city.json"

ID = {name: label.id for name, label in name2label.items()}


# ---------------------------------------------------------------- drawing a scene


TEXTURES = ("plain", "asphalt", "tiles", "facade", "foliage", "grass", "sky", "glass", "metal", "concrete")


@dataclass
class Style:
    """How one drawn segment looks in the photo."""

    rgb: tuple[float, float, float]
    texture: str = "plain"  # plain, asphalt, tiles, facade, foliage, grass, sky, glass, metal, concrete
    period: tuple[int, int] = (8, 8)  # window / tile spacing in pixels (facade, tiles)


@dataclass
class Canvas:
    """The scene being drawn: label ids, the segment each pixel belongs to, and instance ids."""

    width: int
    height: int
    labels: np.ndarray = None
    segments: np.ndarray = None
    instances: np.ndarray = None
    shade: np.ndarray = None  # multiplicative light: < 1 in cast shadows
    styles: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # label id -> instances drawn so far

    def __post_init__(self):
        self.labels = np.zeros((self.height, self.width), np.uint8)
        self.segments = np.zeros((self.height, self.width), np.int32)
        self.instances = np.zeros((self.height, self.width), np.int32)
        self.shade = np.ones((self.height, self.width), np.float32)
        self.yy, self.xx = np.mgrid[0 : self.height, 0 : self.width]

    def segment(self, label: str, style: Style, instance: bool = False) -> tuple[int, int, int]:
        """(label id, new segment index, instance id) for a new drawn part."""
        self.styles.append(style)
        label_id = ID[label]
        instance_id = label_id
        if instance and HAS_INSTANCES[label_id]:
            self.counts[label_id] = self.counts.get(label_id, -1) + 1
            instance_id = label_id * 1000 + self.counts[label_id]
        return label_id, len(self.styles) - 1, instance_id

    def paint(self, mask: np.ndarray, part: tuple[int, int, int], window=(slice(None), slice(None))) -> None:
        label_id, seg, inst = part
        self.labels[window][mask] = label_id
        self.segments[window][mask] = seg
        self.instances[window][mask] = inst

    def window(self, x0, y0, x1, y1):
        """Slices of the clipped box, or None when it is off the canvas."""
        x0, x1 = max(int(x0), 0), min(int(np.ceil(x1)), self.width)
        y0, y1 = max(int(y0), 0), min(int(np.ceil(y1)), self.height)
        return None if x0 >= x1 or y0 >= y1 else (slice(y0, y1), slice(x0, x1))

    def rect(self, x0, y0, x1, y1, part) -> None:
        w = self.window(x0, y0, x1, y1)
        if w is not None:
            self.paint(np.ones((w[0].stop - w[0].start, w[1].stop - w[1].start), bool), part, w)

    def ellipse(self, cx, cy, rx, ry, part) -> None:
        w = self.window(cx - rx, cy - ry, cx + rx + 1, cy + ry + 1)
        if w is not None:
            mask = ((self.xx[w] - cx) / max(rx, 0.5)) ** 2 + ((self.yy[w] - cy) / max(ry, 0.5)) ** 2 <= 1
            self.paint(mask, part, w)

    def darken(self, cx, cy, rx, ry, amount) -> None:
        """A soft elliptical shadow on whatever is there (the label does not change)."""
        w = self.window(cx - rx, cy - ry, cx + rx + 1, cy + ry + 1)
        if w is not None:
            d = ((self.xx[w] - cx) / max(rx, 0.5)) ** 2 + ((self.yy[w] - cy) / max(ry, 0.5)) ** 2
            self.shade[w] *= 1 - amount * np.clip(1.2 - d, 0, 1)


def _jitter(rng, rgb, amount=18.0):
    return tuple(float(np.clip(c + rng.normal(0, amount), 0, 255)) for c in rgb)


def _car(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    w, h = c.width * 0.28 * s, c.height * 0.3 * s
    c.darken(cx, bottom, w * 0.6, h * 0.12 + 1, 0.5)
    colour = rng.choice([(30, 30, 35), (200, 200, 205), (140, 20, 25), (30, 50, 120), (110, 110, 115)])
    body = c.segment("car", Style(_jitter(rng, colour, 20), "metal"), instance=True)
    glass = (ID["car"], c.segment("car", Style((50, 60, 75), "glass"))[1], body[2])  # same instance
    wheel = (ID["car"], c.segment("car", Style((20, 20, 20)))[1], body[2])
    c.rect(cx - w / 2, bottom - h * 0.6, cx + w / 2, bottom - h * 0.12, body)
    c.rect(cx - w * 0.35, bottom - h, cx + w * 0.35, bottom - h * 0.55, glass)
    for wx in (-0.32, 0.32):
        c.ellipse(cx + wx * w, bottom - h * 0.12, w * 0.1, h * 0.13, wheel)


def _bus(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    w, h = c.width * 0.35 * s, c.height * 0.65 * s
    c.darken(cx, bottom, w * 0.6, h * 0.06 + 1, 0.5)
    body = c.segment("bus", Style(_jitter(rng, (200, 170, 40), 25), "metal"), instance=True)
    glass = (ID["bus"], c.segment("bus", Style((45, 55, 70), "glass"))[1], body[2])
    c.rect(cx - w / 2, bottom - h, cx + w / 2, bottom, body)
    c.rect(cx - w * 0.45, bottom - h * 0.9, cx + w * 0.45, bottom - h * 0.55, glass)


def _person(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    h = c.height * 0.55 * s
    w = h * 0.28
    legs = c.segment("person", Style(_jitter(rng, (60, 60, 70), 40)), instance=True)
    torso = (ID["person"], c.segment("person", Style(_jitter(rng, (150, 60, 60), 60)))[1], legs[2])
    head = (ID["person"], c.segment("person", Style(_jitter(rng, (210, 170, 140), 15)))[1], legs[2])
    c.rect(cx - w * 0.35, bottom - h * 0.5, cx + w * 0.35, bottom, legs)
    c.ellipse(cx, bottom - h * 0.65, w * 0.5, h * 0.22, torso)
    c.ellipse(cx, bottom - h * 0.9, w * 0.28, h * 0.1, head)


def _pole(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    """A pole carrying a traffic sign or a traffic light."""
    h = c.height * rng.uniform(0.6, 1.0) * s + 4
    w = max(1.0, c.width * 0.012 * s)
    c.rect(cx - w / 2, bottom - h, cx + w / 2, bottom, c.segment("pole", Style(_jitter(rng, (120, 120, 125), 10), "metal")))
    if rng.random() < 0.6:
        r = max(2.0, c.width * 0.03 * s)
        sign = Style(_jitter(rng, rng.choice([(200, 30, 30), (30, 70, 190), (230, 190, 20)]), 15))
        c.ellipse(cx, bottom - h - r * 0.6, r, r, c.segment("traffic sign", sign))
    else:
        lw, lh = max(2.0, c.width * 0.025 * s), max(4.0, c.height * 0.1 * s)
        c.rect(cx - lw / 2, bottom - h - lh, cx + lw / 2, bottom - h, c.segment("traffic light", Style((35, 35, 35))))
        lamp = Style(tuple(rng.choice([(255, 60, 40), (60, 255, 90), (255, 200, 40)])))
        c.ellipse(cx, bottom - h - lh * rng.choice([0.2, 0.5, 0.8]), lw * 0.35, lw * 0.35, c.segment("traffic light", lamp))


def _tree(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    h = c.height * rng.uniform(0.7, 1.1) * s + 4
    crown = c.segment("vegetation", Style(_jitter(rng, (55, 95, 30), 15), "foliage"))
    trunk = (ID["vegetation"], c.segment("vegetation", Style((70, 55, 40)))[1], crown[2])  # trunks are vegetation too
    c.rect(cx - c.width * 0.008 * s - 0.5, bottom - h * 0.6, cx + c.width * 0.008 * s + 0.5, bottom, trunk)
    for _ in range(3):
        c.ellipse(cx + rng.normal(0, h * 0.12), bottom - h * rng.uniform(0.65, 0.85), h * 0.22, h * 0.2, crown)


def _static(c: Canvas, rng, cx: float, bottom: float, s: float) -> None:
    """A void object (a bench, a bin): label 'static', ignored by the evaluation."""
    w, h = c.width * 0.05 * s + 1, c.height * 0.08 * s + 1
    c.rect(cx - w / 2, bottom - h, cx + w / 2, bottom, c.segment("static", Style(_jitter(rng, (90, 70, 50), 20), "concrete")))


def draw_scene(rng: np.random.Generator, width: int, height: int) -> Canvas:
    """One random street scene. Objects are drawn far to near, so nearer ones occlude."""
    c = Canvas(width, height)
    W, H = width, height
    horizon = H * rng.uniform(0.36, 0.5)
    vx = W * rng.uniform(0.35, 0.65)
    slope = (c.xx - vx) / np.maximum(c.yy - horizon, 1e-3)  # constant along lines through the vanishing point
    below = c.yy > horizon

    # Sky, then building blocks (with gaps showing a far hedge, or trees) along both sides of the street.
    c.paint(np.ones((H, W), bool), c.segment("sky", Style((rng.uniform(90, 150), rng.uniform(140, 185), 225), "sky")))
    x = 0.0
    while x < W:
        bw = W * rng.uniform(0.07, 0.22)
        top = horizon - H * rng.uniform(0.05, 0.42)
        kind = rng.choice(["building", "building", "building", "gap", "trees"])
        cols = (c.xx >= x) & (c.xx < x + bw)
        if kind == "building":
            grey = rng.uniform(60, 170)
            rgb = _jitter(rng, (grey * rng.uniform(0.9, 1.2), grey, grey * rng.uniform(0.75, 1.0)), 12)
            period = (int(rng.integers(4, 10)) * W // 256 + 3, int(rng.integers(4, 10)) * H // 128 + 3)
            c.paint(cols & (c.yy >= top), c.segment("building", Style(rgb, "facade", period)))
        elif kind == "trees":
            crown = c.segment("vegetation", Style(_jitter(rng, (60, 100, 35), 12), "foliage"))
            for _ in range(3):
                r = bw * rng.uniform(0.35, 0.6)
                c.ellipse(x + bw * rng.uniform(0.2, 0.8), top + r * rng.uniform(0.2, 1.0), r, r * 1.1, crown)
            c.paint(cols & (c.yy >= top + bw * 0.4), crown)
        else:  # a gap: open sky over a distant hedge
            hedge = c.segment("vegetation", Style(_jitter(rng, (70, 105, 40), 12), "foliage"))
            c.paint(cols & (c.yy >= horizon - H * rng.uniform(0.02, 0.06)), hedge)
        x += bw

    # The ground: a road between two sidewalks; beyond them a terrain strip, a wall or a fence on some sides.
    road_half = W * rng.uniform(0.22, 0.42) / (H - horizon)  # the road's half-width as a slope
    c.paint(below & (np.abs(slope) < road_half), c.segment("road", Style(_jitter(rng, (85, 82, 88), 10), "asphalt")))
    for side in (-1, 1):
        walk = road_half + W * rng.uniform(0.08, 0.22) / (H - horizon)
        tile = (int(rng.integers(6, 14)) * W // 256 + 2, int(rng.integers(3, 7)) * H // 128 + 2)
        c.paint(below & (side * slope >= road_half) & (side * slope < walk),
                c.segment("sidewalk", Style(_jitter(rng, (165, 150, 155), 14), "tiles", tile)))
        edge = rng.choice(["terrain", "wall", "fence", "none"], p=[0.4, 0.2, 0.15, 0.25])
        if edge == "terrain":
            outer = walk + W * rng.uniform(0.05, 0.3) / (H - horizon)
            c.paint(below & (side * slope >= walk) & (side * slope < outer),
                    c.segment("terrain", Style(_jitter(rng, (125, 150, 70), 15), "grass")))
        elif edge in ("wall", "fence"):
            # a low barrier standing on the sidewalk's outer edge, lower towards the horizon
            base = horizon + side * (c.xx - vx) / walk  # the row where the edge line crosses each column
            top = base - rng.uniform(0.15, 0.35) * (base - horizon)
            style = (Style(_jitter(rng, (150, 140, 125), 12), "concrete") if edge == "wall"
                     else Style(_jitter(rng, (120, 110, 95), 12), "facade", (3, 40)))
            c.paint((side * (c.xx - vx) > 0) & (c.yy <= base) & (c.yy >= top), c.segment(edge, style))

    # A dashed centre line painted on the road: it changes the photo, not the label (still road).
    dashes = below & (np.abs(slope) < road_half * 0.03) & ((2.0 * H / np.maximum(c.yy - horizon, 1)) % 1 < 0.5)
    c.paint(dashes & (c.labels == ID["road"]), c.segment("road", Style((215, 215, 205))))

    # Objects standing on the ground: (bottom row, draw function, x at that row), drawn far to near.
    def row(lo, hi):
        return horizon + (H - horizon) * rng.uniform(lo, hi)

    def on_road(y):
        return vx + rng.uniform(-0.8, 0.8) * road_half * (y - horizon)

    def on_sidewalk(y, reach=1.1):
        return vx + rng.choice([-1, 1]) * road_half * rng.uniform(1.1, 1.4) * reach * (y - horizon)

    objects = []
    for draw, count, (lo, hi), place in (
        (_tree, rng.integers(1, 4), (0.08, 0.7), on_sidewalk),
        (_pole, rng.integers(1, 4), (0.1, 0.75), on_sidewalk),
        (_car, rng.integers(0, 6), (0.08, 0.85), on_road),
        (_person, rng.integers(0, 5), (0.1, 0.9), on_sidewalk),
        (_bus, int(rng.random() < 0.15), (0.15, 0.5), on_road),
        (_static, int(rng.random() < 0.3), (0.2, 0.8), on_sidewalk),
    ):
        for _ in range(count):
            bottom = row(lo, hi)
            objects.append((bottom, draw, place(bottom)))
    for bottom, draw, cx in sorted(objects, key=lambda o: o[0]):
        draw(c, rng, cx, bottom, (bottom - horizon) / (H - horizon))

    # The ego vehicle's bonnet along the bottom edge (void, id 1), in most frames, as in the real data.
    if rng.random() < 0.8:
        rise = H * rng.uniform(0.04, 0.1)
        curve = H - rise * (1 - 0.6 * ((c.xx - W / 2) / (W / 2)) ** 2)
        c.paint(c.yy >= curve, c.segment("ego vehicle", Style(_jitter(rng, (40, 40, 45), 10), "metal")))
    return c


# ---------------------------------------------------------------- rendering the photo


def _smooth_noise(rng, height, width, cell) -> np.ndarray:
    """Value noise in [-1, 1] with features about `cell` pixels wide (a small random grid, upsampled)."""
    gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
    grid = Image.fromarray(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((width, height), Image.Resampling.BILINEAR), np.float32)


def render_photo(c: Canvas, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 photo of the scene: per-segment colour, per-class texture, light, shadows, noise."""
    H, W = c.height, c.width
    palette = np.array([s.rgb for s in c.styles], np.float32)
    textures = np.array([TEXTURES.index(s.texture) for s in c.styles], np.int8)
    periods = np.array([s.period for s in c.styles], np.int32)
    img = palette[c.segments]  # H x W x 3
    tex = textures[c.segments]
    px, py = periods[c.segments, 0], periods[c.segments, 1]
    fine, coarse = _smooth_noise(rng, H, W, 2), _smooth_noise(rng, H, W, 12)

    gain = np.ones((H, W), np.float32)
    windows = (c.xx % px < px * 0.55) & (c.yy % py < py * 0.5)
    facade = tex == TEXTURES.index("facade")
    gain[facade & windows] *= 0.45
    gain[facade & ~windows] *= 1 + 0.08 * coarse[facade & ~windows]
    foliage = tex == TEXTURES.index("foliage")
    gain[foliage] *= 1 + 0.35 * fine[foliage] + 0.2 * coarse[foliage]
    grass = tex == TEXTURES.index("grass")
    gain[grass] *= 1 + 0.18 * fine[grass]
    asphalt = tex == TEXTURES.index("asphalt")
    gain[asphalt] *= 1 + 0.06 * fine[asphalt] + 0.05 * coarse[asphalt]
    tiles = tex == TEXTURES.index("tiles")
    grout = (c.xx % px == 0) | (c.yy % py == 0)
    gain[tiles & grout] *= 0.8
    concrete = tex == TEXTURES.index("concrete")
    gain[concrete] *= 1 + 0.1 * coarse[concrete]
    metal = tex == TEXTURES.index("metal")
    gain[metal] *= 1 + 0.25 * (0.5 - (c.yy[metal] % 7) / 14)  # a specular band
    glass = tex == TEXTURES.index("glass")
    gain[glass] *= 1 + 0.3 * coarse[glass]
    sky = tex == TEXTURES.index("sky")
    lift = 1 + 0.35 * (c.yy / H) + 0.1 * coarse  # brighter towards the horizon, soft clouds
    img[sky] = np.minimum(img[sky] * lift[sky][:, None] + 25 * np.clip(coarse[sky], 0, 1)[:, None], 255)

    # Per-frame light: overall exposure, colour temperature, a sideways sun gradient, cast shadows.
    exposure = rng.uniform(0.7, 1.2)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    sun = 1 + rng.uniform(-0.25, 0.25) * (c.xx / W - 0.5)
    light = (gain * sun * c.shade * exposure)[..., None] * tint
    light[sky] = exposure * tint  # the sky is a light source, not lit
    img = img * light
    img += rng.normal(0, rng.uniform(2, 6), img.shape)  # sensor noise
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7))))


# ---------------------------------------------------------------- writing the packages


def frame_names(split: str, n: int) -> list[tuple[str, str]]:
    """(city, frame id) for the n frames of a split, spread round-robin over the split's cities."""
    cities = CITIES[split]
    return [(cities[i % len(cities)], f"{cities[i % len(cities)]}_{i // len(cities):06d}_{FRAME_NUMBER:06d}") for i in range(n)]


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG") if mode else Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def render_frame(seed: int, split: str, index: int, size: tuple[int, int]) -> dict[str, bytes]:
    """The four PNG files of one frame, keyed by kind: leftImg8bit, labelIds, color, instanceIds."""
    rng = np.random.default_rng([seed, ("train", "val").index(split), index])
    canvas = draw_scene(rng, *size)
    colour = np.concatenate([COLOUR_BY_ID[canvas.labels], np.full((size[1], size[0], 1), 255, np.uint8)], axis=2)
    return {
        "leftImg8bit": _png(render_photo(canvas, rng)),
        "labelIds": _png(canvas.labels),
        "color": _png(colour),  # RGBA with alpha 255, like the official files
        "instanceIds": _png(canvas.instances.astype(np.uint16)),
    }


def member_paths(split: str, city: str, frame: str) -> dict[str, str]:
    return {
        "leftImg8bit": f"leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png",
        "labelIds": f"gtFine/{split}/{city}/{frame}_gtFine_labelIds.png",
        "color": f"gtFine/{split}/{city}/{frame}_gtFine_color.png",
        "instanceIds": f"gtFine/{split}/{city}/{frame}_gtFine_instanceIds.png",
    }


README = """This is a SYNTHETIC Cityscapes made by `repro data synth-city` (seed {seed}, {n_train} train and
{n_val} val frames of {w}x{h}). It copies the layout, names, label ids and colours of the official packages
(gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip) but contains no Cityscapes data.
"""


def is_made(out: str | Path, n_train: int = DEFAULT_TRAIN, n_val: int = DEFAULT_VAL,
            size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, zips: bool = False) -> bool:
    """Whether OUT is the synthetic city these arguments make (generate then returns it at once)."""
    marker = Path(out) / MARKER
    return marker.is_file() and read_json_or_empty(marker).get("params") == marker_params(n_train, n_val, size, seed, zips)


def marker_params(n_train: int, n_val: int, size: tuple[int, int], seed: int, zips: bool) -> dict:
    """What the marker file records of the arguments (and is_made compares)."""
    return {"seed": seed, "n_train": n_train, "n_val": n_val, "size": list(size), "zips": zips}


def generate(
    out: str | Path,
    n_train: int = DEFAULT_TRAIN,
    n_val: int = DEFAULT_VAL,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    zips: bool = False,
    progress: bool = True,
) -> Path:
    """Write the synthetic packages to OUT (folders, and the two zips when zips=True); returns OUT.

    OUT appears only when complete (written to a temporary folder, then renamed). Calling again with
    the same arguments returns at once; other arguments on an existing OUT are an error.
    """
    out = Path(out)
    if n_train < 1 or n_val < 1:
        raise ReproError("--train and --val must each be at least 1 frame.")
    if size[0] < 64 or size[1] < 32:
        raise ReproError(f"--size {size[0]}x{size[1]}: frames smaller than 64x32 cannot hold a street scene.")
    params = marker_params(n_train, n_val, size, seed, zips)
    if out.exists():
        if is_made(out, n_train, n_val, size, seed, zips):
            return out
        raise ReproError(
            f"{out} already exists and is not a synthetic city made with these arguments. "
            f"Choose another --out, or delete {out} first."
        )
    try:
        with partial_folder(out) as tmp:
            readme = README.format(seed=seed, n_train=n_train, n_val=n_val, w=size[0], h=size[1])
            (tmp / "README").write_text(readme)
            (tmp / "license.txt").write_text("Synthetic data generated by repro; no Cityscapes images or labels.\n")
            members = []
            jobs = [(split, i) for split, n in (("train", n_train), ("val", n_val)) for i in range(n)]
            names = {"train": frame_names("train", n_train), "val": frame_names("val", n_val)}
            for split, i in tqdm(jobs, desc="synth-city", unit="frame", disable=not progress, file=sys.stderr):
                city, frame = names[split][i]
                files = render_frame(seed, split, i, size)
                for kind, member in member_paths(split, city, frame).items():
                    path = tmp / member
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(files[kind])
                    members.append(member)
            if zips:
                for package, prefix in (("gtFine_trainvaltest.zip", "gtFine/"), ("leftImg8bit_trainvaltest.zip", "leftImg8bit/")):
                    with zipfile.ZipFile(tmp / package, "w", zipfile.ZIP_STORED) as zf:
                        for member in sorted(m for m in members if m.startswith(prefix)):
                            zf.write(tmp / member, member)
                        zf.write(tmp / "README", "README")
                        zf.write(tmp / "license.txt", "license.txt")
            (tmp / MARKER).write_text(json.dumps({"params": params, "frames": len(jobs), "repro": __version__}, indent=2) + "\n")
            os.replace(tmp, out)
    except OSError as err:  # a full disk: the partial folder is already gone
        if not is_disk_full(err):
            raise
        raise DiskFull(out.parent, f"writing the synthetic city {out}", None, free_space(out.parent),
                       fix="Free some space there, or choose an --out on another disk.") from None
    return out
