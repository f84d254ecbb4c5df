"""CycleGAN (the paper's method) and its loss ablations (Tables 4/5: zero weights in the config).

X = label maps, Y = photos. G: X -> Y, F: Y -> X, D_X judges label maps, D_Y photos.
Two update orders (config `update_order`):
  sequential  the Lua code the paper used: four Adam steps per iteration, F, D_X, G, D_Y (its G_A, D_A,
              G_B, D_B with A = photos). Each generator step trains only that generator; the other one's
              outputs enter as constants, and G's step runs after F and D_X have been updated.
  joint       the PyTorch port: both generators from one summed loss, then both discriminators.
"""

import contextlib
from pathlib import Path

import torch
from torch import nn

from repro.config import Config
from repro.layout import export_name
from repro.losses import discriminator_loss, gan_loss, l1
from repro.methods.common import Parts, adam, as_direction, prepared, trained_nets, update
from repro.methods.packing import OneRun, PackedRuns, RunNet, RunOptimizer, Stacked, check_pack
from repro.networks import PatchDiscriminator, build_generator
from repro.pool import ImagePool

NET_NAMES = ("G", "F", "D_X", "D_Y")
GENERATOR_OF = {"x2y": "G", "y2x": "F"}


def generator(cfg: Config) -> nn.Module:
    return build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    """G, F, D_X, D_Y, initialised N(0, 0.02) from the seed (in this order, so the seed fixes all four)."""
    torch.manual_seed(cfg.seed)
    disc = lambda: PatchDiscriminator(3, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_padding)
    nets = {"G": generator(cfg), "F": generator(cfg), "D_X": disc(), "D_Y": disc()}
    return {n: prepared(net, cfg, device) for n, net in nets.items()}


def active_terms(cfg) -> dict[str, bool]:
    """Which weighted terms a config computes at all (a zero weight switches its term off)."""
    return {"gan": cfg.lambda_gan != 0, "forward": cfg.lambda_forward != 0, "backward": cfg.lambda_backward != 0,
            "identity": cfg.lambda_identity != 0}


def generator_terms(gen, other, disc, src, tgt, cfg: Config, own_cycle: str, other_cycle: str,
                    on: dict[str, bool] | None = None):
    """The loss terms that train `gen` (src -> tgt) in its own step of the sequential order.

    own_cycle   src -> gen -> other -> src: the gradient reaches gen through `other`'s input.
    other_cycle tgt -> other -> gen -> tgt: other(tgt) is a constant input to gen.
    identity    gen(tgt) ~ tgt, weighted lambda_identity x the lambda of tgt's cycle (as both codes do).
    A term whose weight is zero is not computed at all: that is how the ablations switch terms off. `on` says
    which terms to compute when the weights are per-run tensors (packed runs: repro.methods.packing); a term
    is then computed when any run of the pack uses it, and its zero weight gives the others exactly zero.
    """
    on = on or active_terms(cfg)
    w = {"forward": cfg.lambda_forward, "backward": cfg.lambda_backward}
    terms, fake = {}, gen(src)
    if on["gan"]:
        terms["gan"] = cfg.lambda_gan * gan_loss(disc(fake), True, cfg.gan_loss)
    if on[own_cycle]:
        terms[f"cycle_{own_cycle}"] = w[own_cycle] * l1(other(fake), src)
    if on[other_cycle]:
        with torch.no_grad():
            other_fake = other(tgt)
        terms[f"cycle_{other_cycle}"] = w[other_cycle] * l1(gen(other_fake), tgt)
    if on["identity"]:
        terms["identity"] = cfg.lambda_identity * w[other_cycle] * l1(gen(tgt), tgt)
    return terms, fake


def joint_terms(nets, x, y, cfg: Config, on: dict[str, bool] | None = None):
    """The port's generator loss: every term once, its gradient reaching both generators."""
    on = on or active_terms(cfg)
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    terms, fake_y, fake_x = {}, G(x), F(y)
    if on["gan"]:
        terms["gan_G"] = cfg.lambda_gan * gan_loss(D_Y(fake_y), True, cfg.gan_loss)
        terms["gan_F"] = cfg.lambda_gan * gan_loss(D_X(fake_x), True, cfg.gan_loss)
    if on["forward"]:
        terms["cycle_forward"] = cfg.lambda_forward * l1(F(fake_y), x)
    if on["backward"]:
        terms["cycle_backward"] = cfg.lambda_backward * l1(G(fake_x), y)
    if on["identity"]:
        terms["identity_G"] = cfg.lambda_identity * cfg.lambda_backward * l1(G(y), y)
        terms["identity_F"] = cfg.lambda_identity * cfg.lambda_forward * l1(F(x), x)
    return terms, fake_y, fake_x


def train_step(nets, opts, pools, x, y, cfg: Config, rng, autocast, runs=None) -> dict[str, torch.Tensor]:
    """One iteration; returns every loss term (detached) by name.

    `runs` is how the terms are computed: one run as it is (default), or K packed runs (repro.methods.packing:
    x and y [K, B, ...], `rng` one generator per run, terms [K])."""
    runs = runs or OneRun(nets, cfg, pools, active_terms(cfg))
    on, log = runs.on, {}

    def d_step(name, real, fake):
        pooled = runs.query(name, fake, rng)
        with autocast():
            loss = runs.apply(lambda n, c, real, pooled: discriminator_loss(n[name](real), n[name](pooled), c.gan_loss),
                              real, pooled)
        update(runs.adversarial_total(loss), [name], nets, opts, cfg)
        log[f"D_{name[-1]}"] = loss.detach()

    if cfg.update_order == "sequential":
        for name, other, disc, src, tgt, own, oth in (("F", "G", "D_X", y, x, "backward", "forward"),
                                                     ("G", "F", "D_Y", x, y, "forward", "backward")):
            with autocast():
                terms, fake = runs.apply(lambda n, c, src, tgt: generator_terms(n[name], n[other], n[disc], src, tgt, c,
                                                                                own, oth, on), src, tgt)
            if terms:
                update(runs.total(sum(terms.values())), [name], nets, opts, cfg)
            log |= {f"{k}_{name}": v.detach() for k, v in terms.items()}
            if on["gan"]:
                d_step(disc, tgt, fake)
    else:
        with autocast():
            terms, fake_y, fake_x = runs.apply(lambda n, c, x, y: joint_terms(n, x, y, c, on), x, y)
        if terms:
            update(runs.total(sum(terms.values())), ["G", "F"], nets, opts, cfg)
        log |= {k: v.detach() for k, v in terms.items()}
        if on["gan"]:
            d_step("D_Y", y, fake_y)
            d_step("D_X", x, fake_x)
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

    return Parts(nets, opts, step, pools, exports={"G": export_name("G", "x2y"), "F": export_name("F", "y2x")}, labels2photo=lambda: nets["G"])


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    name = GENERATOR_OF[as_direction(direction)]
    return trained_nets(run, {name: generator(cfg)}, device)[name]



def packed_runs(nets: dict[str, Stacked], cfgs: list[Config], pools: list[dict], device) -> PackedRuns:
    """How train_step runs these packed runs: a term is computed when any run of the pack uses it."""
    on = {k: any(active_terms(cfg)[k] for cfg in cfgs) for k in ("gan", "forward", "backward", "identity")}
    return PackedRuns(nets, cfgs, on, pools, device)


def build_packed(cfgs: list[Config], device: torch.device) -> Parts:
    """K runs as one vectorised step (repro.methods.packing): the seeds of a row and the rows that differ only
    in loss weights (CycleGAN and its ablations). `step(x, y, rngs)` takes x, y [K, B, 3, H, W] and K
    generators and returns [K] terms; `runs[k]` are run k's nets, optimisers and pools for checkpoints."""
    check_pack(cfgs)
    solo = [build_nets(cfg, device) for cfg in cfgs]  # each from its own seed, exactly as alone
    nets = {n: Stacked([s[n] for s in solo]).to(device) for n in NET_NAMES}
    opts = adam(nets, cfgs[0])
    pools = [{"D_X": ImagePool(cfg.pool_size), "D_Y": ImagePool(cfg.pool_size)} for cfg in cfgs]
    runs = packed_runs(nets, cfgs, pools, device)
    autocast = contextlib.nullcontext

    def step(x, y, rngs):
        return train_step(nets, opts, pools, x, y, cfgs[0], rngs, autocast, runs)

    views = [({n: RunNet(nets[n], k) for n in NET_NAMES}, {n: RunOptimizer(opts[n], k) for n in NET_NAMES}, pools[k])
             for k in range(len(cfgs))]
    return Parts(nets, opts, step, exports={"G": export_name("G", "x2y"), "F": export_name("F", "y2x")}, runs=views)
