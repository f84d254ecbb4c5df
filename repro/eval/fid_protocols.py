"""The FID protocols later papers use on CycleGAN's translations, side by side, and KID with a stated subset.

Two FID protocols, both through pytorch-fid's Inception weights (repro.eval.fid.FIDInception, a local file):
- "pytorch_fid": pytorch-fid's own preprocessing (`python -m pytorch_fid REAL FAKE`, the protocol of CUT's
  README, taesungp/contrastive-unpaired-translation): RGB in [0, 1], bilinear resize to 299 inside the
  network (torch, align_corners=False). clean-fid's `legacy_pytorch` mode is the same computation.
- "clean": clean-fid's `clean` preprocessing (GaParmar/clean-fid, cleanfid/resize.py build_resizer("clean")):
  each channel of the uint8 image resized to 299 by PIL's bicubic filter on floats, never quantised back to
  uint8. We call clean-fid's own resizer. Its feature network is NOT ours: clean-fid's clean mode runs
  NVIDIA's TorchScript Inception (inception-2015-12-05.pt from the stylegan2-ada metrics folder,
  cleanfid/inception_torchscript.py), a conversion of the same TF-FID graph that pytorch-fid's weights come
  from. We feed the clean-resized images to pytorch-fid's weights, so this column is "clean preprocessing,
  pytorch-fid network": close to, but never claimed equal to, clean-fid's published clean-FIDs.
- "clean_fid" (only with a local copy of that TorchScript file, `--clean-fid-network PATH`): the clean resize
  through clean-fid's own network wrapper (cleanfid.inception_torchscript.InceptionV3W, nothing fetched): clean-fid's
  `clean` mode itself.
KID (Binkowski et al. 2018): unbiased MMD^2, kernel (x.y/d + 1)^3, on the pytorch_fid features, averaged over
KID_SUBSETS subsets of min(KID_MAX_SUBSET, n_real, n_fake) images drawn with seed KID_SEED. That subset rule is
clean-fid's (cleanfid/fid.py kernel_distance) and torch-fidelity's default size (1000) capped at the set size,
so on horse2zebra (120 translated horses, 140 real zebras) every subset holds all 120 fakes and 120 of the
140 reals; clean-fid draws its subsets unseeded, we fix the seed so a rerun gives the same number.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from repro import ReproError
from repro.data.images import open_image
from repro.eval import fid

KID_SUBSETS, KID_MAX_SUBSET, KID_SEED = 100, 1000, 0
CLEAN_FID_FILE = "inception-2015-12-05.pt"  # clean-fid's clean-mode network, from NVIDIA's stylegan2-ada metrics folder


@dataclass(frozen=True)
class Protocol:
    key: str
    label: str
    resize: str
    network: str
    same_as: str  # which public tool computes exactly this (or how close it is)


PROTOCOLS = {p.key: p for p in (
    Protocol("pytorch_fid", "FID (pytorch-fid)",
             "RGB [0, 1], bilinear to 299x299 (torch, align_corners=False)",
             "pytorch-fid InceptionV3 pool3 (pt_inception-2015-12-05)",
             "pytorch-fid's CLI and clean-fid mode legacy_pytorch (CUT's protocol)"),
    Protocol("clean", "FID (clean resize)",
             "clean-fid's clean resizer: PIL bicubic per channel on floats to 299x299, no uint8 rounding",
             "pytorch-fid InceptionV3 pool3 (pt_inception-2015-12-05)",
             "clean-fid mode clean resizes the same way but runs NVIDIA's TorchScript Inception: close, not equal"),
    Protocol("clean_fid", "FID (clean-fid clean)",
             "clean-fid's clean resizer, as above",
             f"NVIDIA's TorchScript Inception ({CLEAN_FID_FILE}) through clean-fid's InceptionV3W",
             "clean-fid mode clean"),
)}
OPTIONAL = ("clean_fid",)  # computed only when its network file is given


def clean_pixels(path: Path) -> torch.Tensor:
    """(3, 299, 299) float32 in [0, 255]: the RGB image through clean-fid's `clean` resizer."""
    from cleanfid.resize import build_resizer

    array = np.asarray(open_image(path, fix="replace or delete it").convert("RGB"))
    resized = build_resizer("clean")(array)  # (299, 299, 3)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def clean_resize(path: Path) -> torch.Tensor:
    """clean_pixels in [0, 1], what pytorch-fid's network takes."""
    return clean_pixels(path) / 255.0


def load_clean_fid_network(path: Path, device: str = "cpu") -> torch.nn.Module:
    """clean-fid's clean-mode network from a local copy of its TorchScript file (never downloaded here)."""
    from cleanfid.inception_torchscript import InceptionV3W

    path = Path(path)
    if path.name != CLEAN_FID_FILE or not path.is_file():
        raise ReproError(f"--clean-fid-network {path}: expected an existing file named {CLEAN_FID_FILE} (clean-fid's "
                         f"network, https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                         f"{CLEAN_FID_FILE}); clean-fid loads it by that name.")
    try:
        return InceptionV3W(str(path.parent), download=False, resize_inside=False).eval().to(device)
    except (RuntimeError, AttributeError, ValueError) as err:
        raise ReproError(f"{path} is not clean-fid's TorchScript Inception: {str(err)[:200]}") from None


@torch.no_grad()
def protocol_features(model: fid.FIDInception, files: list[Path], protocol: str, device: str = "cpu",
                      batch_size: int = 50, clean_fid_network: torch.nn.Module | None = None) -> np.ndarray:
    """(N, 2048) features of image files under one protocol. A clean-resized image is already 299x299, so the
    network's own bilinear resize leaves it unchanged."""
    if protocol == "clean_fid":  # clean-fid's network takes [0, 255] pixels
        batches = [torch.stack([clean_pixels(f) for f in files[i:i + batch_size]]).to(device)
                   for i in range(0, len(files), batch_size)]
        return np.concatenate([clean_fid_network(x).cpu().double().numpy() for x in batches])
    images = files if protocol == "pytorch_fid" else (clean_resize(f) for f in files)
    return fid.features(model, images, device, batch_size, total=len(files))


def folder_features(model: fid.FIDInception, folder: Path, device: str = "cpu", batch_size: int = 50,
                    clean_fid_network: torch.nn.Module | None = None) -> dict:
    """protocol -> (N, 2048) features of every image of `folder` (clean_fid only with its network)."""
    files = fid.image_files(folder)
    keys = [k for k in PROTOCOLS if k not in OPTIONAL or clean_fid_network is not None]
    return {key: protocol_features(model, files, key, device, batch_size, clean_fid_network) for key in keys}


def score(fake: dict, real: dict) -> dict:
    """FID under every protocol and KID between the folder_features of translations (`fake`) and of the
    real images of the target domain (`real`)."""
    keys = [key for key in PROTOCOLS if key in fake and key in real]
    metrics = {f"fid_{key}": fid.fid_from_features(fake[key], real[key]) for key in keys}
    kid, kid_std = fid.kid_from_features(fake["pytorch_fid"], real["pytorch_fid"], KID_SUBSETS, KID_MAX_SUBSET, KID_SEED)
    n_fake, n_real = len(fake["pytorch_fid"]), len(real["pytorch_fid"])
    return {
        "metrics": metrics | {"kid": kid, "kid_std_over_subsets": kid_std},
        "n_fake": n_fake, "n_real": n_real,
        "protocols": {key: asdict(PROTOCOLS[key]) for key in keys},
        "kid": {"kernel": "(x.y/d + 1)^3", "features": "pytorch_fid", "subsets": KID_SUBSETS,
                "subset_size": min(KID_MAX_SUBSET, n_fake, n_real), "seed": KID_SEED},
    }
