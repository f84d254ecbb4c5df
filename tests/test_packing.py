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
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import repro.data.loaders as loaders
from repro import ReproError
from repro.checkpoint import checkpoint_step, settle_pack_checkpoint
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


# ------------------------------------------------------------------------------ issue 22: a pack is one unit on disk

class Killed(BaseException):
    """A simulated kill: raised at a rename, caught by nothing in repro (a BaseException), so the folders stay as a
    SIGKILL before that rename would leave them (less the temporary file, which atomic_path removes)."""


def renames(monkeypatch, kill_at: int | None = None) -> list[Path]:
    """Counts os.replace calls (every atomic write's rename and every pack commit's); the kill_at-th raises Killed."""
    seen = []
    real = os.replace

    def replace(src, dst):
        seen.append(Path(dst))
        if len(seen) == kill_at:
            raise Killed
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return seen


def full_state(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=False)


def assert_same(a, b, where=""):
    """Nested checkpoint states equal bit for bit (tensors by torch.equal, dtype and all)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_runs(whole: list[Path], parts: list[Path]) -> None:
    for a, b in zip(whole, parts):
        assert (a / "losses.jsonl").read_bytes() == (b / "losses.jsonl").read_bytes(), b
        assert_same(full_state(a), full_state(b), str(b))
        for name in ("G_x2y.pth", "F_y2x.pth"):
            assert_same(torch.load(a / name), torch.load(b / name), str(b / name))
        assert json.loads((b / "run.json").read_text())["finished"]
        assert not [p.name for p in b.iterdir() if "next" in p.name or ".partial" in p.name], b


@pytest.fixture(scope="module")
def uninterrupted_pack(tiny_data, tmp_path_factory):
    """Two packed runs, 2 epochs x 3 iterations, a checkpoint every 2 (steps 2, 3, 4 and 6), and every rename."""
    tmp = tmp_path_factory.mktemp("whole")
    cfgs = configs(rows=("cyclegan", "gan_forward"), checkpoint_every=2)
    with pytest.MonkeyPatch.context() as mp:
        seen = renames(mp)
        runs = [tmp / f"run{k}" for k in range(2)]
        train_runs(cfgs, tiny_data, runs, device="cpu", progress=False)
    return cfgs, runs, seen


def kill_points(seen: list[Path]) -> list[int]:
    """1-based indices of the renames to kill at: the first checkpoint's second commit rename (one run with a
    checkpoint, one without), each of the third checkpoint's (step 4, mid-epoch: both runs' record and new state,
    then the commit renames), the last export (after the last checkpoint) and the last run.json."""
    saves = [i for i, p in enumerate(seen, 1) if p.name == "checkpoint.next.json"]
    third = saves[4]  # two records per checkpoint
    step4 = [i for i in range(third, len(seen) + 1) if seen[i - 1].name.startswith("checkpoint.")][:6]
    assert [seen[i - 1].name for i in step4] == ["checkpoint.next.json", "checkpoint.next.pt"] * 2 + ["checkpoint.pt"] * 2
    first = [i for i, p in enumerate(seen, 1) if p.name == "checkpoint.pt"][1]
    return [first] + step4 + [max(i for i, p in enumerate(seen, 1) if p.name == "G_x2y.pth"), len(seen)]


def test_a_pack_killed_at_any_rename_resumes_bit_identical(uninterrupted_pack, tiny_data, tmp_path, monkeypatch):
    cfgs, whole, seen = uninterrupted_pack
    assert seen[-1].name == "run.json"
    for n in kill_points(seen):
        parts = [tmp_path / str(n) / f"run{k}" for k in range(2)]
        with monkeypatch.context() as mp:
            renames(mp, kill_at=n)
            with pytest.raises(Killed):
                train_runs(cfgs, tiny_data, parts, device="cpu", progress=False)
        steps = [checkpoint_step(p / "checkpoint.pt") for p in parts]
        train_runs(cfgs, tiny_data, parts, device="cpu", progress=False, resume=True)
        assert_same_runs(whole, parts), (n, seen[n - 1], steps)


def test_a_pack_killed_among_its_commit_renames_finishes_the_commit(uninterrupted_pack, tiny_data, tmp_path,
                                                                   monkeypatch):
    cfgs, _, seen = uninterrupted_pack
    parts = [tmp_path / f"run{k}" for k in range(2)]
    with monkeypatch.context() as mp:
        renames(mp, kill_at=kill_points(seen)[6])  # run0 renamed to step 4, run1 not yet
        with pytest.raises(Killed):
            train_runs(cfgs, tiny_data, parts, device="cpu", progress=False)
    assert [checkpoint_step(p / "checkpoint.pt") for p in parts] == [4, 3]
    settle_pack_checkpoint(parts[1])
    assert [checkpoint_step(p / "checkpoint.pt") for p in parts] == [4, 4]
    assert not [p for run in parts for p in run.iterdir() if "next" in p.name]


def test_a_killed_writer_leaves_a_partial_that_resume_removes_and_a_live_ones_stays(uninterrupted_pack, tiny_data,
                                                                                    tmp_path):
    """A real kill (os._exit in a subprocess) while the second run's new state is renamed into place: its complete
    temporary file stays behind, the set of new states is incomplete, and resume drops it and starts again from step
    3, bit-identical to the uninterrupted pack; a partial of a live process is left alone."""
    cfgs, whole, seen = uninterrupted_pack
    n = kill_points(seen)[4]  # run1's checkpoint.next.pt at step 4
    parts = [tmp_path / f"run{k}" for k in range(2)]
    script = f"""
import os, pickle, sys
from pathlib import Path
from repro.train import train_runs
count, real = 0, os.replace
def replace(src, dst):
    global count
    count += 1
    if count == {n}:
        os._exit(9)
    return real(src, dst)
os.replace = replace
cfgs = pickle.loads(bytes.fromhex(sys.argv[1]))
train_runs(cfgs, Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]], device="cpu", progress=False)
"""
    done = subprocess.run([sys.executable, "-c", script, pickle.dumps(cfgs).hex(), str(tiny_data), *map(str, parts)],
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    stale = list(parts[1].glob(".checkpoint.next.pt.partial-*"))
    assert len(stale) == 1 and stale[0].stat().st_size > 0
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = parts[0] / f".checkpoint.pt.partial-{sleeper.pid}"
        live.write_bytes(b"being written")
        train_runs(cfgs, tiny_data, parts, device="cpu", progress=False, resume=True)
        assert not stale[0].exists() and live.read_bytes() == b"being written"
        live.unlink()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert_same_runs(whole, parts)


def test_a_full_disk_during_a_pack_checkpoint_keeps_every_run_at_the_last_good_step(tiny_data, tmp_path, small_disk):
    from repro.io import DiskFull

    cfgs = [tiny_config(seed=s) for s in (1, 2)]  # 2 epochs x 4 iterations
    sizes = [tmp_path / f"sizes{k}" for k in range(2)]
    train_runs(cfgs, tiny_data, sizes, device="cpu", progress=False, stop_after=4)  # one epoch: its files
    first_epoch = sum(p.stat().st_size for run in sizes for p in run.iterdir())
    ckpt = (sizes[0] / "checkpoint.pt").stat().st_size
    disk = small_disk(first_epoch + ckpt + ckpt // 2 + 16 * 1024)  # run0's new state fits beside the old, run1's not
    runs = [disk / f"run{k}" for k in range(2)]
    with pytest.raises(DiskFull, match="last good checkpoint was kept"):
        train_runs(cfgs, tiny_data, runs, device="cpu", progress=False)
    assert [checkpoint_step(run / "checkpoint.pt") for run in runs] == [4, 4]
    assert not [p.name for run in runs for p in run.iterdir() if "next" in p.name or ".partial" in p.name]
