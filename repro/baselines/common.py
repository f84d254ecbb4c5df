"""Small pieces the baselines share: paired data, net set-up, optimiser steps, loading a trained run."""

import copy
from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.config import Config
from repro.data.loaders import load_aligned, random_crop_flip, to_model_range
from repro.networks import init_weights, zero_conv_biases

# direction -> the translation it asks for; X = label maps, Y = photos
DIRECTIONS = {"labels2photo": "x2y", "x2y": "x2y", "photo2labels": "y2x", "y2x": "y2x"}


def as_direction(direction: str) -> str:
    """"x2y" or "y2x" for any of the names `repro translate --direction` accepts."""
    if direction not in DIRECTIONS:
        raise ReproError(f"unknown direction {direction!r}; choose one of {tuple(DIRECTIONS)}")
    return DIRECTIONS[direction]


class AlignedData:
    """Paired label maps and photos (same frame, same row), in memory, for pix2pix. The pair gets one crop
    and one flip, so x and y stay aligned; an epoch is a shuffled pass over the pairs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, crop: int, flip: bool, device="cpu"):
        if len(x) != len(y):
            raise ValueError(f"paired data needs as many label maps as photos, got {len(x)} and {len(y)}")
        self.x, self.y = x.to(device), y.to(device)
        self.crop, self.flip = crop, flip

    @classmethod
    def from_folders(cls, x_dir: Path, y_dir: Path, load_size: int, crop: int, flip: bool,
                     resize_filter: str, device="cpu") -> "AlignedData":
        x, y, _ = load_aligned(x_dir, y_dir, load_size, resize_filter)
        return cls(x, y, crop, flip, device)

    def __len__(self) -> int:
        return len(self.x)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """(len, 2) indices into X and Y for one epoch: the same row on both sides."""
        order = torch.randperm(len(self), generator=generator)
        return torch.stack([order, order], 1)

    def batch(self, pairs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = pairs[:, 0].to(self.x.device)
        both = random_crop_flip(torch.cat([self.x[rows], self.y[rows]], 1), self.crop, self.flip, generator)
        return to_model_range(both[:, :3]), to_model_range(both[:, 3:])


def prepared(net: nn.Module, cfg: Config, device) -> nn.Module:
    """N(0, 0.02) weights (both original codes), conv biases zeroed when the config follows the Lua code."""
    init_weights(net)
    if cfg.zero_conv_bias:
        zero_conv_biases(net)
    return net.to(device)


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


def snapshot(nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Copies of the live nets, so a translation during training (FID) cannot change their state."""
    return {name: copy.deepcopy(net) for name, net in nets.items()}


def trained_nets(run: Path, nets: dict[str, nn.Module], device) -> dict[str, nn.Module]:
    """`nets` (freshly built) with the weights of run/checkpoint.pt, on `device`, without gradients."""
    ckpt = Path(run) / "checkpoint.pt"
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ReproError(f"cannot read checkpoint {ckpt}: {err}. Retrain the run.") from None
    for name, net in nets.items():
        if name not in state["nets"]:
            raise ReproError(f"{ckpt} has no net {name!r} (it holds {sorted(state['nets'])}); "
                             f"its config.toml does not match the run; retrain it")
        net.load_state_dict(state["nets"][name])
        net.requires_grad_(False)
    return {name: net.to(device) for name, net in nets.items()}
