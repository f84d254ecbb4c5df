"""Every CUDA path of training, on every CI run, without a GPU (tests/fake_cuda.py): repro.train.train_runs on
fake CUDA for each case below, then resumed, with checkpoints, exports and run.json written. A case fails on a host
read or a pageable host-to-device copy inside an iteration (outside logging and checkpoints), a CPU tensor or
generator meeting a CUDA one, and anything inside a captured graph that the graph cannot replay.
To add a case: one line in CASES (train_runs keyword arguments, number of packed runs)."""

import json

import pytest
import torch

from repro.capture import StagedStep
from repro.data import loaders
from repro import train as train_module
from repro.train import train_runs
from tests.conftest import tiny_config
from tests.test_baselines_loop import CONFIGS, aligned_data, data_for  # noqa: F401 (a fixture)
from tests.fake_cuda import Violation, fake_cuda

CASES = {  # name: (train_runs keyword arguments, packed runs)
    "eager": ({}, 1),
    "graphs": ({"graphs": True}, 1),
    "amp": ({"amp": True}, 1),
    "channels_last": ({"channels_last": True}, 1),
    "graphs_amp_channels_last": ({"graphs": True, "amp": True, "channels_last": True}, 1),
    "packed3": ({}, 3),
    "packed3_graphs": ({"graphs": True}, 3),
    "auto": ({"graphs": "auto"}, 1),  # what `repro reproduce` and its jobs train with
    "packed3_auto": ({"graphs": "auto"}, 3),
}
ITERS = 3  # iterations 1-2 of an epoch neither log nor checkpoint (log_every 1000): no host read is allowed there


@pytest.fixture
def harness(monkeypatch):
    """fake_cuda with the loop's windows marked: the first batch starts the iterations; logging, the loss check,
    checkpoints, exports and run.json may read the device back."""
    with fake_cuda(monkeypatch) as mode:
        for owner, name in ((loaders.UnalignedData, "batch"), (loaders.AlignedData, "batch")):
            batch = getattr(owner, name)
            monkeypatch.setattr(owner, name, lambda self, *a, _f=batch: (mode.iterating(), _f(self, *a))[1])
        for owner, name in ((train_module, "write_logs"), (train_module, "save_checkpoints"),
                            (train_module, "export"), (train_module, "write_run_info"),
                            (train_module.LossWatch, "check"), (StagedStep, "capture")):
            monkeypatch.setattr(owner, name, windowed(mode, getattr(owner, name)))
        yield mode


def windowed(mode, fn):
    def inside(*args, **kwargs):
        with mode.window():
            return fn(*args, **kwargs)
    return inside


def fake_train(tmp_path, data, name: str, resume: bool = False, stop_after: int | None = None, **overrides):
    options, k = CASES[name]
    cfgs = [tiny_config(seed=s, iters_per_epoch=ITERS, log_every=1000, **overrides) for s in range(k)]
    runs = [tmp_path / name / f"seed-{s}" for s in range(k)]
    train_runs(cfgs, data, runs, device="cuda", progress=False, resume=resume, stop_after=stop_after, **options)
    return runs


@pytest.mark.parametrize("name", list(CASES))
def test_training_runs_on_fake_cuda_without_waiting_for_the_device(harness, tmp_path, tiny_data, name):
    """Two epochs stopped after 4 iterations, then resumed: every iteration of both without a host read or a
    pageable copy outside logging and checkpoints; checkpoint, exports and run.json written."""
    runs = fake_train(tmp_path, tiny_data, name, stop_after=ITERS + 1)
    harness.phase = "setup"  # resuming loads a checkpoint onto the device again
    runs = fake_train(tmp_path, tiny_data, name, resume=True)
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        assert info["device"].startswith("cuda") and info["epochs_done"] == 2
        assert info["cuda_graphs"] is (CASES[name][0].get("graphs", False) in (True, "auto"))
        assert (run / "G_x2y.pth").is_file() and (run / "F_y2x.pth").is_file()
        state = torch.load(run / "checkpoint.pt", weights_only=False)
        assert state["position"]["step"] == 2 * ITERS and set(state["nets"]) == {"G", "F", "D_X", "D_Y"}
        assert len((run / "losses.jsonl").read_text().splitlines()) == 2  # one line per epoch's end
    loop = [e for e in harness.events if e[0] == "loop"]
    assert not loop, loop


@pytest.mark.parametrize("key", ["pix2pix", "simgan", "feature_gan", "cogan", "bigan", "bigan_latent"])
def test_the_baselines_run_on_fake_cuda(harness, tmp_path, tiny_data, aligned_data, key):
    """The Table 2/3 baselines' (eager) CUDA path, checked like CycleGAN's."""
    cfg = CONFIGS[key](iters_per_epoch=ITERS, log_every=1000)
    train_runs([cfg], data_for(key, tiny_data, aligned_data), [tmp_path / key], device="cuda", progress=False)
    assert json.loads((tmp_path / key / "run.json").read_text())["epochs_done"] == cfg.epochs
    assert not [e for e in harness.events if e[0] == "loop"]


def test_a_per_iteration_pageable_copy_in_the_loader_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    """The loader as it was: the loop kept the epoch order on the host and each batch copied its rows to the
    device from pageable memory (a stream sync per copy, two per run per iteration)."""
    def old_batch(self, pairs, generator):
        x = loaders.random_crop_flip(self.x[pairs[:, 0].to(self.x.device)], self.crop, self.flip, generator)
        y = loaders.random_crop_flip(self.y[pairs[:, 1].to(self.y.device)], self.crop, self.flip, generator)
        return loaders.to_model_range(x), loaders.to_model_range(y)

    monkeypatch.setattr(train_module, "to_device", lambda order, device: order)  # the order stays on the host
    monkeypatch.setattr(loaders.UnalignedData, "batch", lambda self, *a: (harness.iterating(), old_batch(self, *a))[1])
    with pytest.raises(Violation, match="_to_copy.*host-to-device copy from pageable memory.*inside a training iteration"):
        fake_train(tmp_path, tiny_data, "eager")


def test_a_host_read_in_the_step_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    """A loss read every iteration (float(loss) for a progress bar, say) waits for the device."""
    real = train_module.LossWatch.add
    monkeypatch.setattr(train_module.LossWatch, "add", lambda self, step, values: (
        [float(v.sum()) for v in values.values()], real(self, step, values)))
    with pytest.raises(Violation, match="_local_scalar_dense.*inside a training iteration"):
        fake_train(tmp_path, tiny_data, "eager")


def test_python_control_flow_on_a_tensor_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    from repro.methods import cyclegan
    real = cyclegan.l1
    monkeypatch.setattr(cyclegan, "l1", lambda a, b: real(a, b) if (a > 0).any() else real(b, a))
    with pytest.raises(Violation, match="inside a training iteration"):
        fake_train(tmp_path, tiny_data, "eager")


def test_a_host_read_inside_the_captured_graph_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    from repro.methods import cyclegan
    real = cyclegan.l1
    monkeypatch.setattr(cyclegan, "l1", lambda a, b: real(a, b) * (a.abs().max().item() > 0))
    with pytest.raises(Violation, match="inside a captured CUDA graph"):
        fake_train(tmp_path, tiny_data, "graphs")


def test_a_cpu_rng_draw_inside_the_captured_graph_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    """A draw from a host generator inside the graph is made once, at capture, then replayed as a constant."""
    from repro.methods import cyclegan
    real = cyclegan.l1
    noise = torch.Generator().manual_seed(0)
    monkeypatch.setattr(cyclegan, "l1", lambda a, b: real(a, b) * torch.rand((), generator=noise).to(a.device))
    with pytest.raises(Violation, match="rand.generator runs on the host .* inside a captured CUDA graph"):
        fake_train(tmp_path, tiny_data, "graphs")


def test_a_cpu_tensor_meeting_a_cuda_one_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    from repro.methods import cyclegan
    real = cyclegan.l1
    monkeypatch.setattr(cyclegan, "l1", lambda a, b: real(a, b) + (a.detach() * torch.zeros(a.shape)).sum())
    with pytest.raises(Violation, match="a CPU tensor of shape .* meets a CUDA tensor"):
        fake_train(tmp_path, tiny_data, "eager")


def test_a_cpu_generator_drawing_for_cuda_is_caught(harness, tmp_path, tiny_data, monkeypatch):
    real = loaders.to_model_range
    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(loaders, "to_model_range",
                        lambda x: real(x) + torch.rand(x.shape, generator=g, device=x.device) * 0)
    with pytest.raises(Violation, match="a CPU torch.Generator draws for a CUDA op"):
        fake_train(tmp_path, tiny_data, "eager")
