"""FCN-8s with the exact geometry of the Caffe net behind the pix2pix Cityscapes evaluator.

The layers and their names follow pix2pix's scripts/eval_cityscapes/caffemodel/deploy.prototxt
(itself fcn.berkeleyvision.org's voc-fcn8s with 20 outputs), so a .caffemodel maps onto the
parameters by layer name:

    conv1_1 (pad 100) ... conv5_3 (3x3, pad 1), max pools 2x2 stride 2 in ceil mode (Caffe's
    pooling always rounds up), fc6 (7x7 conv, no pad) and fc7 (1x1), each ReLU + dropout 0.5,
    score_fr (1x1 -> 20), upscore2 (deconv k4 s2, no bias), score_pool4 (1x1 on pool4), crop 5,
    sum, upscore_pool4 (deconv k4 s2, no bias), score_pool3 (1x1 on pool3), crop 9, sum,
    upscore8 (deconv k16 s8, no bias), crop 31 to the input size.

The deploy file has no Scale layers: pool4 and pool3 are not scaled (that is the "at-once"
variant, scale 0.01 / 0.0001, which the pix2pix net is not). The Cityscapes caffemodel names its
fc layers `fc6_cs` / `fc7_cs`; caffemodel.py maps those to `fc6` / `fc7`.

`width` scales every VGG and fc channel count (64 * width, ..., 4096 * width) and nothing else,
so tests and the synthetic-city runs can use a small net with exactly the same geometry.
Inputs are Caffe-style: BGR, 0..255 minus the mean, never scaled (see labels2photo.py).
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from repro import ReproError

# (name, VGG16 channels at width 1) for every 3x3 conv; a pool follows the last conv of each block.
VGG_BLOCKS = [
    [("conv1_1", 64), ("conv1_2", 64)],
    [("conv2_1", 128), ("conv2_2", 128)],
    [("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256)],
    [("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512)],
    [("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)],
]
FC_CHANNELS = 4096
CROP_POOL4, CROP_POOL3, CROP_SCORE = 5, 9, 31  # the Crop layers' offsets in deploy.prototxt
CONV_LAYERS = [name for block in VGG_BLOCKS for name, _ in block] + ["fc6", "fc7", "score_fr", "score_pool4", "score_pool3"]
DECONV_LAYERS = ["upscore2", "upscore_pool4", "upscore8"]


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def crop(x: torch.Tensor, offset: int, like: torch.Tensor) -> torch.Tensor:
    """Caffe's Crop layer with axis 2: take like's height and width starting at (offset, offset)."""
    h, w = like.shape[-2:]
    if x.shape[-2] < offset + h or x.shape[-1] < offset + w:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} at offset {offset} to {(h, w)}")
    return x[..., offset:offset + h, offset:offset + w]


class FCN8s(nn.Module):
    def __init__(self, n_classes: int = 20, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        in_channels = 3
        for b, block in enumerate(VGG_BLOCKS):
            for i, (name, channels) in enumerate(block):
                out_channels = scaled(channels, width)
                pad = 100 if name == "conv1_1" else 1
                setattr(self, name, nn.Conv2d(in_channels, out_channels, 3, padding=pad))
                in_channels = out_channels
        pool3_channels = scaled(256, width)
        pool4_channels = scaled(512, width)
        fc = scaled(FC_CHANNELS, width)
        self.fc6 = nn.Conv2d(in_channels, fc, 7)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.drop = nn.Dropout(dropout)  # Caffe's Dropout is element-wise
        self.score_fr = nn.Conv2d(fc, n_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(n_classes, n_classes, 4, stride=2, bias=False)
        self.score_pool4 = nn.Conv2d(pool4_channels, n_classes, 1)
        self.upscore_pool4 = nn.ConvTranspose2d(n_classes, n_classes, 4, stride=2, bias=False)
        self.score_pool3 = nn.Conv2d(pool3_channels, n_classes, 1)
        self.upscore8 = nn.ConvTranspose2d(n_classes, n_classes, 16, stride=8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) Caffe-preprocessed input -> (N, n_classes, H, W) scores."""
        data = x
        pools = []
        for block in VGG_BLOCKS:
            for name, _ in block:
                x = F.relu(getattr(self, name)(x))
            x = F.max_pool2d(x, 2, stride=2, ceil_mode=True)
            pools.append(x)
        pool3, pool4 = pools[2], pools[3]
        x = self.drop(F.relu(self.fc6(x)))
        x = self.drop(F.relu(self.fc7(x)))
        upscore2 = self.upscore2(self.score_fr(x))
        fuse_pool4 = upscore2 + crop(self.score_pool4(pool4), CROP_POOL4, upscore2)
        upscore_pool4 = self.upscore_pool4(fuse_pool4)
        fuse_pool3 = upscore_pool4 + crop(self.score_pool3(pool3), CROP_POOL3, upscore_pool4)
        return crop(self.upscore8(fuse_pool3), CROP_SCORE, data)


def fcn8s(n_classes: int = 20, width: float = 1.0) -> FCN8s:
    """The evaluator's net: 20 outputs (19 Cityscapes train ids + one the original never scores)."""
    return FCN8s(n_classes=n_classes, width=width)


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Caffe's "bilinear" filler / FCN surgery.interp: per-channel bilinear upsampling weights
    (channels, channels, size, size), zero across channels."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = (1 - (og - center).abs() / factor)
    filt = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, size, size, dtype=torch.float64)
    weight[range(channels), range(channels)] = filt
    return weight.float()


def init_for_training(model: FCN8s) -> None:
    """FCN's recipe: convs He-normal (only used for what the VGG trunk does not cover), score layers
    zero, deconvolutions bilinear (then learned, lr_mult 1 as in deploy.prototxt)."""
    for name in CONV_LAYERS:
        layer = getattr(model, name)
        if name.startswith("score"):
            nn.init.zeros_(layer.weight)
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    for name in DECONV_LAYERS:
        layer = getattr(model, name)
        with torch.no_grad():
            layer.weight.copy_(bilinear_kernel(model.n_classes, layer.kernel_size[0]))


# ---------------------------------------------------------------------------------------------
# The segmenter file: a torch .pt holding the state_dict and what built it, plus OUT.pt.sha256.

FORMAT = "repro-fcn8s/1"
HOW_TO_GET = (
    "Get one with `repro segmenter get` (the pix2pix authors' Caffe weights), "
    "`repro segmenter import-caffe FILE.caffemodel OUT.pt`, or `repro segmenter train --cityscapes DIR`."
)


def sidecar(path: Path) -> Path:
    return Path(str(path) + ".sha256")


def save_segmenter(model: FCN8s, path: Path, **meta) -> str:
    """Writes PATH atomically with {"state_dict", "n_classes", "width", **meta} and PATH.sha256
    (sha256sum format); returns the hash. meta holds plain values ("source", "trained_on", ...)."""
    from repro.io import atomic_path, sha256_file, write_text

    path = Path(path)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "n_classes": model.n_classes,
        "width": model.width,
        **meta,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
        digest = sha256_file(tmp)
    write_text(sidecar(path), f"{digest}  {path.name}\n")
    return digest


def load_segmenter(path: Path, device: str | torch.device = "cpu") -> tuple[FCN8s, dict]:
    """The net in eval mode on `device`, and the file's metadata with its sha256 ("sha256")."""
    from repro.io import load_torch_file, sha256_file

    path = Path(path)
    if not path.is_file():
        raise ReproError(f"segmenter {path} does not exist. {HOW_TO_GET}")
    digest = sha256_file(path)
    if sidecar(path).is_file():
        expected = sidecar(path).read_text().split()[0] if sidecar(path).read_text().strip() else ""
        if expected != digest:
            raise ReproError(
                f"{path} does not match its hash file {sidecar(path)} (sha256 {digest[:12]}... vs {expected[:12]}...): "
                f"the file changed or was cut short. Get, import or train it again."
            )
    payload = load_torch_file(path, "segmenter", HOW_TO_GET)  # a cut-short or foreign file: says which
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ReproError(f"{path} is not a repro FCN-8s segmenter (no format {FORMAT!r}). {HOW_TO_GET}")
    model = fcn8s(n_classes=payload["n_classes"], width=payload["width"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ReproError(f"{path}: its weights do not fit FCN-8s at width {payload['width']}: {err}") from err
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info.update(path=str(path), sha256=digest)
    return model.eval().to(device), info
