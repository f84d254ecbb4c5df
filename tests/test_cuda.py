"""Tests that need a CUDA device (marked `cuda`: skipped, saying so, where torch sees none). benchmarks/gpu_check.sh
runs this file alone on the GPU machine, whose image lacks optional packages (cityscapesscripts, pytorch_fid,
submitit): keep its imports to torch, pytest and the training code, so one missing package cannot stop collection.
The same CUDA paths run on every CI machine on fake CUDA: tests/test_fake_cuda.py."""

import json

import pytest
import torch

from repro.capture import build, build_packed
from repro.device import to_device
from repro.methods import METHODS, cyclegan
from repro.train import train
from tests.conftest import assert_same_training, fake_batches, packed_configs, tiny_config


@pytest.mark.cuda
@pytest.mark.parametrize("order", ["sequential", "joint"])
def test_cuda_graph_step_equals_the_eager_cuda_step(order):
    """The captured step on CUDA against the eager (fused Adam) step: 12 iterations through the pool's fill
    and swap phases and an lr change; losses and weights to float tolerance (same kernels, replayed)."""
    torch.backends.cudnn.deterministic = True
    cfg = tiny_config(update_order=order, pool_size=3)
    eager, graphed = cyclegan.build(cfg, "cuda"), build(cfg, "cuda", graphs=True)

    def lower_lr(i):
        if i == 6:
            for parts in (eager, graphed):
                for opt in parts.opts.values():
                    opt.param_groups[0]["lr"] = cfg.lr / 3

    data = [t.cuda() for t in fake_batches(24, 1, seed=2, size=16)]
    assert_same_training(eager, graphed, data, seed=1, before_step=lower_lr)
    for n in ("D_X", "D_Y"):
        for p, q in zip(eager.pools[n].images, graphed.pools[n].images):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert graphed.opts["G"].param_groups[0]["capturable"] is False  # checkpoints look like an eager run's


@pytest.mark.cuda
def test_train_with_graphs_resumes_and_records_it(tmp_path, tiny_data):
    """`repro train --graphs` on CUDA: a run stopped and resumed with graphs ends where an uninterrupted
    graphed run ends (float tolerance), and run.json says graphs were used."""
    cfg = tiny_config()
    whole = tmp_path / "whole"
    train(cfg, tiny_data, whole, device="cuda", graphs=True, progress=False)
    assert json.loads((whole / "run.json").read_text())["cuda_graphs"] is True
    split = tmp_path / "split"
    train(cfg, tiny_data, split, device="cuda", graphs=True, progress=False, stop_after=3)
    train(cfg, tiny_data, split, device="cuda", graphs=True, progress=False, resume=True)
    a = torch.load(whole / "checkpoint.pt", weights_only=False)["nets"]["G"]
    b = torch.load(split / "checkpoint.pt", weights_only=False)["nets"]["G"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
def test_compiled_and_graphed_step_runs_on_cuda():
    cfg = tiny_config()
    parts = build(cfg, "cuda", graphs=True, compile=True)
    x, y = torch.randn(2, 1, 3, 16, 16, device="cuda")
    terms = parts.step(x, y, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_training_iterations_issue_no_host_sync(tmp_path, tiny_data, monkeypatch, graphs):
    """Iterations 3-6 of a run (no logging, no checkpoint among them) under set_sync_debug_mode("error"): any
    host sync there (a pageable copy, a read of a loss) raises."""
    from repro import train as train_module
    real_add = train_module.LossWatch.add

    def add(self, step, values):
        real_add(self, step, values)
        torch.cuda.set_sync_debug_mode("error" if 2 <= step < 6 else 0)

    monkeypatch.setattr(train_module.LossWatch, "add", add)
    try:
        train(tiny_config(iters_per_epoch=8, log_every=100), tiny_data, tmp_path / "run", device="cuda",
              graphs=graphs, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["epochs_done"] == 2


@pytest.mark.cuda
def test_to_device_copies_through_pinned_memory_without_waiting():
    order = torch.randperm(1000)
    torch.cuda.set_sync_debug_mode("error")
    try:
        on_device = to_device(order, "cuda")
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert on_device.is_cuda and torch.equal(on_device.cpu(), order)
    assert to_device(on_device, "cuda") is on_device  # already there (a resumed run's order)


@pytest.mark.cuda
@pytest.mark.parametrize("order", ["sequential", "joint"])
def test_packed_cuda_graph_step_equals_the_packed_eager_cuda_step(order):
    """The pack captured as one CUDA graph against the packed eager CUDA step: 12 iterations through the
    pools' fill and swap phases and an lr change; losses and weights to float tolerance."""
    torch.backends.cudnn.deterministic = True
    cfgs = packed_configs(order)
    eager, graphed = METHODS["cyclegan"].build_packed(cfgs, "cuda"), build_packed(cfgs, "cuda", graphs=True)
    g1 = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    g2 = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    data = [t.cuda().view(3, 1, 3, 16, 16) for t in fake_batches(24, 3, seed=2, size=16)]
    for i, (x, y) in enumerate(zip(data[::2], data[1::2])):
        if i == 6:
            for parts in (eager, graphed):
                for opt in parts.opts.values():
                    opt.param_groups[0]["lr"] = cfgs[0].lr / 3
        a, b = eager.step(x, y, g1), graphed.step(x, y, g2)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    for n in cyclegan.NET_NAMES:
        for p, q in zip(eager.nets[n].parameters(), graphed.nets[n].parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert graphed.step.graph is not None and graphed.opts["G"].param_groups[0]["capturable"] is False
