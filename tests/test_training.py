"""The training loop: step order, determinism, exact resume (in process and after a real kill), NaN stop."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import repro.methods.cyclegan
from repro import ReproError
from repro.config import config_to_toml
from repro.pool import ImagePool
from repro.methods.cyclegan import build_nets, train_step
from repro.train import train
from tests.conftest import tiny_config


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=False)["nets"]


def assert_same_weights(a: dict, b: dict):
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)


class RecordingAdam(torch.optim.Adam):
    calls = []

    def __init__(self, params, name, **kw):
        super().__init__(params, **kw)
        self.name = name

    def step(self, closure=None):
        RecordingAdam.calls.append(self.name)
        return super().step(closure)


@pytest.mark.parametrize("order, expected", [("sequential", ["F", "D_X", "G", "D_Y"]),
                                             ("joint", ["G", "F", "D_Y", "D_X"])])
def test_update_order(order, expected):
    cfg = tiny_config(update_order=order)
    nets = build_nets(cfg)
    opts = {n: RecordingAdam(net.parameters(), n, lr=cfg.lr) for n, net in nets.items()}
    RecordingAdam.calls = []
    train_step(nets, opts, {"D_X": ImagePool(2), "D_Y": ImagePool(2)}, torch.rand(1, 3, 16, 16),
               torch.rand(1, 3, 16, 16), cfg, torch.Generator().manual_seed(0), contextlib.nullcontext)
    assert RecordingAdam.calls == expected


def test_sequential_generator_step_leaves_the_other_generator_untouched():
    cfg = tiny_config()
    nets = build_nets(cfg)
    opts = {n: torch.optim.Adam(net.parameters(), lr=cfg.lr) for n, net in nets.items()}
    f_before = [p.clone() for p in nets["F"].parameters()]
    # Only G's optimiser may step in G's step: give F a zero lr and check F did not move through G's losses.
    for g in opts["F"].param_groups:
        g["lr"] = 0.0
    train_step(nets, opts, {"D_X": ImagePool(2), "D_Y": ImagePool(2)}, torch.rand(1, 3, 16, 16),
               torch.rand(1, 3, 16, 16), cfg, torch.Generator().manual_seed(0), contextlib.nullcontext)
    assert all(torch.equal(a, b) for a, b in zip(f_before, nets["F"].parameters()))


def test_conv_biases_stay_zero_under_the_paper_profile(tiny_data, tmp_path):
    train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", progress=False)
    nets = build_nets(tiny_config())
    for name, state in weights(tmp_path / "run").items():
        nets[name].load_state_dict(state)
    convs = [m for net in nets.values() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) > 20 and all(torch.all(m.bias == 0) for m in convs if m.bias is not None)
    norms = [m for m in nets["G"].modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert any(torch.any(m.bias != 0) for m in norms)  # the affine shifts do train


def test_seeded_runs_are_bit_identical(tiny_data, tmp_path):
    for name in ("a", "b"):
        train(tiny_config(seed=7), tiny_data, tmp_path / name, device="cpu", progress=False)
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert (tmp_path / "a/losses.jsonl").read_text() == (tmp_path / "b/losses.jsonl").read_text()
    train(tiny_config(seed=8), tiny_data, tmp_path / "c", device="cpu", progress=False)
    assert not torch.equal(weights(tmp_path / "a")["G"]["model.1.weight"], weights(tmp_path / "c")["G"]["model.1.weight"])


@pytest.mark.parametrize("stop", [3, 4, 6])  # mid-epoch, at an epoch boundary, in the decay epoch
def test_resume_equals_uninterrupted(tiny_data, tmp_path, stop):
    cfg = tiny_config()
    train(cfg, tiny_data, tmp_path / "full", device="cpu", progress=False)
    train(cfg, tiny_data, tmp_path / "cut", device="cpu", progress=False, stop_after=stop)
    assert not (tmp_path / "cut/run.json").exists()
    train(cfg, tiny_data, tmp_path / "cut", device="cpu", progress=False, resume=True)
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "cut"))
    assert (tmp_path / "full/losses.jsonl").read_text() == (tmp_path / "cut/losses.jsonl").read_text()
    assert (tmp_path / "full/G_x2y.pth").read_bytes() != b""


def test_killed_run_resumes_bit_for_bit(tiny_data, tmp_path):
    """A real SIGKILL of `repro train` after a mid-epoch checkpoint; --resume must end where an uninterrupted run ends."""
    cfg = tiny_config(iters_per_epoch=12, checkpoint_every=2)
    config_file = tmp_path / "cfg.toml"
    config_file.write_text(config_to_toml(cfg))
    cmd = [sys.executable, "-m", "repro.cli", "train", str(config_file), "--data", str(tiny_data), "--device", "cpu"]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run(cmd + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "killed/checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    position = torch.load(tmp_path / "killed/checkpoint.pt", weights_only=False)["position"]
    assert position["step"] < 24, "the run finished before it could be killed; the test proves nothing"
    subprocess.run(cmd + ["--out", str(tmp_path / "killed"), "--resume"], check=True, env=env, capture_output=True)
    assert_same_weights(weights(tmp_path / "full"), weights(tmp_path / "killed"))
    assert (tmp_path / "full/losses.jsonl").read_text() == (tmp_path / "killed/losses.jsonl").read_text()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    cfg = tiny_config(checkpoint_every=2)
    calls = {"n": 0}
    real_l1 = repro.methods.cyclegan.l1

    def poisoned_l1(a, b):
        calls["n"] += 1
        return real_l1(a, b) * (float("nan") if calls["n"] > 12 else 1.0)

    monkeypatch.setattr(repro.methods.cyclegan, "l1", poisoned_l1)
    with pytest.raises(ReproError, match="became nan.*last good checkpoint"):
        train(cfg, tiny_data, tmp_path / "run", device="cpu", progress=False)
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert state["position"]["step"] == 2
    assert all(torch.isfinite(v).all() for net in state["nets"].values() for v in net.values() if v.is_floating_point())


def test_nan_between_reads_is_reported_at_its_own_step(tiny_data, tmp_path, monkeypatch):
    """Losses are read only at log points and checkpoints: a NaN at step 3 of a run that logs every 8 steps is
    caught before the checkpoint of step 4 is written, and the message names step 3 and the checkpoint of step 2."""
    cfg = tiny_config(checkpoint_every=2, log_every=8)
    calls = {"n": 0}
    real_l1 = repro.methods.cyclegan.l1

    def poisoned_l1(a, b):  # 4 l1 terms per iteration of the sequential order: NaN from step 3 on
        calls["n"] += 1
        return real_l1(a, b) * (float("nan") if calls["n"] > 8 else 1.0)

    monkeypatch.setattr(repro.methods.cyclegan, "l1", poisoned_l1)
    with pytest.raises(ReproError, match=r"became nan at epoch 1, iteration 3\. .*\(step 2\)"):
        train(cfg, tiny_data, tmp_path / "run", device="cpu", progress=False)
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=False)
    assert state["position"]["step"] == 2
    assert (tmp_path / "run/losses.jsonl").read_text() == ""  # nothing was logged after (or at) the NaN


def test_existing_run_needs_resume_and_resume_needs_same_config(tiny_data, tmp_path):
    train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", progress=False, stop_after=1)
    with pytest.raises(ReproError, match="--resume"):
        train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(ReproError, match="different config"):
        train(tiny_config(lr=0.1), tiny_data, tmp_path / "run", device="cpu", progress=False, resume=True)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(ReproError, match="trainB"):
        train(tiny_config(), tmp_path, tmp_path / "run", device="cpu", progress=False)


def test_log_has_every_step_and_lr_schedule(tiny_data, tmp_path):
    train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", progress=False)
    rows = [json.loads(l) for l in (tmp_path / "run/losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert {r["lr"] for r in rows if r["epoch"] == 1} == {0.0002}  # lua rule: epoch 2 of 1+1 still at full lr
    assert {"gan_G", "cycle_forward_G", "cycle_backward_G", "D_X", "D_Y"} <= set(rows[0])


@pytest.mark.slow
def test_fid_is_logged_every_n_epochs_and_missing_weights_stop_before_training(tiny_data, tmp_path):
    from tests.test_fid import random_inception_state_dict
    weights_file = tmp_path / "inception.pth"
    torch.save(random_inception_state_dict(), weights_file)
    cfg = tiny_config(fid_every=1, fid_images=3)
    train(cfg, tiny_data, tmp_path / "run", device="cpu", progress=False, fid_weights=weights_file)
    rows = [json.loads(l) for l in (tmp_path / "run/fid.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 4), (2, 8)]
    assert all(r["fid"] > 0 for r in rows)
    # FID uses no training randomness: the weights equal a run without it.
    train(tiny_config(), tiny_data, tmp_path / "plain", device="cpu", progress=False)
    assert_same_weights(weights(tmp_path / "run"), weights(tmp_path / "plain"))
    with pytest.raises(ReproError, match="no such file"):
        train(cfg, tiny_data, tmp_path / "run2", device="cpu", progress=False, fid_weights=tmp_path / "missing.pth")
    assert not (tmp_path / "run2/checkpoint.pt").exists()


def test_run_json_separates_steady_state_steps_from_setup_warmup_and_io(tiny_data, tmp_path):
    """run.json: train_seconds (the loop) = warm-up + I/O + step seconds; step_seconds covers the iterations
    after the first (steps), and progress.json ends at the last step."""
    cfg = tiny_config(iters_per_epoch=3, log_every=1)
    train(cfg, tiny_data, tmp_path / "run", device="cpu", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["steps"] == 2 * 3 - 1 and info["warmup_iterations"] == 1
    assert info["step_seconds"] > 0 and info["io_seconds"] > 0 and info["setup_seconds"] > 0
    parts = info["warmup_seconds"] + info["io_seconds"] + info["step_seconds"]
    assert info["train_seconds"] == pytest.approx(parts, abs=0.01)
    assert info["seconds_per_iteration"] == pytest.approx(info["step_seconds"] / info["steps"], rel=1e-3)
    assert info["graphs"] == "off" and info["staged_step"] is False and info["cuda_graphs"] is False
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["step"] == progress["total"] == 6 and progress["eta_seconds"] == 0
