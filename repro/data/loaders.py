"""Image folders decoded once into uint8 tensors, and the paper's augmentation applied on the device.

Resizing to the load size is deterministic, so it happens once at load time; what changes every
iteration (crop offset, flip) is a cheap index on a tensor that can live on the GPU. The random
choices come from an explicit torch.Generator, so a seeded run, and a resumed one, sees the same data.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from repro import ReproError
from repro.config import PAIRINGS, RESIZE_FILTERS
from repro.data.frames import frame_id
from repro.data.images import open_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# Pillow's resize filters by name: the one table every resize in the project (training data, dataset
# preparation, the segmenter's photos) looks its --resize-filter / --resample / resize_filter up in.
FILTERS = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
           "hamming": Image.Resampling.HAMMING, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
assert tuple(FILTERS) == RESIZE_FILTERS, "repro.config.RESIZE_FILTERS lists these names"


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if folder.is_file():
        raise ReproError(f"{folder} is a file, but a folder of images is needed here: give the folder that holds it "
                         f"({folder.parent}), or put the images to use in a folder of their own.")
    if not folder.is_dir():
        raise ReproError(f"image folder {folder} does not exist. Check --data, or prepare the dataset "
                         f"(`repro data get NAME` or `repro data cityscapes ...`).")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ReproError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def read_rgb(path: Path) -> Image.Image:
    """An 8-bit RGB image. Grayscale and palette images are converted, RGBA loses its alpha (Cityscapes
    colour maps are RGBA with alpha 255); 16-bit and unreadable files are refused with the file named."""
    image = open_image(path, fix="re-extract the dataset, or delete the file")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F") or image.mode.startswith("I;16"):
        raise ReproError(f"{path} is a {image.mode} (16-bit or float) image; convert it to 8-bit RGB first "
                         f"(e.g. `PIL.Image.open(f).point(lambda v: v / 256).convert('RGB')`).")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def load_image(path: Path, size: int | None = None, resize_filter: str = "bicubic") -> torch.Tensor:
    """uint8 tensor (3, H, W), resized to size x size when `size` is given."""
    image = read_rgb(path)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), FILTERS[resize_filter])
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def load_folder(folder: Path, size: int | None = None, resize_filter: str = "bicubic", desc: str | None = None,
                workers: int = 4, progress: bool = True) -> tuple[torch.Tensor, list[str]]:
    """All images of a folder, resized to size x size, as one uint8 tensor (N, 3, size, size), with names."""
    files = list_images(folder)
    with ThreadPoolExecutor(workers) as pool:  # PIL decodes outside the GIL
        images = list(tqdm(pool.map(lambda p: load_image(p, size, resize_filter), files), total=len(files),
                           desc=desc or f"loading {Path(folder).name}", unit="img", leave=False, disable=not progress))
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ReproError(f"images in {folder} differ in size ({sorted(shapes)[:3]}...); give a load size to resize them")
    return torch.stack(images), [p.name for p in files]


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], as both original codes normalise."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, truncating like the port's tensor2im ((x + 1) / 2 * 255, then astype)."""
    return ((images.detach().float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)


def random_crop_flip(images: torch.Tensor, crop: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """One random crop offset and one coin flip for the whole batch (batch size 1 in the paper);
    aligned pairs pass both images stacked on the channel axis so they get the same crop and flip."""
    _, _, h, w = images.shape
    top = int(torch.randint(h - crop + 1, (), generator=generator))
    left = int(torch.randint(w - crop + 1, (), generator=generator))
    out = images[:, :, top:top + crop, left:left + crop]
    if flip and torch.rand((), generator=generator).item() < 0.5:
        out = out.flip(3)
    return out


def unaligned_order(n_x: int, n_y: int, pairing: str, generator: torch.Generator, port_a: str = "y") -> torch.Tensor:
    """(max(n_x, n_y), 2) indices into X and Y for one epoch.

    lua     the Lua code (data/dataset.lua with serial_batches = 0): every iteration draws an X and a Y image
            uniformly at random, independently, with replacement (here: all X draws, then all Y draws);
    port    the PyTorch port (unaligned_dataset.py): a shuffled order of range(max(|A|, |B|)) taken modulo |A|
            walks domain A (the `*A` folder, `port_a`: photos Y for Cityscapes), B is drawn uniformly;
    larger  this project before the switch existed: a shuffled pass over the larger domain (X on a tie), the
            other drawn uniformly. Kept bit for bit, so runs made with it resume and reproduce.
    """
    n = max(n_x, n_y)
    if pairing == "lua":
        x = torch.randint(n_x, (n,), generator=generator)
        return torch.stack([x, torch.randint(n_y, (n,), generator=generator)], 1)
    if pairing == "port":
        walk = torch.randperm(n, generator=generator)
        if port_a == "x":
            return torch.stack([walk % n_x, torch.randint(n_y, (n,), generator=generator)], 1)
        return torch.stack([torch.randint(n_x, (n,), generator=generator), walk % n_y], 1)
    if pairing == "larger":
        order = torch.randperm(n, generator=generator)
        other = torch.randint(min(n_x, n_y), (n,), generator=generator)
        return torch.stack([order, other] if n_x >= n_y else [other, order], 1)
    raise ValueError(f"unknown pairing {pairing!r}; choose one of {PAIRINGS}")


class UnalignedData:
    """The two domains of an unpaired dataset, in memory. An epoch is max(|X|, |Y|) pairs, never aligned,
    drawn by `pairing` (see unaligned_order)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, crop: int, flip: bool, device="cpu", pairing: str = "lua",
                 port_a: str = "y"):
        self.x, self.y = x.to(device), y.to(device)
        self.crop, self.flip, self.pairing, self.port_a = crop, flip, pairing, port_a

    @classmethod
    def from_folders(cls, x_dir: Path, y_dir: Path, load_size: int, crop: int, flip: bool,
                     resize_filter: str, device="cpu", pairing: str = "lua", port_a: str = "y",
                     progress: bool = True) -> "UnalignedData":
        x, _ = load_folder(x_dir, load_size, resize_filter, desc="loading X (labels)", progress=progress)
        y, _ = load_folder(y_dir, load_size, resize_filter, desc="loading Y (photos)", progress=progress)
        return cls(x, y, crop, flip, device, pairing, port_a)

    def __len__(self) -> int:
        return max(len(self.x), len(self.y))

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """(len, 2) indices into X and Y for one epoch."""
        return unaligned_order(len(self.x), len(self.y), self.pairing, generator, self.port_a)

    def batch(self, pairs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops and flips X and Y independently (the paper's augmentation), scaled to [-1, 1]. `pairs` are rows
        of the epoch order on the images' device (the loop moves each epoch's order there once: to_device)."""
        x = random_crop_flip(self.x.index_select(0, pairs[:, 0]), self.crop, self.flip, generator)
        y = random_crop_flip(self.y.index_select(0, pairs[:, 1]), self.crop, self.flip, generator)
        return to_model_range(x), to_model_range(y)


def split_side_by_side(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pix2pix archives store each pair as one image, A on the left and B on the right."""
    w = images.shape[-1]
    if w % 2:
        raise ReproError(f"side-by-side pair images must have an even width, got {w}")
    return images[..., : w // 2], images[..., w // 2:]


def load_aligned(folder_a: Path, folder_b: Path | None, load_size: int, resize_filter: str = "bicubic",
                 progress: bool = True):
    """Paired images: either two folders whose files pair up, or (folder_b=None) one folder of
    side-by-side pairs. Returns uint8 tensors (a, b) resized to load_size, and folder_a's names.

    Two folders pair by Cityscapes frame id when the names carry one (trainA/aachen_000000_000019_leftImg8bit.png
    with trainB/aachen_000000_000019_gtFine_color.png, as `repro data cityscapes` writes them), else by the
    file name without its suffix."""
    if folder_b is None:
        files = list_images(folder_a)
        pairs = [load_image(p) for p in files]
        a, b = zip(*(split_side_by_side(p) for p in pairs))
        resize = lambda t: torch.from_numpy(np.asarray(Image.fromarray(t.permute(1, 2, 0).numpy()).resize(
            (load_size, load_size), FILTERS[resize_filter])).copy()).permute(2, 0, 1)
        return torch.stack([resize(t) for t in a]), torch.stack([resize(t) for t in b]), [p.name for p in files]
    pair_key = lambda name: frame_id(name) or Path(name).stem
    keys_a, keys_b = ([pair_key(p.name) for p in list_images(folder)] for folder in (folder_a, folder_b))
    for folder, keys in ((folder_a, keys_a), (folder_b, keys_b)):
        if len(set(keys)) != len(keys):
            raise ReproError(f"{folder} holds two images of the same frame; keep one file per frame for paired training")
    unmatched = sorted(set(keys_a) ^ set(keys_b))
    if unmatched:
        raise ReproError(f"{folder_a} and {folder_b} must hold the same frames (Cityscapes frame id, else file name) "
                         f"for paired training; unmatched: {unmatched[:5]}")
    a, names = load_folder(folder_a, load_size, resize_filter, progress=progress)
    b, _ = load_folder(folder_b, load_size, resize_filter, progress=progress)
    row_of_b = {key: i for i, key in enumerate(keys_b)}
    b = b[[row_of_b[key] for key in keys_a]]  # b's rows in a's order
    return a, b, names


class AlignedData:
    """Paired label maps and photos (same frame, same row), in memory, for pix2pix. The pair gets one crop
    and one flip, so x and y stay aligned; an epoch is a shuffled pass over the pairs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, crop: int, flip: bool, device="cpu"):
        if len(x) != len(y):
            raise ValueError(f"paired data needs as many label maps as photos, got {len(x)} and {len(y)}")
        self.x, self.y = x.to(device), y.to(device)
        self.crop, self.flip = crop, flip

    @classmethod
    def from_folders(cls, x_dir: Path, y_dir: Path, load_size: int, crop: int, flip: bool,
                     resize_filter: str, device="cpu", progress: bool = True) -> "AlignedData":
        x, y, _ = load_aligned(x_dir, y_dir, load_size, resize_filter, progress)
        return cls(x, y, crop, flip, device)

    def __len__(self) -> int:
        return len(self.x)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """(len, 2) indices into X and Y for one epoch: the same row on both sides."""
        order = torch.randperm(len(self), generator=generator)
        return torch.stack([order, order], 1)

    def batch(self, pairs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One crop and flip for the pair; `pairs` on the images' device, as for UnalignedData.batch."""
        rows = pairs[:, 0]
        both = random_crop_flip(torch.cat([self.x.index_select(0, rows), self.y.index_select(0, rows)], 1),
                                self.crop, self.flip, generator)
        return to_model_range(both[:, :3]), to_model_range(both[:, 3:])
