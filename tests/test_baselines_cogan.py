"""CoGAN baseline: weight tying, the DCGAN nets, the GAN terms, translation by optimising z, a run end to end."""

import copy
import json

import pytest
import torch

from repro import ReproError
from repro.train import train
from repro.methods import cogan
from repro.methods.latent import Decoder, Encoder, halvings
from repro.losses import discriminator_loss, gan_loss
from repro.translate import generator_from_run, translate_folder
from tests.conftest import tiny_config
from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)


def cogan_config(**overrides):
    values = dict(name="tiny_cogan", method="cogan", gan_loss="vanilla", zero_conv_bias=False, lambda_forward=0.0,
                  lambda_backward=0.0, batch_size=2, iters_per_epoch=6, latent_dim=8, inversion_steps=5)
    return tiny_config(**(values | overrides))


@pytest.mark.parametrize("size", [8, 16, 32, 128])
def test_dcgan_nets_span_the_crop_size(size):
    z = torch.randn(2, 10)
    image = Decoder(10, 4, size)(z)
    assert image.shape == (2, 3, size, size) and image.abs().max() <= 1
    assert Encoder(10, 4, size)(image).shape == (2, 10)


@pytest.mark.parametrize("size", [4, 24, 100])
def test_crop_size_must_be_a_power_of_two(size):
    with pytest.raises(ReproError, match="power of two"):
        halvings(size)


def test_generators_tie_all_blocks_but_the_private_tail():
    G = cogan.CoupledGenerators(latent_dim=8, ngf=4, size=16, private=1)
    assert len(G.shared) == 2 and len(G.private["x"]) == len(G.private["y"]) == 1
    z = torch.randn(3, 8)
    x, y = G(z)
    assert torch.allclose(x, G.render(z, "x")) and torch.allclose(y, G.render(z, "y"))
    x.sum().backward()  # an X-side loss trains the shared blocks and X's tail, never Y's
    assert all(p.grad is not None for p in G.shared.parameters())
    assert all(p.grad is not None for p in G.private["x"].parameters())
    assert all(p.grad is None for p in G.private["y"].parameters())


def test_discriminators_tie_all_blocks_but_the_private_head():
    D = cogan.CoupledDiscriminators(ndf=4, size=16, private=1)
    assert D(torch.rand(2, 3, 16, 16), "x").shape == (2, 1)
    D(torch.rand(2, 3, 16, 16), "y").sum().backward()
    assert all(p.grad is not None for p in D.shared.parameters())
    assert all(p.grad is None for p in D.private["x"].parameters())
    with pytest.raises(ReproError, match="cogan_private_layers"):
        cogan.CoupledDiscriminators(ndf=4, size=16, private=3)


def test_step_is_the_coupled_gan_objective():
    cfg = cogan_config()
    parts = cogan.build(cfg, "cpu")
    G0, D0 = copy.deepcopy(parts.nets["G"]), copy.deepcopy(parts.nets["D"])
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    rng = torch.Generator().manual_seed(5)
    terms = parts.step(x, y, rng)
    z = torch.randn(2, cfg.latent_dim, generator=torch.Generator().manual_seed(5))
    fx, fy = G0(z)
    assert torch.allclose(terms["D_X"], discriminator_loss(D0(x, "x"), D0(fx, "x"), "vanilla"))
    assert torch.allclose(terms["D_Y"], discriminator_loss(D0(y, "y"), D0(fy, "y"), "vanilla"))
    D1 = parts.nets["D"]  # the generators' step comes second, against the updated discriminators
    assert torch.allclose(terms["gan_x"], gan_loss(D1(fx, "x"), True, "vanilla"), atol=1e-6)
    assert torch.allclose(terms["gan_y"], gan_loss(D1(fy, "y"), True, "vanilla"), atol=1e-6)


def test_inversion_fits_z_on_the_source_side_and_renders_the_target_side():
    torch.manual_seed(0)
    G = cogan.CoupledGenerators(latent_dim=6, ngf=8, size=16).eval()
    z_true = torch.randn(2, 6)
    with torch.no_grad():
        x, y = G(z_true)
    translate = cogan.LatentInversion(G, "x", "y", latent_dim=6, steps=300, lr=0.05)
    with torch.no_grad():  # as translate_folder calls it
        z_fit = translate.fit(x)
        out = translate(x)
    z0 = translate.z0.expand(2, -1)
    fit_error = (G.render(z_fit, "x") - x).pow(2).mean()
    assert fit_error < 0.1 * (G.render(z0, "x") - x).pow(2).mean()
    assert torch.allclose(out, G.render(z_fit, "y"), atol=1e-6)
    assert (out - y).pow(2).mean() < (G.render(z0, "y") - y).pow(2).mean()
    assert not any(p.requires_grad for p in G.parameters())


def test_inversion_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    G = cogan.CoupledGenerators(latent_dim=6, ngf=4, size=16)
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    translate = cogan.LatentInversion(G, "y", "x", latent_dim=6, steps=20, lr=0.05).eval()
    with torch.no_grad():
        assert torch.allclose(translate(images)[1:2], translate(images[1:2]), atol=1e-5)


def test_cogan_trains_and_translates_both_directions(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = cogan_config()
    train(cfg, tiny_data, run, device="cpu", progress=False)
    assert json.loads((run / "run.json").read_text())["finished"]
    lines = (run / "losses.jsonl").read_text().splitlines()
    assert len(lines) == 12 and {"D_X", "D_Y", "gan_x", "gan_y"} <= set(json.loads(lines[-1]))  # 2 epochs x 6 batches
    state = torch.load(run / "checkpoint.pt", weights_only=False)["nets"]
    for direction, source, target, folder in (("labels2photo", "x", "y", "testB"), ("photo2labels", "y", "x", "testA")):
        net, size, resize_filter = generator_from_run(run, direction, "cpu")
        assert (net.source, net.target, size) == (source, target, 16)
        assert torch.equal(net.generators.shared[0][0].weight, state["G"]["shared.0.0.weight"])
        assert len(translate_folder(net, tiny_data / folder, tmp_path / direction, size, resize_filter, progress=False)) == 3
