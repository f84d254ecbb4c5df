"""pix2pix (Isola et al., CVPR 2017): the paired upper bound of Tables 2 and 3.

One model per direction, both trained in one run: G: X -> Y (labels -> photo) and F: Y -> X, each a U-Net
(unet_128 at 128x128: batch norm, dropout in the 8*ngf-wide middle) with its own conditional PatchGAN that
judges input and output together (6 channels). Per iteration and direction, as the pix2pix code orders it:

    D step   (1/2) [BCE(D(src, tgt), real) + BCE(D(src, G(src)), fake)]
    G step   BCE(D(src, G(src)), real) + lambda_l1 * |G(src) - tgt|_1       (lambda_l1 = 100)

on one G(src). Pairs come from the aligned folders (same Cityscapes frame) with one crop and flip for both.
The nets are the official port's builders, so G_x2y.pth / F_y2x.pth load into the port's pix2pix.
"""

from pathlib import Path

import torch
from torch import nn

from repro.config import Config
from repro.methods.common import Parts, adam, as_direction, prepared, snapshot, trained_nets, update
from repro.layout import export_name
from repro.losses import discriminator_loss, gan_loss, l1
from repro.networks import PatchDiscriminator, TestTimeGenerator, UnetGenerator, build_generator

GENERATOR_OF = {"x2y": "G", "y2x": "F"}


def make_generator(cfg: Config) -> nn.Module:
    """The config's generator; `unet_num_downs` > 0 builds a U-Net with that many halvings instead
    (5 for the 32x32 smoke scale, where unet_128's 7 would shrink the image below one pixel)."""
    if cfg.unet_num_downs:
        return UnetGenerator(3, 3, cfg.unet_num_downs, cfg.ngf, cfg.norm, cfg.dropout)
    return build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)


def make_discriminator(cfg: Config) -> nn.Module:
    """Conditional PatchGAN: input and output concatenated on the channel axis (3 + 3)."""
    return PatchDiscriminator(6, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_padding)


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    torch.manual_seed(cfg.seed)
    nets = {"G": make_generator(cfg), "D_Y": make_discriminator(cfg), "F": make_generator(cfg), "D_X": make_discriminator(cfg)}
    return {n: prepared(net, cfg, device) for n, net in nets.items()}


def direction_terms(gen, disc, src, tgt, cfg: Config, nets, opts, g_name: str, d_name: str) -> dict[str, torch.Tensor]:
    """One direction's D step then G step; returns its loss terms."""
    fake = gen(src)
    d_loss = discriminator_loss(disc(torch.cat([src, tgt], 1)), disc(torch.cat([src, fake.detach()], 1)), cfg.gan_loss)
    update(d_loss, [d_name], nets, opts, cfg)
    terms = {f"gan_{g_name}": cfg.lambda_gan * gan_loss(disc(torch.cat([src, fake], 1)), True, cfg.gan_loss),
             f"l1_{g_name}": cfg.lambda_l1 * l1(fake, tgt)}
    update(sum(terms.values()), [g_name], nets, opts, cfg)
    return {d_name: d_loss.detach()} | {k: v.detach() for k, v in terms.items()}


def build(cfg: Config, device) -> Parts:
    nets = build_nets(cfg, device)
    opts = adam(nets, cfg)

    def step(x, y, rng):
        return (direction_terms(nets["G"], nets["D_Y"], x, y, cfg, nets, opts, "G", "D_Y")
                | direction_terms(nets["F"], nets["D_X"], y, x, cfg, nets, opts, "F", "D_X"))

    return Parts(nets, opts, step, exports={"G": export_name("G", "x2y"), "F": export_name("F", "y2x")},
                 labels2photo=lambda: wrap(snapshot(nets), cfg, "x2y"))


def wrap(nets: dict[str, nn.Module], cfg: Config, direction: str) -> nn.Module:
    return TestTimeGenerator(nets[GENERATOR_OF[as_direction(direction)]], cfg.pix2pix_test_mode, cfg.seed)


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    name = GENERATOR_OF[as_direction(direction)]
    return wrap(trained_nets(run, {name: make_generator(cfg)}, device), cfg, direction).to(device)
