"""CoGAN (Liu & Tuzel, NIPS 2016): two GANs, one per domain, coupled by weight sharing.

Both generators start from the same noise vector z ~ N(0, I) and share their first blocks (the high-level
layout of a scene), keeping only the last `cogan_private_layers` blocks to themselves (how that layout is
drawn as a label map or as a photo). Both discriminators keep their first blocks and share the rest. The
GANs are trained jointly on unpaired batches of X and Y; nothing ties an x to a y except the shared z.

Translation (the paper's reading, section 5.1.2): for an input x, find the z whose X-side rendering is
closest to x (`inversion_steps` Adam steps on z, mean squared error, from one fixed seeded start z0 ~ N(0, I):
z = 0 would be a dead start, the bias-free first layer giving ReLU(0) and no gradient), then render that z on
the Y side. Photo -> labels is the same with the roles swapped. Nets: DCGAN blocks (repro/methods/latent.py).
"""

from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.methods.latent import blocks, decoder_blocks, encoder_blocks
from repro.config import Config
from repro.device import to_device
from repro.methods.common import Parts, adam, as_direction, prepared, snapshot, trained_nets, update
from repro.losses import discriminator_loss, gan_loss

SIDES = ("x", "y")


def split_point(private: int, n_blocks: int, what: str) -> None:
    if not 1 <= private <= n_blocks:
        raise ReproError(f"cogan_private_layers = {private}: the {what} has {n_blocks} blocks at this crop size; "
                         f"choose 1 to {n_blocks}")


def check(cfg: Config) -> None:
    """The crop size (a power of two) and the tied layers fit the nets; refused before any run folder is written."""
    n = blocks(cfg.crop_size)
    split_point(cfg.cogan_private_layers, n, "generator")
    split_point(cfg.cogan_private_layers, n - 1, "discriminator (last block excluded)")


class CoupledGenerators(nn.Module):
    """z -> (x, y): shared first blocks, then one private tail per domain."""

    def __init__(self, latent_dim: int, ngf: int, size: int, private: int = 1):
        super().__init__()
        tails = {side: decoder_blocks(latent_dim, ngf, size) for side in SIDES}
        split_point(private, len(tails["x"]), "generator")
        self.shared = nn.Sequential(*tails["x"][:-private])
        self.private = nn.ModuleDict({side: nn.Sequential(*blocks[-private:]) for side, blocks in tails.items()})

    def render(self, z: torch.Tensor, side: str) -> torch.Tensor:
        return self.private[side](self.shared(z[:, :, None, None]))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(z[:, :, None, None])
        return self.private["x"](h), self.private["y"](h)


class CoupledDiscriminators(nn.Module):
    """(image, side) -> one real/fake logit per image: private first blocks per domain, then shared blocks."""

    def __init__(self, ndf: int, size: int, private: int = 1):
        super().__init__()
        heads = {side: encoder_blocks(3, ndf, size, 1) for side in SIDES}
        split_point(private, len(heads["x"]) - 1, "discriminator (last block excluded)")
        self.private = nn.ModuleDict({side: nn.Sequential(*blocks[:private]) for side, blocks in heads.items()})
        self.shared = nn.Sequential(*heads["x"][private:])

    def forward(self, images: torch.Tensor, side: str) -> torch.Tensor:
        return self.shared(self.private[side](images))


def build_nets(cfg: Config, device="cpu") -> dict[str, nn.Module]:
    torch.manual_seed(cfg.seed)
    nets = {"G": CoupledGenerators(cfg.latent_dim, cfg.ngf, cfg.crop_size, cfg.cogan_private_layers),
            "D": CoupledDiscriminators(cfg.ndf, cfg.crop_size, cfg.cogan_private_layers)}
    return {n: prepared(net, cfg, device) for n, net in nets.items()}


def build(cfg: Config, device) -> Parts:
    nets = build_nets(cfg, device)
    opts = adam(nets, cfg)
    G, D = nets["G"], nets["D"]

    def step(x, y, rng):
        """D step, then G step on the same fakes (the DCGAN / CoGAN order)."""
        z = torch.randn(len(x), cfg.latent_dim, generator=rng)
        z = to_device(z, x.device)  # drawn on the host (the run's generator), queued up without a wait
        fakes = dict(zip(SIDES, G(z)))
        reals = {"x": x, "y": y}
        d_terms = {f"D_{s.upper()}": discriminator_loss(D(reals[s], s), D(fakes[s].detach(), s), cfg.gan_loss) for s in SIDES}
        update(sum(d_terms.values()), ["D"], nets, opts, cfg)
        g_terms = {f"gan_{s}": cfg.lambda_gan * gan_loss(D(fakes[s], s), True, cfg.gan_loss) for s in SIDES}
        update(sum(g_terms.values()), ["G"], nets, opts, cfg)
        return {k: v.detach() for k, v in (d_terms | g_terms).items()}

    return Parts(nets, opts, step, labels2photo=lambda: wrap(snapshot(nets), cfg, "x2y"))


class LatentInversion(nn.Module):
    """Translates by fitting z to the input on the source side and rendering it on the target side.

    Each image gets its own z from the same start z0 (the loss is a sum of per-image losses, Adam is per
    coordinate, and the generators run with batch-norm running statistics), so an output does not depend on
    the batch it comes in."""

    def __init__(self, generators: CoupledGenerators, source: str, target: str, latent_dim: int, steps: int,
                 lr: float, seed: int = 0):
        super().__init__()
        self.generators, self.source, self.target = generators.requires_grad_(False), source, target
        self.steps, self.lr = steps, lr
        self.register_buffer("z0", torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed)))

    def fit(self, images: torch.Tensor) -> torch.Tensor:
        """The z whose source rendering is closest (mean squared error) to each image."""
        self.generators.eval()
        with torch.enable_grad():  # translate_folder runs under no_grad; this optimisation needs gradients
            z = self.z0.expand(len(images), -1).clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.lr)
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                error = (self.generators.render(z, self.source) - images).pow(2).flatten(1).mean(1)
                error.sum().backward()
                opt.step()
        return z.detach()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.fit(images)
        with torch.no_grad():
            return self.generators.eval().render(z, self.target)


def wrap(nets: dict[str, nn.Module], cfg: Config, direction: str) -> nn.Module:
    source, target = ("x", "y") if as_direction(direction) == "x2y" else ("y", "x")
    return LatentInversion(nets["G"], source, target, cfg.latent_dim, cfg.inversion_steps, cfg.inversion_lr, cfg.seed)


def translator(run: Path, cfg: Config, direction: str, device) -> nn.Module:
    G = CoupledGenerators(cfg.latent_dim, cfg.ngf, cfg.crop_size, cfg.cogan_private_layers)
    return wrap(trained_nets(run, {"G": G}, device), cfg, direction).to(device)
