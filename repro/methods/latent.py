"""DCGAN-style nets between a noise vector z and an image, for CoGAN and the "latent" BiGAN.

The paper's image-to-image nets cannot start from a vector, and it does not say which vector nets its
CoGAN used (the authors ran CoGAN's public code), so we use the DCGAN layout (Radford et al. 2016) that
CoGAN and BiGAN build on, scaled to the crop size: one block per resolution, 4x4 up to S x S by
stride-2 4x4 (transposed) convolutions, widths ngf x (1, 2, 4, 8, 8, ...), batch norm, ReLU / LeakyReLU 0.2.
The nets are lists of blocks so CoGAN can tie some of them across its two domains.
"""

import math

import torch
from torch import nn

from repro import ReproError


def halvings(size: int) -> int:
    """Stride-2 steps between S x S and 4 x 4; S must be a power of two >= 8."""
    n = round(math.log2(size)) if size > 0 else 0
    if size < 8 or 2 ** n != size:
        raise ReproError(f"crop_size {size}: the DCGAN nets of cogan / bigan (latent) need a power of two >= 8 "
                         f"(e.g. 32 or 128); change crop_size in the config")
    return n - 2


def blocks(size: int) -> int:
    """How many blocks decoder_blocks and encoder_blocks make for S x S images (S a power of two >= 8)."""
    return halvings(size) + 1


def widths(base: int, size: int) -> list[int]:
    """Channels from the finest resolution to 4x4: base, 2 base, 4 base, 8 base, 8 base, ..."""
    return [base * min(8, 2 ** k) for k in range(halvings(size))]


def decoder_blocks(latent_dim: int, ngf: int, size: int, out_channels: int = 3) -> list[nn.Module]:
    """z (B, latent_dim, 1, 1) -> 4x4 -> ... -> image (B, out_channels, S, S) in [-1, 1]."""
    w = widths(ngf, size)[::-1]  # coarse to fine
    blocks = [nn.Sequential(nn.ConvTranspose2d(latent_dim, w[0], 4, 1, 0, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(True))]
    for a, b in zip(w, w[1:]):
        blocks.append(nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)))
    blocks.append(nn.Sequential(nn.ConvTranspose2d(w[-1], out_channels, 4, 2, 1), nn.Tanh()))
    return blocks


def encoder_blocks(in_channels: int, ndf: int, size: int, out_dim: int) -> list[nn.Module]:
    """Image (B, in_channels, S, S) -> ... -> 4x4 -> vector (B, out_dim); no norm on the first block (DCGAN)."""
    w = widths(ndf, size)
    blocks = [nn.Sequential(nn.Conv2d(in_channels, w[0], 4, 2, 1), nn.LeakyReLU(0.2, True))]
    for a, b in zip(w, w[1:]):
        blocks.append(nn.Sequential(nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)))
    blocks.append(nn.Sequential(nn.Conv2d(w[-1], out_dim, 4, 1, 0), nn.Flatten()))
    return blocks


class Decoder(nn.Module):
    """z (B, latent_dim) -> image."""

    def __init__(self, latent_dim: int, ngf: int, size: int):
        super().__init__()
        self.model = nn.Sequential(*decoder_blocks(latent_dim, ngf, size))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z[:, :, None, None])


class Encoder(nn.Module):
    """Image -> z (B, latent_dim), unbounded (the prior is N(0, I))."""

    def __init__(self, latent_dim: int, ndf: int, size: int):
        super().__init__()
        self.model = nn.Sequential(*encoder_blocks(3, ndf, size, latent_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)
