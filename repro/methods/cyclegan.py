"""CycleGAN (the paper's method) and its loss ablations (Tables 4/5: zero weights in the config).

X = label maps, Y = photos. G: X -> Y, F: Y -> X, D_X judges label maps, D_Y photos.
Two update orders (config `update_order`):
  sequential  the Lua code the paper used: four Adam steps per iteration, F, D_X, G, D_Y (its G_A, D_A,
              G_B, D_B with A = photos). Each generator step trains only that generator; the other one's
              outputs enter as constants, and G's step runs after F and D_X have been updated.
  joint       the PyTorch port: both generators from one summed loss, then both discriminators.
"""

from pathlib import Path

import torch
from torch import nn

from repro.checkpoint import trained_nets
from repro.config import Config
from repro.losses import discriminator_loss, gan_loss, l1
from repro.methods.common import Parts, adam, as_direction, frozen, prepared, update
from repro.networks import PatchDiscriminator, build_generator
from repro.pool import ImagePool

NET_NAMES = ("G", "F", "D_X", "D_Y")
UPDATE_ORDERS = ("sequential", "joint")  # the Lua code, the port
GENERATOR_OF = {"x2y": "G", "y2x": "F"}


def generator(cfg: Config) -> nn.Module:
    return build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    """G, F, D_X, D_Y, initialised N(0, 0.02) from the seed (in this order, so the seed fixes all four)."""
    torch.manual_seed(cfg.seed)
    disc = lambda: PatchDiscriminator(3, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_padding)
    nets = {"G": generator(cfg), "F": generator(cfg), "D_X": disc(), "D_Y": disc()}
    return {n: prepared(net, cfg, device) for n, net in nets.items()}


def generator_terms(gen, other, disc, src, tgt, cfg: Config, own_cycle: str, other_cycle: str):
    """The loss terms that train `gen` (src -> tgt) in its own step of the sequential order.

    own_cycle   src -> gen -> other -> src: the gradient reaches gen through `other`'s input.
    other_cycle tgt -> other -> gen -> tgt: other(tgt) is a constant input to gen.
    identity    gen(tgt) ~ tgt, weighted lambda_identity x the lambda of tgt's cycle (as both codes do).
    A term whose weight is zero is not computed at all: that is how the ablations switch terms off.
    """
    w = {"forward": cfg.lambda_forward, "backward": cfg.lambda_backward}
    terms, fake = {}, gen(src)
    if cfg.lambda_gan:
        terms["gan"] = cfg.lambda_gan * gan_loss(disc(fake), True, cfg.gan_loss)
    if w[own_cycle]:
        terms[f"cycle_{own_cycle}"] = w[own_cycle] * l1(other(fake), src)
    if w[other_cycle]:
        with torch.no_grad():
            other_fake = other(tgt)
        terms[f"cycle_{other_cycle}"] = w[other_cycle] * l1(gen(other_fake), tgt)
    if cfg.lambda_identity:
        terms["identity"] = cfg.lambda_identity * w[other_cycle] * l1(gen(tgt), tgt)
    return terms, fake


def joint_terms(nets, x, y, cfg: Config):
    """The port's generator loss: every term once, its gradient reaching both generators."""
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    terms, fake_y, fake_x = {}, G(x), F(y)
    if cfg.lambda_gan:
        terms["gan_G"] = cfg.lambda_gan * gan_loss(D_Y(fake_y), True, cfg.gan_loss)
        terms["gan_F"] = cfg.lambda_gan * gan_loss(D_X(fake_x), True, cfg.gan_loss)
    if cfg.lambda_forward:
        terms["cycle_forward"] = cfg.lambda_forward * l1(F(fake_y), x)
    if cfg.lambda_backward:
        terms["cycle_backward"] = cfg.lambda_backward * l1(G(fake_x), y)
    if cfg.lambda_identity:
        terms["identity_G"] = cfg.lambda_identity * cfg.lambda_backward * l1(G(y), y)
        terms["identity_F"] = cfg.lambda_identity * cfg.lambda_forward * l1(F(x), x)
    return terms, fake_y, fake_x


def train_step(nets, opts, pools, x, y, cfg: Config, rng: torch.Generator, autocast) -> dict[str, torch.Tensor]:
    """One iteration; returns every loss term (detached) by name."""
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    log = {}

    def d_step(name, disc, real, fake, pool):
        with autocast():
            loss = discriminator_loss(disc(real), disc(pool.query(fake, rng)), cfg.gan_loss)
        update(loss, [name], nets, opts, cfg)
        log[f"D_{name[-1]}"] = loss.detach()

    if cfg.update_order == "sequential":
        for name, gen, other, disc, src, tgt, own, oth, d_name, d_real in (
                ("F", F, G, D_X, y, x, "backward", "forward", "D_X", x),
                ("G", G, F, D_Y, x, y, "forward", "backward", "D_Y", y)):
            with frozen(other, disc), autocast():
                terms, fake = generator_terms(gen, other, disc, src, tgt, cfg, own, oth)
            if terms:
                update(sum(terms.values()), [name], nets, opts, cfg)
            log |= {f"{k}_{name}": v.detach() for k, v in terms.items()}
            if cfg.lambda_gan:
                d_step(d_name, disc, d_real, fake, pools[d_name])
    else:
        with frozen(D_X, D_Y), autocast():
            terms, fake_y, fake_x = joint_terms(nets, x, y, cfg)
        if terms:
            update(sum(terms.values()), ["G", "F"], nets, opts, cfg)
        log |= {k: v.detach() for k, v in terms.items()}
        if cfg.lambda_gan:
            d_step("D_Y", D_Y, y, fake_y, pools["D_Y"])
            d_step("D_X", D_X, x, fake_x, pools["D_X"])
    return log


def build(cfg: Config, device: torch.device, amp: bool = False, channels_last: bool = False) -> Parts:
    """CycleGAN's nets, optimisers, pools and step; `amp` (bf16 autocast) and `channels_last` are CUDA speed-ups."""
    nets = build_nets(cfg, device)
    if channels_last:
        nets = {n: net.to(memory_format=torch.channels_last) for n, net in nets.items()}
    opts = adam(nets, cfg)
    pools = {"D_X": ImagePool(cfg.pool_size), "D_Y": ImagePool(cfg.pool_size)}
    autocast = lambda: torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp)

    def step(x, y, rng):
        if channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        return train_step(nets, opts, pools, x, y, cfg, rng, autocast)

    return Parts(nets, opts, step, pools, exports={"G": "G_x2y.pth", "F": "F_y2x.pth"}, labels2photo=lambda: nets["G"])


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    name = GENERATOR_OF[as_direction(direction)]
    return trained_nets(run, {name: generator(cfg)}, device)[name]
