"""BiGAN (Donahue et al.) / ALI (Dumoulin et al.), ICLR 2017: a generator G: code -> data and an encoder
E: data -> code, judged together by one discriminator on (code, data) pairs:

    D step   (1/2) [GAN(D(E(d), d), real) + GAN(D(c, G(c)), fake)]
    G, E     GAN(D(c, G(c)), real) + GAN(D(E(d), d), fake)            (one step for both)

Two readings, chosen by `bigan_code`:

  "image"   the paper's (section 5.1.2: "we implemented the same objective for mapping a source image x
            to a target image y"): the code is the label map. G: X -> Y and E: Y -> X are CycleGAN's ResNet
            generators, D a PatchGAN on the concatenated pair (label map, photo), with CycleGAN's
            details (the paper trains every baseline but CoGAN with its own architecture and settings).
            labels -> photo is G(x), photo -> labels is E(y).
  "latent"  the original BiGAN on each domain: z ~ N(0, I) of `latent_dim`, DCGAN decoder G_d and encoder
            E_d (repro/methods/latent.py) and a joint discriminator D_d(image, z), one BiGAN per domain
            sharing only the prior. labels -> photo is G_Y(E_X(x)): encode on one side, decode on the other.
"""

from pathlib import Path

import torch
from torch import nn

from repro.methods.latent import Decoder, Encoder, encoder_blocks, halvings
from repro.config import Config
from repro.device import to_device
from repro.methods.common import Parts, adam, as_direction, prepared, snapshot, trained_nets, update
from repro.layout import export_name
from repro.losses import discriminator_loss, gan_loss
from repro.networks import PatchDiscriminator, build_generator


class JointDiscriminator(nn.Module):
    """(image, z) -> one logit: a DCGAN image path and a linear code path, joined by a small MLP."""

    def __init__(self, ndf: int, size: int, latent_dim: int):
        super().__init__()
        width = ndf * 8
        self.image = nn.Sequential(*encoder_blocks(3, ndf, size, width), nn.LeakyReLU(0.2, True))
        self.code = nn.Sequential(nn.Linear(latent_dim, width), nn.LeakyReLU(0.2, True))
        self.joint = nn.Sequential(nn.Linear(2 * width, 2 * width), nn.LeakyReLU(0.2, True), nn.Linear(2 * width, 1))

    def forward(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.image(images), self.code(z)], 1))


def check(cfg: Config) -> None:
    """The latent code's DCGAN nets need a power-of-two crop size; refused before any run folder is written."""
    if cfg.bigan_code == "latent":
        halvings(cfg.crop_size)


def image_generator(cfg: Config) -> nn.Module:
    return build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    torch.manual_seed(cfg.seed)
    if cfg.bigan_code == "image":
        nets = {"G": image_generator(cfg), "E": image_generator(cfg),
                "D": PatchDiscriminator(6, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_padding)}
    else:
        nets = {}
        for side in ("X", "Y"):
            nets |= {f"G_{side}": Decoder(cfg.latent_dim, cfg.ngf, cfg.crop_size),
                     f"E_{side}": Encoder(cfg.latent_dim, cfg.ndf, cfg.crop_size),
                     f"D_{side}": JointDiscriminator(cfg.ndf, cfg.crop_size, cfg.latent_dim)}
    return {n: prepared(net, cfg, device) for n, net in nets.items()}


def bigan_terms(judge, code, fake_data, encoded, data, cfg: Config) -> dict[str, torch.Tensor]:
    """The generator and encoder terms: each tries to make D mistake its pair for the other kind."""
    return {"gan_G": cfg.lambda_gan * gan_loss(judge(code, fake_data), True, cfg.gan_loss),
            "gan_E": cfg.lambda_gan * gan_loss(judge(encoded, data), False, cfg.gan_loss)}


def bigan_step(names: tuple[str, str, str], judge, nets, opts, code, fake_data, encoded, data, cfg: Config):
    """G and E together (D's weights untouched), then D on the same pairs; returns the logged terms."""
    g_name, e_name, d_name = names
    terms = bigan_terms(judge, code, fake_data, encoded, data, cfg)
    update(sum(terms.values()), [g_name, e_name], nets, opts, cfg)
    d_loss = discriminator_loss(judge(encoded.detach(), data), judge(code, fake_data.detach()), cfg.gan_loss)
    update(d_loss, [d_name], nets, opts, cfg)
    suffix = g_name[1:]  # "" for the image reading, "_X" / "_Y" for the latent one
    return {f"{k}{suffix}": v.detach() for k, v in terms.items()} | {d_name: d_loss.detach()}


def build(cfg: Config, device) -> Parts:
    nets = build_nets(cfg, device)
    opts = adam(nets, cfg)

    if cfg.bigan_code == "image":
        pair = lambda code, data: nets["D"](torch.cat([code, data], 1))  # (label map, photo)

        def step(x, y, rng):
            return bigan_step(("G", "E", "D"), pair, nets, opts, x, nets["G"](x), nets["E"](y), y, cfg)

        return Parts(nets, opts, step, exports={"G": export_name("G", "x2y"), "E": export_name("E", "y2x")},
                     labels2photo=lambda: wrap(snapshot(nets), cfg, "x2y"))

    def step(x, y, rng):
        log = {}
        for side, data in (("X", x), ("Y", y)):
            z = torch.randn(len(data), cfg.latent_dim, generator=rng)
            z = to_device(z, data.device)  # drawn on the host (the run's generator), queued up without a wait
            judge = lambda code, images, d=nets[f"D_{side}"]: d(images, code)
            log |= bigan_step((f"G_{side}", f"E_{side}", f"D_{side}"), judge, nets, opts,
                              z, nets[f"G_{side}"](z), nets[f"E_{side}"](data), data, cfg)
        return log

    return Parts(nets, opts, step, labels2photo=lambda: wrap(snapshot(nets), cfg, "x2y"))


def translation_nets(cfg: Config, direction: str) -> tuple[str, ...]:
    """The nets one direction needs: G or E (image reading); the input side's encoder and the other
    side's decoder (latent reading: encode on one side, decode on the other)."""
    forward = as_direction(direction) == "x2y"
    if cfg.bigan_code == "image":
        return ("G",) if forward else ("E",)
    return ("E_X", "G_Y") if forward else ("E_Y", "G_X")


def wrap(nets: dict[str, nn.Module], cfg: Config, direction: str) -> nn.Module:
    names = translation_nets(cfg, direction)
    return nets[names[0]] if len(names) == 1 else nn.Sequential(*(nets[n] for n in names))


def untrained(cfg: Config, name: str) -> nn.Module:
    """A net of that name, built to receive a checkpoint's weights."""
    if name in ("G", "E"):
        return image_generator(cfg)
    if name.startswith("E_"):
        return Encoder(cfg.latent_dim, cfg.ndf, cfg.crop_size)
    return Decoder(cfg.latent_dim, cfg.ngf, cfg.crop_size)


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    nets = {name: untrained(cfg, name) for name in translation_nets(cfg, direction)}
    return wrap(trained_nets(run, nets, device), cfg, direction)
