"""What every method shares: the parts a method hands the training loop, Adam, one update, net set-up.

X = label maps, Y = photos; a translation direction is "x2y" (labels -> photo) or "y2x" (photo -> labels).
"""

import copy
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from repro import ReproError
from repro.config import Config
from repro.io import load_torch_file
from repro.networks import init_weights, zero_conv_biases
from repro.pool import ImagePool

# direction -> the translation it asks for
DIRECTIONS = {"labels2photo": "x2y", "x2y": "x2y", "photo2labels": "y2x", "y2x": "y2x"}

# What a method may support beyond one eager run, as repro.methods.Method.supports declares it.
CUDA_SPEEDUPS = "cuda_speedups"  # build takes amp= (bf16 autocast) and channels_last=
PACKING = "packing"              # build_packed(cfgs, device): K runs in one vectorised step (repro.methods.packing)
CAPTURE = "capture"              # repro.capture stages its step (CUDA graphs, --compile, graphs="auto")


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
    runs: list | None = None  # packed runs: run k's (nets, optimisers, pools) as checkpoints see them


def adam(nets: dict[str, nn.Module], cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One Adam per net, with the paper's lr and betas (the loop sets the scheduled lr every epoch). On CUDA
    the fused implementation (one kernel for all of a net's parameters, the same update rule); on the CPU
    PyTorch's default, so CPU runs stay bit-identical to earlier versions."""
    return {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                fused=True if next(net.parameters()).is_cuda else None)
            for n, net in nets.items()}


def update(loss: torch.Tensor, names, nets: dict, opts: dict, cfg: Config) -> None:
    """Backward `loss` into the nets of `names` only and step their optimisers.

    `backward(inputs=...)` accumulates gradients into those nets' parameters alone: the other nets a loss
    passes through (a discriminator judging a generator's output, the other generator of a cycle) get no
    gradient and autograd skips their weight gradients, without switching requires_grad per parameter."""
    params = list(chain.from_iterable(opts[n].param_groups[0]["params"] for n in names))
    for n in names:
        opts[n].zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    for n in names:
        opts[n].step()
        if cfg.zero_conv_bias:
            zero_conv_biases(nets[n])


def prepared(net: nn.Module, cfg: Config, device) -> nn.Module:
    """N(0, 0.02) weights (both original codes), conv biases zeroed when the config follows the Lua code."""
    init_weights(net)
    if cfg.zero_conv_bias:
        zero_conv_biases(net)
    return net.to(device)


def snapshot(nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Copies of the live nets, so a translation during training (FID) cannot change their state."""
    return {name: copy.deepcopy(net) for name, net in nets.items()}


def trained_nets(run: Path, nets: dict[str, nn.Module], device) -> dict[str, nn.Module]:
    """`nets` (freshly built) with the weights of run/checkpoint.pt, on `device`, without gradients."""
    ckpt = Path(run) / "checkpoint.pt"
    state = load_torch_file(ckpt, "checkpoint", "Retrain the run.")
    for name, net in nets.items():
        if name not in state["nets"]:
            raise ReproError(f"{ckpt} has no net {name!r} (it holds {sorted(state['nets'])}); "
                             f"its config.toml does not match the run; retrain it")
        net.load_state_dict(state["nets"][name])
        net.requires_grad_(False)
    return {name: net.to(device) for name, net in nets.items()}
