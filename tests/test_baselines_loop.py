"""The training loop (repro.train.train) as the baselines use it: seeded determinism, exact resume,
NaN stop, refusals, dispatch from repro.train / repro.translate, and the shipped configs of the six
Table 2/3 rows."""

import json

import pytest
import torch

import repro.methods.simgan
from repro import ReproError
from repro.config import load_config
from repro.rows import TABLE_ROWS, is_implemented
from repro.train import train
from tests.conftest import tiny_config
from tests.test_baselines_pix2pix import one_torch_thread, pix2pix_config, write_aligned_dataset  # noqa: F401

NO_CYCLE = dict(lambda_forward=0.0, lambda_backward=0.0)
CONFIGS = {
    "simgan": lambda **o: tiny_config(**(dict(name="t", method="simgan", **NO_CYCLE) | o)),
    "feature_gan": lambda **o: tiny_config(**(dict(name="t", method="simgan", self_reg_space="vgg_relu4_2",
                                                   feature_weights="random", **NO_CYCLE) | o)),
    "cogan": lambda **o: tiny_config(**(dict(name="t", method="cogan", gan_loss="vanilla", batch_size=2, iters_per_epoch=4,
                                             latent_dim=8, inversion_steps=3, **NO_CYCLE) | o)),
    "bigan": lambda **o: tiny_config(**(dict(name="t", method="bigan", pool_size=0, **NO_CYCLE) | o)),
    "bigan_latent": lambda **o: tiny_config(**(dict(name="t", method="bigan", bigan_code="latent", latent_dim=8,
                                                    **NO_CYCLE) | o)),
    "pix2pix": lambda **o: pix2pix_config(**o),
    "pix2pix_dropout": lambda **o: pix2pix_config(**(dict(unet_num_downs=6, load_size=64, crop_size=64) | o)),
}


@pytest.fixture(scope="module")
def aligned_data(tmp_path_factory):
    return write_aligned_dataset(tmp_path_factory.mktemp("aligned"), size=64)


def data_for(key, tiny_data, aligned_data):
    return aligned_data if key.startswith("pix2pix") else tiny_data


def weights(run):
    return torch.load(run / "checkpoint.pt", weights_only=False)["nets"]


def same_weights(a, b):
    return all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])


@pytest.mark.parametrize("key", list(CONFIGS))
def test_resume_equals_uninterrupted(key, tiny_data, aligned_data, tmp_path):
    """Stopped mid-epoch and resumed: same weights and same log as one uninterrupted run (same seed -> same run)."""
    cfg, data = CONFIGS[key](seed=3), data_for(key, tiny_data, aligned_data)
    train(cfg, data, tmp_path / "full", device="cpu", progress=False)  # through repro.train's dispatch
    train(cfg, data, tmp_path / "cut", device="cpu", progress=False, stop_after=3)
    assert not (tmp_path / "cut/run.json").exists()
    train(cfg, data, tmp_path / "cut", device="cpu", progress=False, resume=True)
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    assert (tmp_path / "full/losses.jsonl").read_text() == (tmp_path / "cut/losses.jsonl").read_text()
    assert json.loads((tmp_path / "cut/run.json").read_text())["finished"]


def test_seed_changes_the_run(tiny_data, tmp_path):
    train(CONFIGS["cogan"](seed=1), tiny_data, tmp_path / "a", device="cpu", progress=False)
    train(CONFIGS["cogan"](seed=2), tiny_data, tmp_path / "b", device="cpu", progress=False)
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_l1 = repro.methods.simgan.l1

    def poisoned_l1(a, b):
        calls["n"] += 1
        return real_l1(a, b) * (float("nan") if calls["n"] > 10 else 1.0)  # two l1 per iteration: NaN at 6

    monkeypatch.setattr(repro.methods.simgan, "l1", poisoned_l1)
    with pytest.raises(ReproError, match="became nan.*last good checkpoint"):
        train(CONFIGS["simgan"](checkpoint_every=2), tiny_data, tmp_path / "run", device="cpu", progress=False)
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert state["position"]["step"] == 4  # epoch 1 ends at 4; the NaN at step 6 overwrote nothing
    assert all(torch.isfinite(v).all() for net in state["nets"].values() for v in net.values() if v.is_floating_point())


def test_existing_run_needs_resume_and_the_same_config(tiny_data, tmp_path):
    train(CONFIGS["bigan"](), tiny_data, tmp_path / "run", device="cpu", progress=False, stop_after=1)
    with pytest.raises(ReproError, match="--resume"):
        train(CONFIGS["bigan"](), tiny_data, tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(ReproError, match="different config"):
        train(CONFIGS["bigan"](bigan_code="latent"), tiny_data, tmp_path / "run", device="cpu", progress=False, resume=True)


def test_iters_per_epoch_counts_batches_and_a_batch_larger_than_the_data_is_refused(tiny_data, tmp_path):
    train(CONFIGS["cogan"](batch_size=3, iters_per_epoch=2), tiny_data, tmp_path / "run", device="cpu", progress=False)
    assert [json.loads(l)["step"] for l in (tmp_path / "run/losses.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    with pytest.raises(ReproError, match="batch_size 16 is larger than the 6 training images"):
        train(CONFIGS["cogan"](batch_size=16, iters_per_epoch=0), tiny_data, tmp_path / "run2", device="cpu", progress=False)


def test_every_table_2_and_3_row_is_implemented_at_both_scales():
    for table in (2, 3):
        for row in TABLE_ROWS[table]:
            assert is_implemented(row, "paper") and is_implemented(row, "smoke"), row.key


@pytest.mark.parametrize("key, method", [("pix2pix", "pix2pix"), ("simgan", "simgan"), ("feature_gan", "simgan"),
                                         ("cogan", "cogan"), ("bigan", "bigan")])
def test_shipped_configs(key, method):
    paper, smoke = load_config(f"cityscapes/{key}"), load_config(f"smoke/{key}")
    assert paper.name == smoke.name == key and paper.method == smoke.method == method
    assert (paper.crop_size, smoke.crop_size, smoke.ngf) == (128, 32, 16)
    assert paper.lambda_forward == paper.lambda_backward == 0.0  # no baseline has a cycle term
    # smoke = the paper config with sizes, widths and lengths changed (and random VGG features for feature_gan)
    scale_fields = {"load_size", "crop_size", "ngf", "ndf", "epochs_constant", "epochs_decay", "iters_per_epoch",
                    "log_every", "unet_num_downs", "batch_size", "feature_weights"}
    differing = {k for k, v in vars(paper).items() if getattr(smoke, k) != v}
    assert differing <= scale_fields, differing - scale_fields


def test_pix2pix_shipped_config_is_the_papers_upper_bound():
    cfg = load_config("cityscapes/pix2pix")
    assert (cfg.generator, cfg.norm, cfg.dropout, cfg.gan_loss, cfg.lambda_l1, cfg.lr, cfg.beta1) == (
        "unet_128", "batch", True, "vanilla", 100.0, 0.0002, 0.5)
    assert (cfg.crop_size, cfg.pix2pix_test_mode, cfg.d_padding) == (128, "train", 1)


def test_bad_baseline_field_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('method = "simgan"\nself_reg_space = "vgg"\n')
    with pytest.raises(ReproError, match="self_reg_space"):
        load_config(str(path))


def test_unknown_method_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('method = "simgam"\n')
    with pytest.raises(ReproError, match="typo.toml: method = 'simgam' is not one of"):
        load_config(str(path))


def test_simgan_refuses_the_joint_update_order(tiny_data, tmp_path):
    with pytest.raises(ReproError, match="sequential"):
        train(CONFIGS["simgan"](update_order="joint"), tiny_data, tmp_path / "run", device="cpu", progress=False)


@pytest.mark.parametrize("key", ["pix2pix_dropout", "cogan"])
def test_fid_is_logged_and_leaves_training_untouched(key, tiny_data, aligned_data, tmp_path):
    """FID translates with a snapshot of the nets (pix2pix in its test mode, CoGAN by optimising z under the
    FID's no_grad): one row per epoch, and the same weights as a run without FID."""
    from repro.methods import cogan, pix2pix
    from tests.test_fid import random_inception_state_dict
    weights_file = tmp_path / "inception.pth"
    torch.save(random_inception_state_dict(), weights_file)
    module, data = (pix2pix, aligned_data) if key.startswith("pix2pix") else (cogan, tiny_data)
    train(CONFIGS[key](fid_every=1, fid_images=3), data, tmp_path / "fid", device="cpu", progress=False,
                 fid_weights=weights_file)
    rows = [json.loads(l) for l in (tmp_path / "fid/fid.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["fid"] > 0 for r in rows)
    train(CONFIGS[key](), data, tmp_path / "plain", device="cpu", progress=False)
    assert same_weights(weights(tmp_path / "fid"), weights(tmp_path / "plain"))
