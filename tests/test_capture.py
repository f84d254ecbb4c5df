"""The captured step (repro.capture): device-side history pools equal ImagePool bit for bit, the staged step
equals the eager step bit for bit on the CPU, compiled nets give the eager losses. The CUDA tests of the
captured step are in tests/test_cuda.py."""

import time

import pytest
import torch

from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)
from repro import ReproError
from repro.capture import DevicePool, StagedStep, build, build_packed, query_order
from repro.methods import METHODS, cyclegan
from repro.pool import ImagePool
from repro.train import train
from tests.conftest import assert_same_training, fake_batches, packed_configs, tiny_config




@pytest.mark.parametrize("size,batch", [(5, 1), (5, 3), (2, 4), (0, 2)])
def test_device_pool_equals_image_pool_bit_for_bit(size, batch):
    """Fill phase, swaps, several images of one query hitting the same slot (batch > size): the same returned
    images, the same stored images after every query, and the generator consumed identically."""
    host, dev = ImagePool(size), DevicePool(size, "cpu")
    g_host, g_dev = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    swapped = 0
    for images in fake_batches(60, batch):
        expected = host.query(images, g_host)
        dev.stage(len(images), g_dev)
        got = dev.query(images)
        assert torch.equal(got, expected)
        swapped += int(sum(not torch.equal(a, b) for a, b in zip(got, images)))
        state_host, state_dev = host.state_dict(), dev.state_dict()
        assert len(state_dev["images"]) == len(state_host["images"])
        assert all(torch.equal(a, b) for a, b in zip(state_dev["images"], state_host["images"]))
        assert torch.equal(g_host.get_state(), g_dev.get_state())
    assert swapped > 10 if size else swapped == 0  # the swap branch was exercised


def assert_same_nets_and_adam(a, b) -> None:
    """Every net's weights and every Adam second moment equal, bit for bit."""
    for n in cyclegan.NET_NAMES:
        assert all(torch.equal(p, q) for p, q in zip(a.nets[n].state_dict().values(), b.nets[n].state_dict().values()))
        sa, sb = a.opts[n].state_dict()["state"], b.opts[n].state_dict()["state"]
        assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_device_pool_loads_an_image_pool_checkpoint_and_continues_identically():
    host, g = ImagePool(4), torch.Generator().manual_seed(0)
    for images in fake_batches(6, 1):
        host.query(images, g)
    dev = DevicePool(4, "cpu")
    dev.load_state_dict(host.state_dict())
    g_dev = torch.Generator().set_state(g.get_state())
    for images in fake_batches(20, 1, seed=1):
        dev.stage(1, g_dev)
        assert torch.equal(dev.query(images), host.query(images, g))


def test_device_pool_refuses_a_query_without_staged_choices():
    pool = DevicePool(3, "cpu")
    with pytest.raises(RuntimeError, match="without stage"):
        pool.query(torch.zeros(1, 3, 4, 4))


def test_staging_with_nothing_leaves_the_pool_and_generator_unchanged():
    pool, g = DevicePool(2, "cpu"), torch.Generator().manual_seed(0)
    for images in fake_batches(4, 1):
        pool.stage(1, g)
        pool.query(images)
    before, rng = [t.clone() for t in pool.images], g.get_state()
    pool.stage_nothing(1)
    out = pool.query(torch.ones(1, 3, 4, 4))
    assert torch.equal(out, torch.ones(1, 3, 4, 4))
    assert all(torch.equal(a, b) for a, b in zip(pool.images, before)) and torch.equal(g.get_state(), rng)


def staged_parts(cfg):
    parts = cyclegan.build(cfg, "cpu")
    parts.pools = {n: DevicePool(p.size, "cpu") for n, p in parts.pools.items()}
    parts.step = StagedStep(cfg, "cpu", parts, amp=False, channels_last=False, graphs=False)
    return parts


@pytest.mark.parametrize("order", ["sequential", "joint"])
def test_staged_step_equals_the_eager_step_bit_for_bit_on_the_cpu(order):
    """What the CUDA graph replays (train_step on device pools, draws staged first) against the eager step:
    same losses, weights, Adam state and pools over 8 iterations (pool of 3: filled, then swapping)."""
    cfg = tiny_config(update_order=order, pool_size=3)
    eager, staged = cyclegan.build(cfg, "cpu"), staged_parts(cfg)
    g_eager, g_staged = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    data = fake_batches(16, 1, seed=2, size=16)
    for x, y in zip(data[::2], data[1::2]):
        a, b = eager.step(x, y, g_eager), staged.step(x, y, g_staged)
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert_same_nets_and_adam(eager, staged)
    for n in ("D_X", "D_Y"):
        assert all(torch.equal(p, q) for p, q in zip(eager.pools[n].images, staged.pools[n].images))
    assert torch.equal(g_eager.get_state(), g_staged.get_state())


def test_query_order_matches_train_step_without_gan_term():
    cfg = tiny_config(lambda_gan=0.0)
    assert query_order(cfg) == ()
    parts = staged_parts(cfg)
    x, y = fake_batches(2, 1, size=16)
    assert set(parts.step(x, y, torch.Generator())) == {"cycle_backward_F", "cycle_forward_F", "cycle_forward_G",
                                                         "cycle_backward_G"}


def test_graphs_and_compile_refuse_clearly(tmp_path, tiny_data):
    with pytest.raises(ReproError, match="needs a CUDA device"):
        build(tiny_config(), "cpu", graphs=True)
    with pytest.raises(ReproError, match="not for method 'pix2pix'"):
        build(tiny_config(method="pix2pix"), "cpu", compile=True)
    with pytest.raises(ReproError, match="needs a CUDA device"):
        train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", graphs=True, progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder was touched


@pytest.mark.slow
def test_compiled_nets_give_the_eager_losses_on_the_cpu():
    """torch.compile (inductor, C++ on the CPU) changes only float rounding: 3 iterations, losses and weights
    within float tolerance of eager."""
    cfg = tiny_config()
    eager, compiled = cyclegan.build(cfg, "cpu"), build(cfg, "cpu", compile=True)
    start = time.time()
    assert_same_training(eager, compiled, fake_batches(6, 1, seed=4, size=16), seed=0)
    assert set(compiled.nets["G"].state_dict()) == set(eager.nets["G"].state_dict())  # no _orig_mod. prefix
    print(f"compiled step test: {time.time() - start:.0f} s")


@pytest.mark.parametrize("order", ["sequential", "joint"])
def test_packed_staged_step_equals_the_packed_eager_step_bit_for_bit_on_the_cpu(order):
    """What the packed CUDA graph replays (the vmapped pack on device pools, each run's draws staged from its
    own generator) against the packed eager step: same losses, weights, Adam state, pools and generators
    over 8 iterations (pools of 3: filled, then swapping)."""
    cfgs = packed_configs(order)
    eager, staged = METHODS["cyclegan"].build_packed(cfgs, "cpu"), build_packed(cfgs, "cpu")
    assert isinstance(staged.step, StagedStep) and isinstance(staged.runs[1][2]["D_X"], DevicePool)
    g_eager = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    g_staged = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    data = fake_batches(16, 3, seed=2, size=16)
    for x, y in zip(data[::2], data[1::2]):
        x, y = x.view(3, 1, 3, 16, 16), y.view(3, 1, 3, 16, 16)
        a, b = eager.step(x, y, g_eager), staged.step(x, y, g_staged)
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert_same_nets_and_adam(eager, staged)
    for (_, _, pools_a), (_, _, pools_b) in zip(eager.runs, staged.runs):
        for n in ("D_X", "D_Y"):
            assert len(pools_a[n].images) == len(pools_b[n].images)
            assert all(torch.equal(p, q) for p, q in zip(pools_a[n].images, pools_b[n].images))
    for a, b in zip(g_eager, g_staged):
        assert torch.equal(a.get_state(), b.get_state())
    assert len(staged.runs[0][2]["D_X"].images) == 0  # the run without the adversarial term drew nothing
    assert not torch.equal(g_staged[1].get_state(), torch.Generator().manual_seed(cfgs[1].seed).get_state())


def test_what_a_method_supports_is_declared_once_and_read_by_capture_packing_and_training(tmp_path, monkeypatch):
    """Method.supports is the one record: capture refuses, graphs="auto" skips, training refuses packs and the CUDA
    speed-ups of a method the declaration leaves them out of; and a declaration that does not hold together
    (packing without its builder, capture without the speed-ups' build) is refused."""
    from dataclasses import replace

    from repro.config import load_config
    from repro.methods import CAPTURE, CUDA_SPEEDUPS, PACKING, Method
    from repro.train import resolve_graphs, train_runs

    def train_refuses(cfgs, **flags) -> bool:
        try:
            train_runs(cfgs, tmp_path / "data", [tmp_path / f"r{i}" for i in range(len(cfgs))], device="cpu",
                       progress=False, **flags)
        except ReproError as err:
            return "implemented for" in str(err)
        except Exception:  # got past the refusals (there is no data here)
            pass
        return False

    for name, method in METHODS.items():
        cfgs = [load_config(f"smoke/{name}", seed=seed) for seed in (0, 1)]
        can_capture = method.can(CAPTURE)
        assert resolve_graphs(cfgs[0], "cpu", "auto") == (can_capture, False)
        if can_capture:
            build(cfgs[0], "cpu", staged=True)
        else:
            with pytest.raises(ReproError, match="implemented for cyclegan only"):
                build(cfgs[0], "cpu", staged=True)
        assert train_refuses(cfgs) == (not method.can(PACKING)), name
        assert train_refuses(cfgs[:1], channels_last=True) == (not method.can(CUDA_SPEEDUPS)), name
    assert not list(tmp_path.iterdir())  # every refusal came before any folder was written

    # cyclegan declared without capture, then without packing: every reader follows the declaration
    cyclegan_cfgs = [load_config("smoke/cyclegan", seed=seed) for seed in (0, 1)]
    monkeypatch.setitem(METHODS, "cyclegan", replace(METHODS["cyclegan"], supports=frozenset({CUDA_SPEEDUPS, PACKING})))
    assert resolve_graphs(cyclegan_cfgs[0], "cpu", "auto") == (False, False)
    with pytest.raises(ReproError, match="--graphs and --compile are implemented for  only"):
        build(cyclegan_cfgs[0], "cpu", staged=True)
    monkeypatch.setitem(METHODS, "cyclegan", replace(METHODS["cyclegan"], supports=frozenset({CUDA_SPEEDUPS}),
                                                     build_packed=None))
    assert train_refuses(cyclegan_cfgs)
    with pytest.raises(TypeError, match="PACKING exactly when"):
        Method("x", cyclegan.build, cyclegan.translator, supports=frozenset({PACKING}))
    with pytest.raises(TypeError, match="needs CUDA_SPEEDUPS"):
        Method("x", cyclegan.build, cyclegan.translator, supports=frozenset({CAPTURE}))
