"""Networks: the official port's state_dict layout, parameter totals, shapes and strict loading."""

from pathlib import Path

import pytest
import torch

from repro.networks import (PatchDiscriminator, build_generator, count_parameters, init_weights,
                            load_official_state_dict, zero_conv_biases)

DATA = Path(__file__).parent / "data"


def official_layout(name):
    """(entries, total) from a key list of the official port (the port's models/networks.py, listed in tests/data)."""
    text = (DATA / f"{name}.txt").read_text().splitlines()
    total = int(next(l for l in text if l.startswith("# params total")).split("=")[1].split()[0])
    entries = {}
    for line in text:
        if line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            entries[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return entries, total


def layout(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name, build", [
    ("resnet_9blocks", lambda: build_generator("resnet_9blocks", norm="instance")),
    ("unet_128", lambda: build_generator("unet_128", norm="batch", dropout=True)),
    ("unet_256", lambda: build_generator("unet_256", norm="batch", dropout=True)),
    ("nlayer_d_basic", lambda: PatchDiscriminator(3, norm="instance")),
    ("nlayer_d_pix2pix_6ch_batchnorm", lambda: PatchDiscriminator(6, norm="batch")),
])
def test_state_dict_equals_official_layout(name, build):
    entries, total = official_layout(name)
    net = build()
    assert layout(net) == entries
    assert count_parameters(net) == total


def test_resnet_6blocks_parameter_total():
    # 7,837,699 for resnet_6blocks; same keys as 9 blocks with blocks 10..15
    # (docs/protocol.md#checkpoint-format-of-the-port).
    net = build_generator("resnet_6blocks", norm="instance")
    assert count_parameters(net) == 7_837_699
    assert "model.15.conv_block.5.weight" in net.state_dict() and "model.16.conv_block.1.weight" not in net.state_dict()
    assert layout(net)["model.23.weight"] == (3, 64, 7, 7)


def test_affine_instance_norm_adds_scale_and_shift():
    net = build_generator("resnet_6blocks", norm="instance_affine")
    keys = net.state_dict().keys()
    assert "model.2.weight" in keys and "model.2.bias" in keys
    assert not any("running" in k for k in keys)


@pytest.mark.parametrize("arch, size", [("resnet_6blocks", 128), ("resnet_9blocks", 64), ("unet_128", 128), ("unet_256", 256)])
def test_generator_output_shape_and_range(arch, size):
    net = build_generator(arch, norm="batch" if arch.startswith("unet") else "instance", ngf=8).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, size, size))
    assert y.shape == (1, 3, size, size)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("padding, side", [(1, 14), (2, 19)])
def test_patch_map_size_at_128(padding, side):
    d = PatchDiscriminator(3, ndf=8, padding=padding)
    assert d(torch.randn(1, 3, 128, 128)).shape == (1, 1, side, side)


def test_init_weights_statistics_and_bias_zeroing():
    torch.manual_seed(0)
    net = init_weights(build_generator("resnet_6blocks", norm="instance_affine"))
    conv = net.model[4].weight
    assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
    norm = net.model[5].weight
    assert abs(norm.mean().item() - 1.0) < 0.01 and 0.005 < norm.std().item() < 0.04
    assert torch.all(net.model[4].bias == 0)
    with torch.no_grad():
        net.model[4].bias.fill_(0.3)
        net.model[5].bias.fill_(0.3)
    zero_conv_biases(net)
    assert torch.all(net.model[4].bias == 0)
    assert torch.all(net.model[5].bias == 0.3)  # norm shifts are parameters the Lua code keeps


def test_load_official_checkpoint_drops_stale_instance_norm_stats(tmp_path):
    source = init_weights(build_generator("resnet_6blocks", norm="instance", ngf=8))
    state = source.state_dict()
    state["model.2.running_mean"] = torch.zeros(8)  # as in old port checkpoints
    state["model.2.running_var"] = torch.ones(8)
    state["model.2.num_batches_tracked"] = torch.tensor(0)
    torch.save(state, tmp_path / "latest_net_G.pth")
    target = load_official_state_dict(build_generator("resnet_6blocks", norm="instance", ngf=8),
                                      torch.load(tmp_path / "latest_net_G.pth"))
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(source(x), target(x))


def test_load_official_checkpoint_is_strict():
    net = build_generator("resnet_6blocks", norm="instance", ngf=8)
    state = net.state_dict()
    del state["model.1.bias"]
    with pytest.raises(RuntimeError, match="model.1.bias"):
        load_official_state_dict(build_generator("resnet_6blocks", norm="instance", ngf=8), state)
