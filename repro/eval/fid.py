"""FID and KID between two sets of images, through pytorch-fid's InceptionV3 (the TF-FID port).

The Inception weights come from `--weights PATH` or from the torch hub cache
(torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-6726825d.pth, where pytorch-fid itself puts them);
a missing cached file is fetched once from pytorch-fid's FID_WEIGHTS_URL (or $REPRO_INCEPTION_URL), its
sha256 prefix checked, by repro.weights (`repro weights get inception`). When that fails the error names
the file, the folder and the URL to fetch it from.

Reference statistics are cached as pytorch-fid caches them: an .npz holding mu and sigma (so pytorch-fid
itself reads it), here with the features too (KID and the exact small-set FID need them), in
torch.hub.get_dir()/repro-fid-stats/, keyed by the reference's content hash and the weights' hash. So
training-time FID and `repro fid` (DIR_B is the reference) compute a reference once.

FID: the Frechet distance of the 2048-d pool features: pytorch-fid's function for sets larger than
2048 images, an exact and much faster identity for smaller ones (see fid_from_features).
KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel (x.y/d + 1)^3, averaged over
random subsets (default 100 subsets of min(1000, n_a, n_b) images, fixed seed), as torch-fidelity and
clean-fid compute it. KID is unbiased, so two identical sets give a value near 0 that can be negative.

Each image is read as RGB in [0, 1] and resized to 299x299 bilinearly (align_corners=False) one by one,
which is exactly what InceptionV3(resize_input=True) does to a batch; doing it per image lets one folder
mix image sizes. Note pytorch-fid's own CLI drops the last partial batch; here every image counts.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import IMAGE_EXTENSIONS, calculate_frechet_distance
from pytorch_fid.inception import FID_WEIGHTS_URL
from tqdm import tqdm

from repro import ReproError
from repro.data.images import open_image
from repro.io import atomic_path, load_torch_file, sha256_file, sha256_files

WEIGHTS_FILE = FID_WEIGHTS_URL.rsplit("/", 1)[-1]  # pt_inception-2015-12-05-6726825d.pth
DIMS = 2048
SIZE = 299


def weights_path(weights: Path | None = None, progress: bool = True) -> Path:
    """The Inception weights file to use, or a ReproError saying where to place it."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ReproError(f"--weights {path}: no such file. It must be pytorch-fid's {WEIGHTS_FILE} "
                             f"(from {FID_WEIGHTS_URL}).")
        return path
    from repro import weights as published

    path = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    if not path.is_file():
        try:
            return published.inception(progress=progress)
        except ReproError as err:
            raise ReproError(f"FID needs the Inception weights file {WEIGHTS_FILE}, and it is not at {path}: {err} "
                             f"Or pass --weights PATH (weights=PATH in Python).") from None
    return path


def is_published(sha256: str) -> bool:
    """Whether Inception weights with this sha256 are pytorch-fid's published file (its name carries the prefix);
    any other file of the right shapes loads too, and says loudly that it is not the published one."""
    from repro.weights import INCEPTION

    if sha256.startswith(INCEPTION.hash_prefix):
        return True
    bar = "!" * 78
    print(f"\n{bar}\nWARNING: these Inception weights (sha256 {sha256[:16]}...) are NOT pytorch-fid's published "
          f"{WEIGHTS_FILE}\n(its sha256 starts with {INCEPTION.hash_prefix}): FID/KID computed with them are not "
          f"comparable with published numbers.\nRecorded in the result as weights.published = false.\n{bar}\n",
          file=sys.stderr)
    return False


class FIDInception(nn.Module):
    """pytorch-fid's FID network (InceptionV3 to the 2048-d pool3 features), block for block as its
    InceptionV3([3]) builds it: torchvision's Inception3 with pytorch-fid's FID blocks, the same input
    scaling and resize. Built here from a local state_dict because pytorch-fid's own builder always fetches
    the weights from its URL; `forward` returns a one-element list, as InceptionV3 does."""

    def __init__(self, state_dict: dict):
        super().__init__()
        net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
        net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
        net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
        net.load_state_dict(state_dict)
        self.blocks = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)  # resize_input
        return [self.blocks(2 * x - 1)]  # normalize_input: [0, 1] -> [-1, 1]


def load_inception(weights: Path | None = None, device: str = "cpu", progress: bool = True) -> FIDInception:
    """pytorch-fid's FID network (pool3, 2048-d) with the weights of `weights_path(weights)`."""
    path = weights_path(weights, progress)
    state_dict = load_torch_file(path, "Inception weights", f"Fetch {WEIGHTS_FILE} again from {FID_WEIGHTS_URL}.")
    try:
        model = FIDInception(state_dict)
    except RuntimeError as err:  # wrong keys or shapes
        raise ReproError(f"{path} is not pytorch-fid's {WEIGHTS_FILE}: {str(err)[:300]}")
    return model.eval().to(device)


def image_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ReproError(f"{folder} is not a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS)
    if len(files) < 2:
        raise ReproError(f"{folder} holds {len(files)} image(s); FID/KID need at least 2 (and thousands for stable numbers).")
    return files


def load_image(path: Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1], like torchvision's ToTensor in pytorch-fid."""
    array = np.asarray(open_image(path, fix="replace or delete it").convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _batches(images, batch_size: int):
    """Yields lists of (3, H, W) [0, 1] tensors from files or tensors."""
    batch = []
    for image in images:
        batch.append(load_image(image) if isinstance(image, (str, Path)) else image)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def features(model: "FIDInception", images, device: str = "cpu", batch_size: int = 50, progress: bool = False,
             total: int | None = None) -> np.ndarray:
    """(N, 2048) float64 pool features of `images`: an iterable of image paths or (3, H, W) tensors in [0, 1]."""
    out = []
    bar = tqdm(total=total, desc="inception", unit="img", disable=not progress)
    for batch in _batches(images, batch_size):
        x = torch.stack([F.interpolate(im[None].float().to(device), size=(SIZE, SIZE), mode="bilinear",
                                       align_corners=False)[0] for im in batch])
        out.append(model(x)[0].flatten(1).cpu().double().numpy())
        bar.update(len(batch))
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, DIMS))


def stats_dir() -> Path:
    return Path(torch.hub.get_dir()) / "repro-fid-stats"


def content_sha256(images) -> str:
    """The cache key of a reference set: its images in order (files by name and content, tensors by value)."""
    digest = hashlib.sha256()
    for image in images:
        if isinstance(image, (str, Path)):
            digest.update(Path(image).name.encode() + b"\0" + sha256_file(image).encode() + b"\n")
        else:
            array = image.detach().float().cpu().numpy()
            digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def reference_features(model: "FIDInception", images, weights_sha256: str, device: str = "cpu", batch_size: int = 50,
                       progress: bool = False, cache_dir: Path | None = None) -> tuple[np.ndarray, Path, bool]:
    """(features, cache file, whether it was a cache hit) of a reference set: an .npz of mu, sigma (pytorch-fid's
    keys) and the features, named by the images' content hash and the Inception weights' hash."""
    images = list(images)
    content = content_sha256(images)
    path = Path(cache_dir or stats_dir()) / f"reference-{content[:20]}-inception-{weights_sha256[:12]}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                if str(cached["content_sha256"]) == content and str(cached["weights_sha256"]) == weights_sha256:
                    return cached["features"], path, True
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache file is recomputed and replaced
    feats = features(model, images, device, batch_size, progress, total=len(images))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=feats.mean(0), sigma=np.cov(feats, rowvar=False), features=feats,
                 content_sha256=np.array(content), weights_sha256=np.array(weights_sha256))
    return feats, path, False


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr sqrt(S_a S_b), S = np.cov (ddof 1) as in pytorch-fid.

    With S = A^T A (A = centred features / sqrt(n - 1)), Tr sqrt(S_a S_b) is exactly the nuclear norm
    of the small n_a x n_b matrix A_a A_b^T. For sets smaller than the 2048 dims (training-time subsets,
    horse2zebra's ~120 test images) that SVD replaces pytorch-fid's 2048 x 2048 scipy sqrtm: seconds
    become milliseconds, and the rank-deficient sqrtm's inaccuracy is avoided. Larger sets go through
    pytorch-fid's calculate_frechet_distance unchanged."""
    if min(len(a), len(b)) > a.shape[1]:
        return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))
    centred_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    diff = a.mean(0) - b.mean(0)
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    return float(diff @ diff + (centred_a ** 2).sum() + (centred_b ** 2).sum() - 2 * trace_sqrt)


def kid_from_features(a: np.ndarray, b: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation over subsets of the unbiased MMD^2, kernel (x.y/d + 1)^3."""
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def _as_images(images, value_range):
    """Folder, or (N, 3, H, W) tensor / list of paths or (3, H, W) tensors, tensors in `value_range`
    -> (list for `features`: paths and [0, 1] tensors, count)."""
    if isinstance(images, (str, Path)):
        files = image_files(images)
        return files, len(files)
    low, high = value_range
    scale = lambda t: ((t.detach().float() - low) / (high - low)).clamp(0, 1)
    if isinstance(images, torch.Tensor):
        images = list(scale(images))
    else:
        images = [scale(im) if isinstance(im, torch.Tensor) else Path(im) for im in images]
    return images, len(images)


class FIDScorer:
    """FID/KID against a fixed reference set, for logging during training.

    reference_images / score(images): a folder, an (N, 3, H, W) tensor, or a list of image paths or
    (3, H, W) tensors; tensors hold values in `value_range` (default (-1, 1), what the generators output). The reference features are
    computed once (and cached across runs, see reference_features; cache=False skips the cache); `max_images`
    keeps the first N (sorted files or tensor order) so the subset is fixed.
    """

    def __init__(self, reference_images, device: str = "cpu", weights: Path | None = None, batch_size: int = 50,
                 max_images: int | None = None, value_range=(-1.0, 1.0), kid_subsets: int = 100,
                 kid_subset_size: int = 1000, cache: bool = True):
        self.device, self.batch_size, self.max_images, self.value_range = device, batch_size, max_images, value_range
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.model = load_inception(weights, device)
        weights_sha256 = sha256_file(weights_path(weights))
        self.published = is_published(weights_sha256)  # says loudly when it is not
        if cache:
            self.reference, self.cache_file, self.cache_hit = reference_features(
                self.model, self._images(reference_images), weights_sha256, device, batch_size)
        else:
            self.reference = self.features(reference_images)

    def _images(self, images) -> list:
        images, n = _as_images(images, self.value_range)
        if self.max_images is not None:
            images, n = images[: self.max_images], min(n, self.max_images)
        if n < 2:
            raise ReproError(f"FID/KID need at least 2 images, got {n}.")
        return list(images)

    def features(self, images) -> np.ndarray:
        return features(self.model, self._images(images), self.device, self.batch_size)

    def score(self, images) -> dict:
        generated = self.features(images)
        kid, kid_std = kid_from_features(generated, self.reference, self.kid_subsets, self.kid_subset_size)
        return {"fid": fid_from_features(generated, self.reference), "kid": kid, "kid_std": kid_std,
                "n_images": len(generated), "n_reference": len(self.reference)}


def fid_between_folders(dir_a: Path, dir_b: Path, weights: Path | None = None, device: str = "cpu",
                        batch_size: int = 50, kid_subsets: int = 100, kid_subset_size: int = 1000,
                        progress: bool = True, cache: bool = True) -> dict:
    """FID and KID between two image folders, as a result dict (scores, inputs and their hashes, weights).
    dir_b is the reference: its statistics come from (and go to) the cache unless cache=False."""
    files_a, files_b = image_files(dir_a), image_files(dir_b)
    model = load_inception(weights, device, progress)
    path = weights_path(weights, progress)
    weights_sha256 = sha256_file(path)
    published = is_published(weights_sha256)
    feats_a = features(model, files_a, device, batch_size, progress, total=len(files_a))
    if cache:
        feats_b, cache_file, hit = reference_features(model, files_b, weights_sha256, device, batch_size, progress)
    else:
        feats_b, cache_file, hit = features(model, files_b, device, batch_size, progress, total=len(files_b)), None, False
    kid, kid_std = kid_from_features(feats_a, feats_b, kid_subsets, kid_subset_size)
    return {
        "task": "fid",
        "metrics": {"fid": fid_from_features(feats_a, feats_b), "kid": kid, "kid_std": kid_std},
        "protocol": {"features": "pytorch-fid InceptionV3 pool3 (2048-d)", "resize": "bilinear to 299x299 per image",
                     "fid_trace_sqrt": "pytorch-fid sqrtm" if min(len(files_a), len(files_b)) > DIMS
                     else "nuclear norm of A_a A_b^T (exact, fewer images than dims)",
                     "kid_kernel": "(x.y/d + 1)^3", "kid_subsets": kid_subsets,
                     "kid_subset_size": min(kid_subset_size, len(files_a), len(files_b)), "kid_seed": 0},
        "inputs": {"a": str(dir_a), "a_images": len(files_a), "a_sha256": sha256_files(files_a),
                   "b": str(dir_b), "b_images": len(files_b), "b_sha256": sha256_files(files_b)},
        "weights": {"path": str(path), "sha256": weights_sha256, "published": published},
        "reference_cache": {"file": str(cache_file) if cache_file else None, "hit": hit},
    }
