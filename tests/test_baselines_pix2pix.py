"""pix2pix baseline: official net layouts, paired data, the loss terms, test-time modes, a run end to end."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repro import ReproError
from repro.train import train
from repro.methods import pix2pix
from repro.data.loaders import AlignedData
from repro.config import make_config
from repro.data.loaders import load_aligned
from repro.losses import discriminator_loss, gan_loss
from repro.networks import count_parameters
from repro.translate import generator_from_run, translate_folder
from tests.test_networks import layout, official_layout


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These tests run tiny nets, for which a second intra-op thread only adds waiting; on a busy 2-core
    machine the two threads stall each other (a 10x slowdown). One thread, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pix2pix_config(**overrides):
    values = dict(name="tiny_pix2pix", method="pix2pix", generator="unet_128", norm="batch", dropout=True, d_padding=1,
                  zero_conv_bias=False, gan_loss="vanilla", pool_size=0, load_size=36, crop_size=32,
                  unet_num_downs=5, ngf=4, ndf=4, epochs_constant=1, epochs_decay=1, iters_per_epoch=3, log_every=1)
    return make_config("paper", **(values | overrides))


def write_aligned_dataset(root: Path, n=4, size=36) -> Path:
    """Cityscapes-style names: trainA photos *_leftImg8bit, trainB label maps *_gtFine_color; a label map is the
    photo's negative, so a correctly paired batch has x == -y in [-1, 1]."""
    rng = np.random.default_rng(0)
    for split, photo_dir, label_dir in (("train", "trainA", "trainB"), ("test", "testA", "testB")):
        (root / photo_dir).mkdir(parents=True, exist_ok=True)
        (root / label_dir).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            frame = f"{['bochum', 'aachen', 'zurich', 'jena'][i % 4]}_{i:06d}_000019"
            photo = np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((size // 4, size // 4, 1), np.uint8))
            Image.fromarray(photo).save(root / photo_dir / f"{frame}_leftImg8bit.png")
            Image.fromarray(255 - photo).save(root / label_dir / f"{frame}_gtFine_color.png")
    return root


@pytest.mark.parametrize("arch, layout_file", [("unet_128", "unet_128"), ("unet_256", "unet_256")])
def test_pix2pix_generator_equals_the_official_layout(arch, layout_file):
    size = int(arch[5:])  # unet_256's 8 halvings need 256x256 crops (repro.config refuses 128 for it)
    cfg = make_config("paper", method="pix2pix", generator=arch, norm="batch", dropout=True, crop_size=size,
                      load_size=max(size, 143))
    entries, total = official_layout(layout_file)
    net = pix2pix.make_generator(cfg)
    assert layout(net) == entries and count_parameters(net) == total


def test_pix2pix_discriminator_is_the_official_6_channel_patchgan():
    cfg = make_config("paper", method="pix2pix", norm="batch", d_padding=1)
    entries, total = official_layout("nlayer_d_pix2pix_6ch_batchnorm")
    net = pix2pix.make_discriminator(cfg)
    assert layout(net) == entries and count_parameters(net) == total


def test_build_nets_uses_those_builders_for_both_directions():
    cfg = pix2pix_config(unet_num_downs=0, crop_size=128, load_size=143)
    nets = pix2pix.build_nets(cfg)
    assert set(nets) == {"G", "F", "D_X", "D_Y"}
    for g, d in (("G", "D_Y"), ("F", "D_X")):
        assert layout(nets[g]) == layout(pix2pix.make_generator(cfg))
        assert layout(nets[d]) == layout(pix2pix.make_discriminator(cfg))
        assert nets[d].model[0].in_channels == 6


def test_unet_num_downs_gives_a_32x32_unet():
    net = pix2pix.make_generator(pix2pix_config()).eval()
    assert net(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 3, 32, 32)
    assert not any(isinstance(m, torch.nn.Dropout) for m in net.modules())  # no 8*ngf middle block at 5 halvings


def test_load_aligned_pairs_by_frame_id(tmp_path):
    data = write_aligned_dataset(tmp_path)
    x, y, names = load_aligned(data / "trainB", data / "trainA", 36)
    assert torch.equal(x.int(), 255 - y.int())
    assert names[0].endswith("_gtFine_color.png")
    (data / "trainA" / "aachen_000001_000019_leftImg8bit.png").rename(data / "trainA" / "aachen_000099_000019_leftImg8bit.png")
    with pytest.raises(ReproError, match="aachen_000001_000019"):
        load_aligned(data / "trainB", data / "trainA", 36)


def test_load_aligned_pairs_plain_names_by_stem(tmp_path):
    for folder, value in (("a", 10), ("b", 20)):
        (tmp_path / folder).mkdir()
        for name in ("one", "two"):
            Image.fromarray(np.full((8, 8, 3), value + len(name), np.uint8)).save(tmp_path / folder / f"{name}.png")
    a, b, names = load_aligned(tmp_path / "a", tmp_path / "b", 8)
    assert names == ["one.png", "two.png"] and torch.equal(b.int() - a.int(), torch.full_like(a.int(), 10))


def test_aligned_batches_keep_pairs_under_crop_and_flip(tmp_path):
    data = AlignedData.from_folders(write_aligned_dataset(tmp_path) / "trainB", tmp_path / "trainA", 36, 32, True, "bilinear")
    rng = torch.Generator().manual_seed(0)
    for _ in range(6):
        order = data.epoch_order(rng)
        assert torch.equal(order[:, 0], order[:, 1]) and sorted(order[:, 0].tolist()) == list(range(len(data)))
        x, y = data.batch(order[:2], rng)
        assert x.shape == (2, 3, 32, 32) and torch.allclose(x, -y, atol=1e-6)


def test_direction_terms_are_the_pix2pix_objective():
    """D step on (x, y) vs (x, G(x)), then G step: BCE against real + lambda_l1 * L1 to the paired target."""
    cfg = pix2pix_config(lambda_l1=7.0)
    nets = pix2pix.build_nets(cfg)
    opts = {n: torch.optim.Adam(net.parameters(), lr=0.01) for n, net in nets.items()}
    G0, D0 = copy.deepcopy(nets["G"]), copy.deepcopy(nets["D_Y"])
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    terms = pix2pix.direction_terms(nets["G"], nets["D_Y"], x, y, cfg, nets, opts, "G", "D_Y")
    torch.manual_seed(1)
    fake = G0(x)  # same dropout draws (none at 5 halvings) and batch statistics
    expected_d = discriminator_loss(D0(torch.cat([x, y], 1)), D0(torch.cat([x, fake], 1)), "vanilla")
    assert torch.allclose(terms["D_Y"], expected_d)
    assert torch.allclose(terms["l1_G"], 7.0 * (fake - y).abs().mean())
    # the adversarial term is judged by the discriminator after its own step (G step comes second)
    assert torch.allclose(terms["gan_G"], gan_loss(nets["D_Y"](torch.cat([x, fake], 1)), True, "vanilla"), atol=1e-6)
    assert not torch.equal(D0.model[0].weight, nets["D_Y"].model[0].weight)
    assert not torch.equal(G0.model.model[0].weight, nets["G"].model.model[0].weight)


def test_test_time_modes():
    net = pix2pix.make_generator(pix2pix_config(unet_num_downs=6, crop_size=64, load_size=64))  # 6 halvings: dropout
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    train_mode = pix2pix.TestTimeGenerator(net, "train", seed=0).eval()  # translate_folder calls .eval()
    with torch.no_grad():
        together = train_mode(images)
        assert net.training  # the port's default: batch norm and dropout in train mode at test time
        alone = train_mode(images[1:2])
        evaluated = pix2pix.TestTimeGenerator(net, "eval", seed=0).eval()(images)
    assert not net.training
    assert torch.allclose(together[1:2], alone, atol=1e-6)  # per-image statistics and seeded dropout: batching-proof
    assert not torch.allclose(together, evaluated, atol=1e-3)
    with torch.no_grad():
        other_seed = pix2pix.TestTimeGenerator(net, "train", seed=1)(images)
    assert not torch.allclose(together, other_seed, atol=1e-4)  # dropout is on


def test_pix2pix_trains_and_translates_both_directions(tmp_path):
    data = write_aligned_dataset(tmp_path / "data")
    run = tmp_path / "run"
    cfg = pix2pix_config()
    train(cfg, data, run, device="cpu", progress=False)
    assert json.loads((run / "run.json").read_text())["finished"]
    assert 'method = "pix2pix"' in (run / "config.toml").read_text()
    logged = json.loads((run / "losses.jsonl").read_text().splitlines()[-1])
    assert {"D_Y", "gan_G", "l1_G", "D_X", "gan_F", "l1_F"} <= set(logged) and logged["step"] == 6
    exported = pix2pix.make_generator(cfg)
    exported.load_state_dict(torch.load(run / "G_x2y.pth", weights_only=True))  # the port's format, strictly
    for direction, folder in (("labels2photo", "testB"), ("photo2labels", "testA")):
        net, size, resize_filter = generator_from_run(run, direction, "cpu")
        assert isinstance(net, pix2pix.TestTimeGenerator) and size == 32
        written = translate_folder(net, data / folder, tmp_path / direction, size, resize_filter, progress=False)
        assert len(written) == 4 and Image.open(written[0]).size == (32, 32)
    state = torch.load(run / "checkpoint.pt", weights_only=False)["nets"]
    g, f = generator_from_run(run, "x2y", "cpu")[0].net, generator_from_run(run, "y2x", "cpu")[0].net
    assert torch.equal(g.model.model[0].weight, state["G"]["model.model.0.weight"])
    assert torch.equal(f.model.model[0].weight, state["F"]["model.model.0.weight"])
