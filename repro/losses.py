"""Loss terms as pure functions. Which terms a run uses, and with what weight, is its config's business."""

import torch
import torch.nn.functional as nnf

from repro.config import GAN_LOSSES


def gan_loss(prediction: torch.Tensor, target_is_real: bool, kind: str = "lsgan") -> torch.Tensor:
    """LSGAN: mean squared distance of every patch score to 1 (real) or 0 (fake), as the paper uses.
    vanilla: the original GAN's cross-entropy on logits."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    if kind == "lsgan":
        return nnf.mse_loss(prediction, target)
    if kind == "vanilla":
        return nnf.binary_cross_entropy_with_logits(prediction, target)
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """The discriminator's objective, halved (paper section 4: it slows D relative to G)."""
    return 0.5 * (gan_loss(d_real, True, kind) + gan_loss(d_fake, False, kind))


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency and identity terms: mean absolute difference."""
    return (a - b).abs().mean()
