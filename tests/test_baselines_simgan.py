"""SimGAN and Feature loss + GAN: the self-regularisation term in pixels and on VGG16 relu4_2, the VGG
weights file (a fake one in a temp TORCH_HOME; nothing is downloaded), and runs end to end."""

import json

import pytest
import torch
from torchvision.models.vgg import make_layers

from repro import ReproError
from repro.train import train
from repro.methods import simgan
from repro.vgg import TRUNK, VGG16_FILE, VGGRelu4_2
from repro.config import load_config
from repro.losses import gan_loss
from repro.translate import generator_from_run, translate_folder
from tests.conftest import tiny_config
from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)


def simgan_config(**overrides):
    return tiny_config(**({"name": "tiny_simgan", "method": "simgan", "lambda_forward": 0.0, "lambda_backward": 0.0}
                          | overrides))


@pytest.fixture(scope="module")
def fake_vgg_state():
    """A state dict with the key names and shapes of torchvision's vgg16 file (features up to conv4_2, plus a
    classifier tensor the loader must ignore), with recognisable random values."""
    torch.manual_seed(123)
    trunk = make_layers(TRUNK)
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    (tmp_path / "torch_home" / "hub" / "checkpoints").mkdir(parents=True)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_pixel_self_regularisation_is_the_l1_to_the_input():
    src = torch.rand(2, 3, 8, 8) * 2 - 1
    fake = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_()
    loss = simgan.self_reg_loss(torch.nn.Identity(), src, fake)
    assert torch.allclose(loss, (src - fake).abs().mean())
    loss.backward()
    assert torch.allclose(fake.grad, torch.sign(fake - src) / fake.numel())


def test_generator_terms_weights_and_switches():
    cfg = simgan_config(lambda_self_reg=3.0, lambda_gan=2.0)
    nets = simgan.build_nets(cfg)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    terms, fake = simgan.generator_terms(nets["G"], nets["D_Y"], torch.nn.Identity(), x, cfg, "G")
    assert torch.allclose(terms["gan_G"], 2.0 * gan_loss(nets["D_Y"](fake), True, "lsgan"))
    assert torch.allclose(terms["self_reg_G"], 3.0 * (x - fake).abs().mean())
    terms, _ = simgan.generator_terms(nets["G"], nets["D_Y"], torch.nn.Identity(), x, simgan_config(lambda_self_reg=0.0), "G")
    assert set(terms) == {"gan_G"}  # a zero weight is not computed


def test_imagenet_vgg_is_read_from_the_torch_cache(torch_home, fake_vgg_state):
    torch.save(fake_vgg_state, torch_home / VGG16_FILE)
    vgg = VGGRelu4_2("imagenet")
    assert torch.equal(vgg.trunk[19].weight, fake_vgg_state["features.19.weight"])  # conv4_2
    assert isinstance(vgg.trunk[-1], torch.nn.ReLU) and len(vgg.trunk) == 21  # ends at relu4_2
    assert vgg(torch.zeros(2, 3, 32, 32)).shape == (2, 512, 4, 4)
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_input_is_imagenet_normalised(torch_home, fake_vgg_state):
    torch.save(fake_vgg_state, torch_home / VGG16_FILE)
    vgg = VGGRelu4_2("imagenet")
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(vgg(images), vgg.trunk(((images + 1) / 2 - mean) / std))


def test_missing_vgg_file_is_a_clear_error(torch_home, monkeypatch):
    monkeypatch.setenv("REPRO_VGG16_URL", "http://127.0.0.1:9/vgg16-397923af.pth")  # the on-demand fetch fails
    with pytest.raises(ReproError, match=f"(?s){VGG16_FILE}.*does not exist.*feature_weights = \"random\""):
        VGGRelu4_2("imagenet")


def test_wrong_vgg_file_is_a_clear_error(torch_home):
    torch.save({"features.0.weight": torch.zeros(3)}, torch_home / VGG16_FILE)
    with pytest.raises(ReproError, match="not torchvision's VGG16"):
        VGGRelu4_2("imagenet")


def test_random_features_are_seeded():
    a, b, c = VGGRelu4_2("random", seed=3), VGGRelu4_2("random", seed=3), VGGRelu4_2("random", seed=4)
    assert torch.equal(a.trunk[0].weight, b.trunk[0].weight)
    assert not torch.equal(a.trunk[0].weight, c.trunk[0].weight)


def test_feature_self_regularisation_is_the_l1_of_relu4_2_features(torch_home, fake_vgg_state):
    torch.save(fake_vgg_state, torch_home / VGG16_FILE)
    phi = simgan.self_regulariser(simgan_config(self_reg_space="vgg_relu4_2"), "cpu")
    src = torch.rand(1, 3, 16, 16) * 2 - 1
    fake = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_()
    loss = simgan.self_reg_loss(phi, src, fake)
    assert torch.allclose(loss, (phi(src) - phi(fake)).abs().mean())
    assert not torch.allclose(loss, (src - fake).abs().mean())
    loss.backward()
    assert fake.grad.abs().sum() > 0 and all(p.grad is None for p in phi.parameters())


@pytest.mark.parametrize("space", ["pixel", "vgg_relu4_2"])
def test_simgan_trains_and_translates_both_directions(tiny_data, tmp_path, space):
    run = tmp_path / "run"
    cfg = simgan_config(self_reg_space=space, feature_weights="random")
    train(cfg, tiny_data, run, device="cpu", progress=False)
    assert json.loads((run / "run.json").read_text())["finished"]
    assert f'self_reg_space = "{space}"' in (run / "config.toml").read_text()
    assert 'feature_weights = "random"' in (run / "config.toml").read_text()  # a random-feature run says so
    logged = json.loads((run / "losses.jsonl").read_text().splitlines()[-1])
    assert {"gan_G", "self_reg_G", "D_Y", "gan_F", "self_reg_F", "D_X"} == set(logged) - {"step", "epoch", "lr"}
    state = torch.load(run / "checkpoint.pt", weights_only=False)["nets"]
    for direction, net_name, folder in (("labels2photo", "G", "testB"), ("photo2labels", "F", "testA")):
        net, size, resize_filter = generator_from_run(run, direction, "cpu")
        assert torch.equal(net.model[1].weight, state[net_name]["model.1.weight"])
        written = translate_folder(net, tiny_data / folder, tmp_path / direction, size, resize_filter, progress=False)
        assert len(written) == 3


def test_feature_gan_without_the_vgg_file_stops_before_training(tiny_data, tmp_path, torch_home):
    with pytest.raises(ReproError, match="feature_weights"):
        train(simgan_config(self_reg_space="vgg_relu4_2"), tiny_data, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_shipped_feature_gan_configs():
    paper, smoke = load_config("cityscapes/feature_gan"), load_config("smoke/feature_gan")
    assert (paper.method, paper.self_reg_space, paper.feature_weights) == ("simgan", "vgg_relu4_2", "imagenet")
    assert (smoke.method, smoke.self_reg_space, smoke.feature_weights) == ("simgan", "vgg_relu4_2", "random")
    simgan_paper = load_config("cityscapes/simgan")
    assert (simgan_paper.self_reg_space, simgan_paper.lambda_forward, simgan_paper.lambda_backward) == ("pixel", 0.0, 0.0)


def test_simgan_trains_without_a_history_pool(tiny_data, tmp_path):
    train(simgan_config(pool_size=0), tiny_data, tmp_path / "run", device="cpu", progress=False)
    assert json.loads((tmp_path / "run/run.json").read_text())["finished"]
