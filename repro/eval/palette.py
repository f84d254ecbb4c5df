"""Generated label maps -> Cityscapes trainIds, by the nearest colour of the official colour table.

docs/protocol.md#photo-to-labels: the original authors' advice for photo -> labels is to map every output pixel to the
class of the nearest palette colour in RGB. The palette here is the *full* Cityscapes colour table from
cityscapesscripts (every label id, void ids included), so a generator that paints "void" black or the
colour of an ignored class (parking, guard rail, ...) is classified as void, never snapped to a real class.

Mapping rule (colour -> trainId; 19 = void, the extra confusion column that always counts as wrong):
- a colour used by a trainable class maps to that class, also when void ids share it:
  (153,153,153) is pole and polegroup -> pole; (0,0,142) is car and license plate -> car;
- a colour used only by ignored ids maps to void (19): (0,0,0) = unlabeled / ego vehicle /
  rectification border / out of roi / static, and dynamic, ground, parking, rail track, guard rail,
  bridge, tunnel, caravan, trailer;
- ties between two palette colours at exactly the same distance go to the colour listed first in
  cityscapesscripts (lowest label id). Only integer RGB distances can tie exactly.

The other reading of the open point (docs/protocol.md#photo-to-labels leaves void handling open) is a switch:
`palette="train"` keeps only the 19 trainable classes' colours, so every pixel snaps to a real class and
void is never predicted. "full" (above) is the default.

Distance: squared Euclidean in RGB (default, the authors' advice) or in CIELAB (skimage.color.rgb2lab,
D65), an option. Mapping goes through a lookup table over all 2^24 RGB colours, so classifying an image
costs one gather per pixel. The table is built once per process (about a second on a CPU), kept in
memory and, when a cache folder is given, on disk.
"""

import hashlib
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from skimage.color import rgb2lab

from repro.config import COLOUR_SPACES, PALETTES
from repro.io import atomic_path

VOID = 19
N_COLOURS = 1 << 24
SPACES = COLOUR_SPACES
_CHUNK = 1 << 12  # colours per step of the table build (see build_table)


def palette(kind: str = "full") -> tuple[np.ndarray, np.ndarray]:
    """The unique Cityscapes colours (K, 3) uint8 in label-id order, and the trainId (0..18, or
    VOID) of each, following the rule in the module docstring; kind "train": the 19 class colours only."""
    if kind not in PALETTES:
        raise ValueError(f"unknown palette {kind!r}; choose one of {PALETTES}")
    colours, train_ids = [], []
    for label in sorted(CITYSCAPES_LABELS, key=lambda l: (l.id < 0, l.id)):  # license plate (-1) last
        colour = tuple(label.color)
        train_id = label.trainId if 0 <= label.trainId < VOID else VOID
        if colour in colours:
            i = colours.index(colour)
            train_ids[i] = min(train_ids[i], train_id)  # a real class wins over void
        else:
            colours.append(colour)
            train_ids.append(train_id)
    colours, train_ids = np.array(colours, dtype=np.uint8), np.array(train_ids, dtype=np.uint8)
    keep = train_ids != VOID if kind == "train" else slice(None)
    return colours[keep], train_ids[keep]


def palette_sha256(kind: str = "full") -> str:
    """Identifies the colour table (recorded in results and in the name of the disk cache)."""
    colours, train_ids = palette(kind)
    return hashlib.sha256(colours.tobytes() + train_ids.tobytes()).hexdigest()


def to_space(rgb: np.ndarray, space: str) -> np.ndarray:
    """(..., 3) uint8 RGB -> float64 coordinates in which Euclidean distance is measured. CIELAB is
    computed in float32 (three times faster over 2^24 colours; 1e-5 is far below any colour gap)."""
    if space == "rgb":
        return rgb.astype(np.float64)
    if space == "lab":
        return rgb2lab(rgb.astype(np.float32) / np.float32(255)).astype(np.float64)
    raise ValueError(f"unknown colour space {space!r}; choose one of {SPACES}")


def build_table(space: str = "rgb", kind: str = "full") -> np.ndarray:
    """trainId of every 24-bit colour (index r << 16 | g << 8 | b), uint8, 16 MiB.

    Nearest centre by argmin_k |c_k|^2 - 2 x.c_k (|x|^2 is the same for every k); in float64 this is
    exact for integer RGB, so ties resolve exactly as with a direct distance. Small chunks keep every
    array in cache and BLAS single-threaded: several times faster than large ones, and little memory."""
    colours, train_ids = palette(kind)
    centres = to_space(colours, space)
    minus_two_centres_t = -2 * centres.T
    centre_norms = (centres * centres).sum(1)
    scores = np.empty((_CHUNK, len(centres)))
    nearest = np.empty(_CHUNK, dtype=np.intp)
    offsets = np.arange(_CHUNK, dtype=np.uint32)
    table = np.empty(N_COLOURS, dtype=np.uint8)
    for start in range(0, N_COLOURS, _CHUNK):
        points = to_space(index_to_rgb(offsets + np.uint32(start)), space)
        np.matmul(points, minus_two_centres_t, out=scores)
        scores += centre_norms
        np.argmin(scores, axis=1, out=nearest)
        table[start:start + _CHUNK] = train_ids[nearest]
    return table


_TABLES: dict[tuple[str, str], np.ndarray] = {}


def lookup_table(space: str = "rgb", cache_dir: Path | None = None, kind: str = "full") -> np.ndarray:
    """The table for `space`: from memory, else from `cache_dir` (if given and valid), else built.
    With `cache_dir`, a missing file is written (atomically: a crash never leaves a truncated table)."""
    if space not in SPACES:
        raise ValueError(f"unknown colour space {space!r}; choose one of {SPACES}")
    path = Path(cache_dir) / f"cityscapes_palette_{space}_{kind}_{palette_sha256(kind)[:16]}.npy" if cache_dir else None
    table = _TABLES.get((space, kind))
    on_disk = path is not None and path.is_file()
    if table is None and on_disk:
        table = _load_table(path)
        on_disk = table is not None  # a damaged file is rebuilt and overwritten
    if table is None:
        table = build_table(space, kind)
    if path is not None and not on_disk:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, table)
    _TABLES[(space, kind)] = table
    return table


def _load_table(path: Path) -> np.ndarray | None:
    """A cached table, or None when the file is damaged or not a table (it is then rebuilt)."""
    try:
        table = np.load(path)
    except (OSError, ValueError):
        return None
    return table if table.shape == (N_COLOURS,) and table.dtype == np.uint8 and table.max() <= VOID else None


def rgb_to_index(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.shape[-1:] != (3,):
        raise ValueError(f"expected a uint8 RGB array (..., 3), got {image.dtype} {image.shape}")
    return (image[..., 0].astype(np.uint32) << 16) | (image[..., 1].astype(np.uint32) << 8) | image[..., 2]


def index_to_rgb(index: np.ndarray) -> np.ndarray:
    index = np.asarray(index, dtype=np.uint32)
    return np.stack([(index >> 16) & 255, (index >> 8) & 255, index & 255], axis=-1).astype(np.uint8)


def classify(image: np.ndarray, space: str = "rgb", cache_dir: Path | None = None, kind: str = "full") -> np.ndarray:
    """(H, W, 3) uint8 RGB label image -> (H, W) uint8 trainId map, VOID (19) for void colours."""
    return lookup_table(space, cache_dir, kind)[rgb_to_index(image)]


def classify_brute_force(image: np.ndarray, space: str = "rgb", kind: str = "full") -> np.ndarray:
    """The same mapping computed directly (distance to every palette colour, per pixel). The reference
    the table is tested against, and the baseline of benchmarks/palette_mapping.py."""
    colours, train_ids = palette(kind)
    image = np.asarray(image)
    rgb_to_index(image)  # validates dtype and shape
    pixels = image.reshape(-1, 3)
    centres = to_space(colours, space)
    nearest = np.empty(len(pixels), dtype=np.int64)
    for start in range(0, len(pixels), 1 << 16):  # chunks bound the (pixels, K, 3) difference array
        points = to_space(pixels[start:start + (1 << 16)], space)
        nearest[start:start + len(points)] = ((points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return train_ids[nearest].reshape(image.shape[:-1])
