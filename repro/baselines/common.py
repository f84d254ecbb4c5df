"""Small pieces the baselines share: net set-up and copies of the live nets."""

import copy

from torch import nn

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
