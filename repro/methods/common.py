"""What every method shares: the parts a method hands the training loop, Adam, one update, net set-up.

X = label maps, Y = photos; a translation direction is "x2y" (labels -> photo) or "y2x" (photo -> labels).
"""

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from repro import ReproError
from repro.config import Config
from repro.networks import init_weights, zero_conv_biases
from repro.pool import ImagePool

# direction -> the translation it asks for
DIRECTIONS = {"labels2photo": "x2y", "x2y": "x2y", "photo2labels": "y2x", "y2x": "y2x"}


def as_direction(direction: str) -> str:
    """"x2y" or "y2x" for any of the names `repro translate --direction` accepts."""
    if direction not in DIRECTIONS:
        raise ReproError(f"unknown direction {direction!r}; choose one of {tuple(DIRECTIONS)}")
    return DIRECTIONS[direction]


@dataclass
class Parts:
    """What one method trains, built from a config and its seed.

    `step(x, y, rng)` runs one iteration on a batch of label maps x and photos y (both [-1, 1], on the device)
    and returns its loss terms by name as detached tensors on the device (the loop reads them only when it logs,
    so a step never waits for the device). `exports` maps a net's name to the file the loop writes its
    state_dict to after every epoch; `labels2photo()` gives the current labels -> photo translation (for FID)."""
    nets: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    step: Callable[[torch.Tensor, torch.Tensor, torch.Generator], dict[str, torch.Tensor]]
    pools: dict[str, ImagePool] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    labels2photo: Callable[[], nn.Module] | None = None


def adam(nets: dict[str, nn.Module], cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One Adam per net, with the paper's lr and betas (the loop sets the scheduled lr every epoch)."""
    return {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n, net in nets.items()}


def update(loss: torch.Tensor, names, nets: dict, opts: dict, cfg: Config) -> None:
    """Backward `loss` and step the optimisers of `names` only (others' gradients are cleared, never applied)."""
    for n in names:
        opts[n].zero_grad(set_to_none=True)
    loss.backward()
    for n in names:
        opts[n].step()
        if cfg.zero_conv_bias:
            zero_conv_biases(nets[n])


class frozen:
    """Turns off parameter gradients of nets that a step uses but does not train (saves their backward)."""

    def __init__(self, *nets):
        self.params = [p for net in nets for p in net.parameters()]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


def prepared(net: nn.Module, cfg: Config, device) -> nn.Module:
    """N(0, 0.02) weights (both original codes), conv biases zeroed when the config follows the Lua code."""
    init_weights(net)
    if cfg.zero_conv_bias:
        zero_conv_biases(net)
    return net.to(device)


def snapshot(nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Copies of the live nets, so a translation during training (FID) cannot change their state."""
    return {name: copy.deepcopy(net) for name, net in nets.items()}
