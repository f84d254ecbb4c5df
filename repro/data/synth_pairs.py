"""A synthetic horse2zebra: plain and striped animals on grass, as the Berkeley archive horse2zebra.zip.

Why: the FID reproduction (repro.reproduce_fid) is tested end to end on the CPU, downloads included, and the
real archive is 117 MB. `archive()` writes a zip with the real one's layout (horse2zebra/trainA, trainB,
testA, testB holding JPEGs), so the same download, extraction, training, translation and scoring code runs on
it; nothing downstream knows it is synthetic. It is a fixture, never a stand-in for the real numbers.

Each image is a scene: sky and a horizon, grass with smooth texture and blades, and one four-legged animal
(body, neck, head, legs, tail) at a random place, size and facing. Domain A (horses): a plain brown or
chestnut coat. Domain B (zebras): a white coat with dark vertical stripes. So A <-> B is a learnable
translation of texture with the shape kept, as horse2zebra is.

Deterministic: image i of a folder is drawn from numpy's Generator seeded with (seed, folder, i), and the
zip's member times are fixed, so the same arguments give the same bytes (with the same Pillow/libjpeg).
"""

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from repro.io import atomic_path

FOLDERS = {"trainA": 0, "trainB": 1, "testA": 2, "testB": 3}  # A = horses (plain), B = zebras (striped)
DEFAULT_COUNTS = {"trainA": 60, "trainB": 60, "testA": 24, "testB": 20}  # unequal, as the real 1067/1334/120/140
DEFAULT_SIZE = 64
JPEG_QUALITY = 95


def _smooth(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Smooth noise in [0, 1] of shape (size, size): a coarse random grid upsampled bilinearly."""
    coarse = Image.fromarray((rng.random((size // cell + 2, size // cell + 2)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((size + 2 * cell, size + 2 * cell), Image.BILINEAR))[cell:-cell, cell:-cell] / 255.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    horizon = int(size * rng.uniform(0.25, 0.45))
    image = np.zeros((size, size, 3))
    sky = np.array([rng.uniform(120, 170), rng.uniform(160, 200), rng.uniform(210, 245)])
    image[:horizon] = sky * (0.9 + 0.1 * np.linspace(0, 1, horizon))[:, None, None]
    grass = np.array([rng.uniform(50, 90), rng.uniform(110, 160), rng.uniform(30, 60)])
    texture = _smooth(rng, size, max(2, size // 8))[horizon:, :, None]
    image[horizon:] = grass * (0.75 + 0.5 * texture)
    return image.clip(0, 255)


def _animal_mask(rng: np.random.Generator, size: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A white-on-black mask of one four-legged animal, and its body box (x0, y0, x1, y1)."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    s = size * rng.uniform(0.45, 0.7)  # body length
    cx, ground = size * rng.uniform(0.35, 0.65), size * rng.uniform(0.8, 0.95)
    facing = rng.choice([-1, 1])
    body_h, leg = s * 0.38, s * 0.42
    x0, x1 = cx - s / 2, cx + s / 2
    y1 = ground - leg
    y0 = y1 - body_h
    draw.ellipse([x0, y0, x1, y1], fill=255)
    leg_w = max(1.0, s * 0.07)
    for fx in (0.12, 0.28, 0.7, 0.86):
        lx = x0 + fx * s
        draw.rectangle([lx - leg_w / 2, y1 - body_h * 0.3, lx + leg_w / 2, ground], fill=255)
    front = x1 if facing > 0 else x0
    neck_top = (front + facing * s * 0.18, y0 - s * 0.25)
    draw.polygon([(front - facing * s * 0.12, y0 + body_h * 0.3), (front, y0 + body_h * 0.1),
                  (neck_top[0] + facing * s * 0.06, neck_top[1]), (neck_top[0] - facing * s * 0.06, neck_top[1])],
                 fill=255)
    hx, hy = neck_top
    draw.ellipse([min(hx, hx + facing * s * 0.3), hy - s * 0.06, max(hx, hx + facing * s * 0.3), hy + s * 0.1], fill=255)
    back = x0 if facing > 0 else x1
    draw.line([(back, y0 + body_h * 0.2), (back - facing * s * 0.1, y0 + body_h * 0.9)], fill=255,
              width=max(1, int(s * 0.04)))
    return mask, (x0, y0, x1, y1)


def _coat(rng: np.random.Generator, size: int, striped: bool) -> np.ndarray:
    """The animal's coat over the whole canvas: plain brown, or white with dark vertical stripes."""
    shade = 0.85 + 0.3 * _smooth(rng, size, max(2, size // 6))[..., None]
    if not striped:
        coat = np.array([rng.uniform(90, 150), rng.uniform(50, 85), rng.uniform(20, 50)])
        return (coat * shade).clip(0, 255)
    period = size * rng.uniform(0.07, 0.11)
    x, y = np.meshgrid(np.arange(size), np.arange(size))
    wave = np.sin(2 * np.pi * (x + 2.0 * np.sin(y / (size * 0.15) + rng.uniform(0, 6))) / period + rng.uniform(0, 6))
    light, dark = np.array([235.0, 232.0, 225.0]), np.array([25.0, 22.0, 20.0])
    coat = np.where((wave > 0)[..., None], light, dark)
    return (coat * shade).clip(0, 255)


def render(seed: int, folder: str, index: int, size: int = DEFAULT_SIZE) -> bytes:
    """The JPEG bytes of image `index` of `folder` (trainA/trainB/testA/testB)."""
    rng = np.random.default_rng([seed, FOLDERS[folder], index])
    image = _background(rng, size)
    mask, _ = _animal_mask(rng, size)
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float64)[..., None] / 255.0
    image = image * (1 - alpha) + _coat(rng, size, striped=folder.endswith("B")) * alpha
    image = (image + rng.normal(0, 3.0, image.shape)).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def archive(out: Path, name: str = "horse2zebra", counts: dict | None = None, size: int = DEFAULT_SIZE,
            seed: int = 0) -> Path:
    """Writes OUT (a zip) holding NAME/{trainA,trainB,testA,testB}/{i}_{folder}.jpg, as the Berkeley archives
    are laid out; returns OUT. Member times are fixed so the bytes depend only on the arguments."""
    counts = DEFAULT_COUNTS | (counts or {})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for folder in FOLDERS:
            zf.writestr(zipfile.ZipInfo(f"{name}/{folder}/", date_time=(2017, 3, 30, 0, 0, 0)), b"")
            for i in range(counts[folder]):
                info = zipfile.ZipInfo(f"{name}/{folder}/n{i:05d}_{folder}.jpg", date_time=(2017, 3, 30, 0, 0, 0))
                zf.writestr(info, render(seed, folder, i, size))
    return out
