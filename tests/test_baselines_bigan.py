"""BiGAN / ALI baseline in both readings: the joint objective, what D sees, translation paths, runs end to end."""

import copy
import json

import pytest
import torch

from repro.methods import bigan
from repro.config import load_config
from repro.losses import discriminator_loss, gan_loss
from repro.train import train
from repro.translate import generator_from_run, translate_folder
from tests.conftest import tiny_config
from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)


def bigan_config(**overrides):
    values = dict(name="tiny_bigan", method="bigan", lambda_forward=0.0, lambda_backward=0.0, pool_size=0, latent_dim=8)
    return tiny_config(**(values | overrides))


def test_image_reading_judges_label_map_photo_pairs():
    """D(E(y), y) is the 'real' side, D(x, G(x)) the 'fake' one; G and E each try to swap them."""
    cfg = bigan_config(bigan_code="image")
    parts = bigan.build(cfg, "cpu")
    assert parts.nets["D"].model[0].in_channels == 6
    nets0 = copy.deepcopy(parts.nets)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    terms = parts.step(x, y, torch.Generator().manual_seed(0))
    G, E, D = nets0["G"], nets0["E"], nets0["D"]
    generated, encoded = torch.cat([x, G(x)], 1), torch.cat([E(y), y], 1)  # always (label map, photo)
    assert torch.allclose(terms["gan_G"], gan_loss(D(generated), True, "lsgan"))
    assert torch.allclose(terms["gan_E"], gan_loss(D(encoded), False, "lsgan"))
    assert torch.allclose(terms["D"], discriminator_loss(D(encoded), D(generated), "lsgan"))
    for name in ("G", "E", "D"):
        assert not torch.equal(nets0[name].model[1 if name != "D" else 0].weight,
                               parts.nets[name].model[1 if name != "D" else 0].weight)


def test_latent_reading_is_one_bigan_per_domain():
    cfg = bigan_config(bigan_code="latent")
    parts = bigan.build(cfg, "cpu")
    assert set(parts.nets) == {"G_X", "E_X", "D_X", "G_Y", "E_Y", "D_Y"}
    nets0 = copy.deepcopy(parts.nets)
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    terms = parts.step(x, y, torch.Generator().manual_seed(4))
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(4))  # the first draw is X's
    G, E, D = nets0["G_X"], nets0["E_X"], nets0["D_X"]
    assert torch.allclose(terms["gan_G_X"], gan_loss(D(G(z), z), True, "lsgan"))
    assert torch.allclose(terms["gan_E_X"], gan_loss(D(x, E(x)), False, "lsgan"))
    assert torch.allclose(terms["D_X"], discriminator_loss(D(x, E(x)), D(G(z), z), "lsgan"))
    assert {"gan_G_Y", "gan_E_Y", "D_Y"} <= set(terms)


def test_joint_discriminator_sees_both_image_and_code():
    D = bigan.JointDiscriminator(ndf=4, size=16, latent_dim=8)
    images, z = torch.rand(3, 3, 16, 16), torch.randn(3, 8)
    assert D(images, z).shape == (3, 1)
    assert not torch.allclose(D(images, z), D(images, torch.randn(3, 8)))
    assert not torch.allclose(D(images, z), D(torch.rand(3, 3, 16, 16), z))


@pytest.mark.parametrize("code", ["image", "latent"])
def test_bigan_trains_and_translates_both_directions(tiny_data, tmp_path, code):
    run = tmp_path / "run"
    train(bigan_config(bigan_code=code), tiny_data, run, device="cpu", progress=False)
    assert json.loads((run / "run.json").read_text())["finished"]
    state = torch.load(run / "checkpoint.pt", weights_only=False)["nets"]
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    for direction, folder in (("labels2photo", "testB"), ("photo2labels", "testA")):
        net, size, resize_filter = generator_from_run(run, direction, "cpu")
        net.eval()
        if code == "image":  # labels -> photo is G(x), photo -> labels is the encoder E(y)
            name = "G" if direction == "labels2photo" else "E"
            assert torch.equal(net.model[1].weight, state[name]["model.1.weight"])
        else:  # encode on the input's side, decode on the other
            source, target = ("X", "Y") if direction == "labels2photo" else ("Y", "X")
            encoder, decoder = net
            assert torch.equal(encoder.model[0][0].weight, state[f"E_{source}"]["model.0.0.weight"])
            assert torch.equal(decoder.model[0][0].weight, state[f"G_{target}"]["model.0.0.weight"])
            with torch.no_grad():
                assert torch.allclose(net(images), decoder(encoder(images)))
        assert len(translate_folder(net, tiny_data / folder, tmp_path / direction, size, resize_filter, progress=False)) == 3


def test_shipped_bigan_config_is_the_papers_reading():
    for scale in ("cityscapes", "smoke"):
        cfg = load_config(f"{scale}/bigan")
        assert (cfg.method, cfg.bigan_code, cfg.generator, cfg.gan_loss) == ("bigan", "image", "resnet_6blocks", "lsgan")
