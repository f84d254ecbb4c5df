"""SimGAN (Shrivastava et al., CVPR 2017) and "Feature loss + GAN": one generator per direction, an
adversarial loss plus a self-regularisation term that keeps the output close to the input,

    G step   lambda_gan * GAN(D_Y(G(x)), real) + lambda_self_reg * |phi(x) - phi(G(x))|_1
    D step   (1/2) [GAN(D_Y(y), real) + GAN(D_Y(pool(G(x))), fake)]

and the same for F: Y -> X with D_X. phi is the identity for SimGAN (`self_reg_space = "pixel"`) and
VGG16 relu4_2 for Feature loss + GAN (`"vgg_relu4_2"`; repro/vgg.py). There is no cycle: G and F
never see each other. The paper trains its baselines with CycleGAN's architecture and details, so
everything else (ResNet generator, PatchGAN, LSGAN, pool of 50, Adam, schedule, the Lua step order F, D_X,
G, D_Y) is the CycleGAN config's.
"""

from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.vgg import VGGRelu4_2
from repro.config import Config
from repro.methods.common import Parts, adam, as_direction, snapshot, trained_nets, update
from repro.layout import export_name
from repro.losses import discriminator_loss, gan_loss, l1
from repro.networks import build_generator
from repro.pool import ImagePool
from repro.methods.cyclegan import build_nets as cyclegan_nets

GENERATOR_OF = {"x2y": "G", "y2x": "F"}


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    """G, F, D_X, D_Y exactly as CycleGAN builds them (same seed, same order)."""
    return {n: net.to(device) for n, net in cyclegan_nets(cfg).items()}


def self_regulariser(cfg: Config, device) -> nn.Module:
    """phi: pixels (SimGAN) or frozen VGG16 relu4_2 features (Feature loss + GAN)."""
    if cfg.self_reg_space == "pixel":
        return nn.Identity()
    return VGGRelu4_2(cfg.feature_weights, cfg.seed).to(device)


def self_reg_loss(phi: nn.Module, src: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """|phi(src) - phi(fake)|_1, mean over elements; src is a constant, the gradient reaches fake only."""
    with torch.no_grad():
        target = phi(src)
    return l1(phi(fake), target)


def generator_terms(gen, disc, phi, src, cfg: Config, name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    fake = gen(src)
    terms = {}
    if cfg.lambda_gan:
        terms[f"gan_{name}"] = cfg.lambda_gan * gan_loss(disc(fake), True, cfg.gan_loss)
    if cfg.lambda_self_reg:
        terms[f"self_reg_{name}"] = cfg.lambda_self_reg * self_reg_loss(phi, src, fake)
    return terms, fake


def check(cfg: Config) -> None:
    """What this method's config must hold; refused before any run folder is written."""
    if cfg.update_order != "sequential":
        raise ReproError(f"{cfg.name}: simgan trains in the Lua step order (F, D_X, G, D_Y) only; "
                         f"set update_order = \"sequential\" (update_order = {cfg.update_order!r})")


def build(cfg: Config, device) -> Parts:
    check(cfg)
    nets = build_nets(cfg, device)
    opts = adam(nets, cfg)
    pools = {"D_X": ImagePool(cfg.pool_size), "D_Y": ImagePool(cfg.pool_size)}
    phi = self_regulariser(cfg, device)

    def step(x, y, rng):
        log = {}
        for g_name, d_name, src, real in (("F", "D_X", y, x), ("G", "D_Y", x, y)):
            gen, disc = nets[g_name], nets[d_name]
            terms, fake = generator_terms(gen, disc, phi, src, cfg, g_name)
            if terms:
                update(sum(terms.values()), [g_name], nets, opts, cfg)
            log |= {k: v.detach() for k, v in terms.items()}
            if cfg.lambda_gan:  # as CycleGAN: no adversarial term, no discriminator to train
                d_loss = discriminator_loss(disc(real), disc(pools[d_name].query(fake.detach(), rng)), cfg.gan_loss)
                update(d_loss, [d_name], nets, opts, cfg)
                log[d_name] = d_loss.detach()
        return log

    return Parts(nets, opts, step, pools, exports={"G": export_name("G", "x2y"), "F": export_name("F", "y2x")},
                 labels2photo=lambda: wrap(snapshot(nets), cfg, "x2y"))


def wrap(nets: dict[str, nn.Module], cfg: Config, direction: str) -> nn.Module:
    return nets[GENERATOR_OF[as_direction(direction)]]


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    name = GENERATOR_OF[as_direction(direction)]
    net = build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)
    return wrap(trained_nets(run, {name: net}, device), cfg, direction)
