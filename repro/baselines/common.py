"""Small pieces the baselines share: net set-up, copies of the live nets, loading a trained run."""

import copy
from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.config import Config
from repro.networks import init_weights, zero_conv_biases

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
