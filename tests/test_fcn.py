"""FCN-8s geometry: Caffe layer names and sizes, output = input size, and the crop offsets 5 / 9 / 31
checked through the exact footprint of an impulse sent down each of the three score paths."""

import math

import pytest
import torch

from repro.eval.fcn import CONV_LAYERS, DECONV_LAYERS, bilinear_kernel, fcn8s

CAFFE_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
               "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "score_fr", "upscore2", "score_pool4",
               "upscore_pool4", "score_pool3", "upscore8"]


def test_parameters_carry_the_caffe_layer_names_and_vgg_sizes():
    with torch.device("meta"):
        model = fcn8s()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted({k.rsplit(".", 1)[0] for k in shapes}) == sorted(CAFFE_NAMES)
    assert sorted(CONV_LAYERS + DECONV_LAYERS) == sorted(CAFFE_NAMES)
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3) and shapes["conv5_3.weight"] == (512, 512, 3, 3)
    assert shapes["fc6.weight"] == (4096, 512, 7, 7) and shapes["fc7.weight"] == (4096, 4096, 1, 1)
    assert shapes["score_fr.weight"] == (20, 4096, 1, 1)
    assert shapes["score_pool4.weight"] == (20, 512, 1, 1) and shapes["score_pool3.weight"] == (20, 256, 1, 1)
    assert shapes["upscore2.weight"] == (20, 20, 4, 4) and "upscore2.bias" not in shapes
    assert shapes["upscore_pool4.weight"] == (20, 20, 4, 4) and shapes["upscore8.weight"] == (20, 20, 16, 16)
    vgg_convs = 14_714_688  # VGG16's 13 convolutions
    expected = (vgg_convs + 512 * 49 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 20 + 20
                + 512 * 20 + 20 + 256 * 20 + 20 + 20 * 20 * (16 + 16 + 256))
    assert sum(v.numel() for v in model.parameters()) == expected == 134_473_084


def test_width_scales_only_channel_counts():
    with torch.device("meta"):
        model = fcn8s(width=1 / 16)
    assert model.conv1_1.weight.shape == (4, 3, 3, 3) and model.conv1_1.padding == (100, 100)
    assert model.fc6.weight.shape == (256, 32, 7, 7) and model.fc6.padding == (0, 0)
    assert model.upscore8.kernel_size == (16, 16) and model.upscore8.stride == (8, 8)


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (32, 32), (37, 100), (128, 256), (255, 511)])
def test_output_size_equals_input_size(size):
    model = fcn8s(width=1 / 32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 20, *size)


def caffe_bilinear(k):
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2 * f)
    return torch.tensor([[(1 - abs(x / f - c)) * (1 - abs(y / f - c)) for x in range(k)] for y in range(k)])


@pytest.mark.parametrize("k", [4, 16])
def test_bilinear_kernel_is_caffes_bilinear_filler(k):
    weight = bilinear_kernel(3, k)
    for i in range(3):
        torch.testing.assert_close(weight[i, i], caffe_bilinear(k).float())
    assert weight[0, 1].abs().sum() == 0


def impulse_net(path: str):
    """Every conv passes channel 0 straight through (centre tap 1), pools keep the impulse in one cell,
    only `path`'s score layer is on, deconvolutions spread it over their whole kernel."""
    model = fcn8s(width=1 / 16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name in CONV_LAYERS:
            layer = getattr(model, name)
            k = layer.kernel_size[0]
            if not name.startswith("score") or name == path:
                layer.weight[0, 0, k // 2, k // 2] = 1
        for name in DECONV_LAYERS:
            getattr(model, name).weight[0, 0] = 1
    return model


def footprint(path: str, y: int) -> range:
    """Rows the impulse at input row y reaches, derived from Caffe's layer definitions:
    padded row p = y + 100; a 2x2/2 pool puts it in cell p // 2; a deconvolution (k, s) sends cell i to
    s*i .. s*i + k - 1; Crop(offset) maps row r of the cropped map to r + offset of its input."""
    p = y + 100
    if path == "score_pool3":
        j = p // 8 - 9  # crop 9 into upscore_pool4's grid
        lo, hi = 8 * j, 8 * j + 15
    elif path == "score_pool4":
        j = p // 16 - 5  # crop 5 into upscore2's grid
        lo, hi = 8 * (2 * j), 8 * (2 * j + 3) + 15
    else:  # score_fr: fc6 is 7x7 unpadded, its centre tap sees pool5 cell q + 3
        q = p // 32 - 3
        lo, hi = 8 * (2 * (2 * q)), 8 * (2 * (2 * q + 3) + 3) + 15
    return range(lo - 31, hi - 31 + 1)  # final crop 31


@pytest.mark.parametrize("path", ["score_pool3", "score_pool4", "score_fr"])
@pytest.mark.parametrize("y,x", [(70, 90), (83, 61)])
def test_crop_offsets_put_each_path_where_caffe_puts_it(path, y, x):
    model = impulse_net(path)
    image = torch.zeros(1, 3, 200, 200)
    image[0, 0, y, x] = 1
    with torch.no_grad():
        out = model(image)[0, 0]
    rows = torch.nonzero(out.abs().sum(1)).flatten().tolist()
    cols = torch.nonzero(out.abs().sum(0)).flatten().tolist()
    assert rows == [r for r in footprint(path, y) if 0 <= r < 200]
    assert cols == [c for c in footprint(path, x) if 0 <= c < 200]
    assert y in rows and x in cols  # and the crops keep it over the impulse
