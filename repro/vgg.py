"""VGG16 up to relu4_2, the feature space of the "Feature loss + GAN" baseline.

The weights are torchvision's ImageNet VGG16, read from the torch hub cache
(`torch.hub.get_dir()/checkpoints/vgg16-397923af.pth`, where `torchvision.models.vgg16(weights="DEFAULT")`
puts them). A missing file is fetched once, hash-checked, through repro.weights (`repro weights get vgg16`);
when that fails the error says where the file goes, or how to run without it (`feature_weights = "random"`,
which is not the paper's method).
"""

from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from repro import ReproError, weights
from repro.io import load_torch_file

VGG16_FILE = weights.VGG16.file_name  # vgg16-397923af.pth
TRUNK = cfgs["D"][:12]  # VGG16's layers conv1_1 ... conv4_2: make_layers gives torchvision's features[:21],
RELU4_2 = 21            # which ends with relu4_2, with the same module indices (so the same state_dict keys)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_weights_path() -> Path:
    return weights.VGG16.path()


def imagenet_vgg16(fetch: bool = True) -> Path:
    """torchvision's ImageNet VGG16 file in the torch hub cache. A missing one is fetched there once, hash-checked
    (repro.weights: torchvision's URL or $REPRO_VGG16_URL) when `fetch`; returns the path, there or not, and raises
    ReproError when the fetch fails. The one place both users of the file (Feature loss + GAN, the FCN-8s trunk)
    get it from."""
    path = vgg16_weights_path()
    return weights.vgg16() if fetch and not path.is_file() else path


def load_imagenet_trunk(trunk: nn.Sequential, path: Path) -> None:
    """The `features.*` tensors of torchvision's vgg16 file that the trunk holds, loaded strictly; a missing
    file is fetched first."""
    if not path.is_file():
        try:
            path = imagenet_vgg16()
        except ReproError as err:
            raise ReproError(
                f"Feature loss + GAN needs torchvision's ImageNet VGG16 at {path}, which does not exist, and {err} "
                f"Or set feature_weights = \"random\" in the config (seeded random features: NOT the paper's "
                f"method).") from None
    try:
        state = load_torch_file(path, "VGG16 weights", "")
        wanted = {k.removeprefix("features."): v for k, v in state.items()
                  if k.startswith("features.") and int(k.split(".")[1]) < RELU4_2}
        trunk.load_state_dict(wanted, strict=True)
    except Exception as err:
        raise ReproError(f"{path} is not torchvision's VGG16 weights ({str(err).splitlines()[0]}); delete it and "
                         f"fetch it again with `repro weights get vgg16`") from None


def random_init(trunk: nn.Sequential, seed: int) -> None:
    """torchvision's VGG init (Kaiming normal, fan_out, zero bias), drawn from the run's seed so that a
    resumed run rebuilds the same features."""
    generator = torch.Generator().manual_seed(seed)
    for module in trunk:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)


class VGGRelu4_2(nn.Module):
    """Maps [-1, 1] images to VGG16 relu4_2 features (ImageNet normalisation first). Frozen: no parameter
    of it trains, but gradients flow through it to the image."""

    def __init__(self, weights: str = "imagenet", seed: int = 0):
        super().__init__()
        self.trunk = make_layers(TRUNK)
        if weights == "imagenet":
            load_imagenet_trunk(self.trunk, vgg16_weights_path())
        elif weights == "random":
            random_init(self.trunk, seed)
        else:
            raise ValueError(f"unknown feature_weights {weights!r}; choose imagenet or random")
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(((images + 1) / 2 - self.mean) / self.std)
