"""Packed runs (repro.methods.packing): K runs in one vectorised step equal the same runs trained alone.

In float64 a packed run and the run alone must agree to rounding (1e-9): the same math, summed in another
order. In float32 the orders differ by ~1e-7 per operation and Adam (whose step is about lr whatever the
gradient's size) turns the sign of near-zero gradient components into lr-sized weight differences, so the
float32 check is on the first iteration's losses, before any update. Over 20 iterations even float64
differences grow, about 3x per step (measured: 1e-15 at step 1, up to 8e-7 in a loss and 3e-8 in a weight at
step 20, steadily, no jump): the GAN's own sensitivity to rounding, which a run alone has too (the same run
alone with every input pixel moved by 1e-15: 4e-15 at step 1, 8e-8 at step 20); a packing bug shows at step 1
at the size of the loss."""

import json

import pytest
import torch

import repro.data.loaders as loaders
from repro import ReproError
from repro.config import Config
from repro.methods import METHODS
from repro.methods.cyclegan import active_terms, generator_terms
from repro.methods.packing import PackedRuns
from repro.train import train, train_runs
from tests.conftest import tiny_config
from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)

ROWS = {"cyclegan": {}, "cycle_alone": {"lambda_gan": 0.0}, "gan_forward": {"lambda_backward": 0.0},
        "gan_alone": {"lambda_forward": 0.0, "lambda_backward": 0.0}}


def configs(order="sequential", rows=("cyclegan", "cycle_alone", "gan_forward"), iters_per_epoch=3, **extra):
    return [tiny_config(seed=3 + k, update_order=order, lambda_identity=0.5 if order == "joint" else 0.0,
                        iters_per_epoch=iters_per_epoch, log_every=1, **ROWS[row], **extra)
            for k, row in enumerate(rows)]


def logs(run):
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def nets(run):
    return torch.load(run / "checkpoint.pt", weights_only=False)["nets"]


@pytest.fixture
def float64(monkeypatch):
    """Everything in float64: nets (default dtype) and images (the loader's conversion)."""
    monkeypatch.setattr(loaders, "to_model_range", lambda images: images.double().div_(127.5).sub_(1.0))
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


@pytest.mark.parametrize("order", ["sequential", "joint"])
def test_packed_runs_equal_runs_alone_in_float64(tiny_data, tmp_path, float64, order):
    cfgs = configs(order, iters_per_epoch=10)  # 2 epochs x 10 = 20 steps, 3 rows, other loss weights and seeds
    packed = [tmp_path / f"packed{k}" for k in range(len(cfgs))]
    train_runs(cfgs, tiny_data, packed, device="cpu", progress=False)
    for k, cfg in enumerate(cfgs):
        alone = tmp_path / f"alone{k}"
        train(cfg, tiny_data, alone, device="cpu", progress=False)
        a, b = logs(packed[k]), logs(alone)
        assert [set(r) for r in a] == [set(r) for r in b] and len(a) == 20  # the terms alone logs, no more
        assert max(abs(x[n] - y[n]) for x, y in zip(a[:6], b[:6]) for n in x) < 1e-9  # rounding only
        assert max(abs(x[n] - y[n]) for x, y in zip(a, b) for n in x) < 1e-5  # rounding, grown (docstring)
        for name, state in nets(alone).items():
            for key, value in state.items():
                assert torch.allclose(nets(packed[k])[name][key], value, rtol=0, atol=1e-6), (k, name, key)
        assert (packed[k] / "config.toml").read_text() == (alone / "config.toml").read_text()
        assert {p.name for p in packed[k].glob("*.pth")} == {"G_x2y.pth", "F_y2x.pth"}
        info = json.loads((packed[k] / "run.json").read_text())
        assert info["finished"] and info["packed"]["runs"] == 3 and info["packed"]["index"] == k


def test_packed_first_losses_equal_alone_in_float32(tiny_data, tmp_path):
    cfgs = configs()
    train_runs(cfgs, tiny_data, [tmp_path / f"p{k}" for k in range(3)], device="cpu", progress=False, stop_after=1)
    for k, cfg in enumerate(cfgs):
        train(cfg, tiny_data, tmp_path / f"a{k}", device="cpu", progress=False, stop_after=1)
        first_packed, first_alone = logs(tmp_path / f"p{k}")[0], logs(tmp_path / f"a{k}")[0]
        for name, value in first_alone.items():
            assert first_packed[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_a_zero_weight_term_adds_exactly_zero_gradient_in_a_pack():
    cfgs = configs(rows=("cyclegan", "gan_alone"))
    parts = METHODS["cyclegan"].build_packed(cfgs, torch.device("cpu"))
    on = {k: any(active_terms(c)[k] for c in cfgs) for k in ("gan", "forward", "backward", "identity")}
    packed = PackedRuns(parts.nets, cfgs, on, [{}, {}], torch.device("cpu"))
    x, y = torch.rand(2, 1, 3, 16, 16) * 2 - 1, torch.rand(2, 1, 3, 16, 16) * 2 - 1
    terms, _ = packed.apply(lambda n, c, src, tgt: generator_terms(n["G"], n["F"], n["D_Y"], src, tgt, c,
                                                                   "forward", "backward", on), x, y)
    params = list(parts.nets["G"].parameters())
    for term in ("cycle_forward", "cycle_backward"):  # gan_alone (run 1) weighs both cycles 0
        grads = torch.autograd.grad(terms[term].sum(), params, retain_graph=True)
        assert all(g[1].abs().max() == 0 for g in grads), term
        assert any(g[0].abs().max() > 0 for g in grads), term  # while CycleGAN's run gets its gradient


def test_the_loss_code_of_a_packed_run_reads_a_config():
    """Inside the vmap each run's loss code gets a Config: the pack's shared fields and that run's loss weights,
    so a field a solo run reads is there (and the same) for a packed run."""
    cfgs = configs(rows=("cyclegan", "gan_alone"))
    parts = METHODS["cyclegan"].build_packed(cfgs, torch.device("cpu"))
    packed = PackedRuns(parts.nets, cfgs, {}, [{}, {}], torch.device("cpu"))
    seen = []
    weights = packed.apply(lambda n, c, x: seen.append(c) or x * c.lambda_forward, torch.ones(2))
    assert [type(c) for c in seen] == [Config] and seen[0].pool_size == cfgs[0].pool_size
    assert weights.tolist() == [c.lambda_forward for c in cfgs]  # run 1 (GAN alone) weighs its cycle 0


def test_a_run_without_adversarial_term_keeps_its_discriminators(tiny_data, tmp_path):
    cfgs = configs(rows=("cyclegan", "cycle_alone"))
    runs = [tmp_path / "cyclegan", tmp_path / "cycle_alone"]
    train_runs(cfgs, tiny_data, runs, device="cpu", progress=False)
    alone = tmp_path / "alone"
    train(cfgs[1], tiny_data, alone, device="cpu", progress=False)
    for name in ("D_X", "D_Y"):  # never trained alone, never moved in the pack
        for key, value in nets(alone)[name].items():
            assert torch.equal(nets(runs[1])[name][key], value)


def test_a_killed_and_resumed_pack_equals_the_uninterrupted_pack(tiny_data, tmp_path):
    cfgs = configs(checkpoint_every=2)
    whole = [tmp_path / f"whole{k}" for k in range(3)]
    train_runs(cfgs, tiny_data, whole, device="cpu", progress=False)
    parts = [tmp_path / f"parts{k}" for k in range(3)]
    train_runs(cfgs, tiny_data, parts, device="cpu", progress=False, stop_after=4)  # mid-epoch 2
    train_runs(cfgs, tiny_data, parts, device="cpu", progress=False, resume=True)
    for a, b in zip(whole, parts):
        assert (a / "losses.jsonl").read_text() == (b / "losses.jsonl").read_text()
        for name, state in nets(a).items():
            for key, value in state.items():
                assert torch.equal(nets(b)[name][key], value), (a, name, key)


def test_only_seeds_and_loss_weights_may_differ_in_a_pack(tiny_data, tmp_path):
    with pytest.raises(ReproError, match="crop_size"):
        train_runs([tiny_config(seed=1), tiny_config(seed=2, crop_size=12)], tiny_data,
                   [tmp_path / "a", tmp_path / "b"], device="cpu", progress=False)
    with pytest.raises(ReproError, match="implemented for CycleGAN"):
        train_runs([tiny_config(method="simgan"), tiny_config(method="simgan", seed=4)], tiny_data,
                   [tmp_path / "c", tmp_path / "d"], device="cpu", progress=False)


def test_repro_train_seeds_packs_them_into_their_own_folders(tiny_data, tmp_path):
    from repro.cli import main

    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text("name = 'tiny'\nload_size = 20\ncrop_size = 16\nngf = 4\nndf = 4\nepochs_constant = 1\n"
                        "epochs_decay = 0\niters_per_epoch = 2\npool_size = 2\n")
    assert main(["train", str(cfg_file), "--data", str(tiny_data), "--out", str(tmp_path / "runs"), "--device", "cpu",
                 "--quiet", "--seeds", "4", "5"]) == 0
    for k, seed in enumerate((4, 5)):
        info = json.loads((tmp_path / "runs" / f"seed-{seed}" / "run.json").read_text())
        assert info["finished"] and info["packed"]["index"] == k
        assert f"seed = {seed}" in (tmp_path / "runs" / f"seed-{seed}" / "config.toml").read_text()
