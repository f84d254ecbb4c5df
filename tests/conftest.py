"""Shared fixtures: a tiny unpaired dataset and a tiny config, so training tests take seconds."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repro.config import make_config


@pytest.fixture(autouse=True)
def isolated_torch_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's torch hub cache (weights, FID reference statistics); a test that
    needs its own sets TORCH_HOME again."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))


def write_tiny_dataset(root: Path, n_x=5, n_y=6, size=24, seed=0) -> Path:
    """Blocky images (not noise) in the official layout: trainA/testA = Y (photos), trainB/testB = X (labels)."""
    rng = np.random.default_rng(seed)
    for folder, n in (("trainB", n_x), ("trainA", n_y), ("testB", 3), ("testA", 3)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            blocks = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
            image = np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
            Image.fromarray(image).save(root / folder / f"aachen_000000_{i:06d}_{folder}.png")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def copy_packages(city: Path, dst: Path) -> Path:
    """A writable copy of a synthetic city's Cityscapes package folders (gtFine/, leftImg8bit/), to break."""
    for folder in ("gtFine", "leftImg8bit"):
        shutil.copytree(city / folder, dst / folder)
    return dst


def tiny_config(**overrides):
    """The paper profile with every fidelity switch as the paper has it, shrunk to 16x16 and width 4."""
    values = dict(name="tiny", load_size=20, crop_size=16, ngf=4, ndf=4, epochs_constant=1, epochs_decay=1,
                  iters_per_epoch=4, pool_size=3, log_every=1)
    return make_config("paper", **(values | overrides))


def fake_batches(n_batches: int, batch: int, seed: int = 0, size: int = 4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, size, size, generator=g) for _ in range(n_batches)]


def assert_same_training(eager, other, data, seed: int, before_step=lambda i: None) -> None:
    """Both parts step through the same (x, y) pairs with same-seed generators: every step's losses, then
    every net's weights, equal to float tolerance. before_step(i) runs before step i (an lr change)."""
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for i, (x, y) in enumerate(zip(data[::2], data[1::2])):
        before_step(i)
        a, b = eager.step(x, y, g1), other.step(x, y, g2)
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    for n in ("G", "F", "D_X", "D_Y"):  # repro.methods.cyclegan.NET_NAMES
        for p, q in zip(eager.nets[n].parameters(), other.nets[n].parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)


def tiny_city_and_segmenter(root: Path) -> tuple[Path, Path]:
    """A 6-frame synthetic city and an untrained narrow segmenter: a reproduction's plumbing, in seconds."""
    from repro.data.synth_city import generate
    from repro.eval.fcn import fcn8s, save_segmenter

    city = generate(root / "cs", n_train=4, n_val=2, size=(64, 32), progress=False)
    seg = root / "seg.pt"
    save_segmenter(fcn8s(width=1 / 32).eval(), seg, source="test")
    return city, seg


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a CUDA device: skipped (saying so) where torch sees none, e.g. CPU CI.
    They live in tests/test_cuda.py; run it on a GPU machine (benchmarks/gpu_check.sh does, docs/gpu_check.md)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run tests/test_cuda.py on a GPU machine; "
                                   "benchmarks/gpu_check.sh does)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def small_disk(tmp_path):
    """make(size) -> a folder on a fresh tmpfs of `size` bytes, unmounted after the test."""
    mounts = []

    def make(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounts)}"
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("a real full disk needs a small tmpfs, and mounting one needs root (CI runs as root)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(folder)
        return folder

    yield make
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def packed_configs(order):
    """A pack of three runs: CycleGAN, one without the adversarial term (first, so the pack's first config
    draws nothing), one without the backward cycle; other seeds."""
    rows = ({"lambda_gan": 0.0}, {}, {"lambda_backward": 0.0})
    return [tiny_config(seed=5 + k, update_order=order, pool_size=3, lambda_identity=0.5 if order == "joint" else 0.0,
                        **row) for k, row in enumerate(rows)]
