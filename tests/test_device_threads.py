"""CPU training's torch thread count: one place (repro.device), overridable, validated, recorded, restored."""

import json

import pytest
import torch

from repro import ReproError
from repro.device import CPU_THREADS, cpu_threads
from repro.train import train
from tests.conftest import tiny_config


def test_cpu_threads_default_and_override(monkeypatch):
    monkeypatch.delenv("REPRO_CPU_THREADS", raising=False)
    assert cpu_threads() == CPU_THREADS == 1
    monkeypatch.setenv("REPRO_CPU_THREADS", "3")
    assert cpu_threads() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("REPRO_CPU_THREADS", bad)
        with pytest.raises(ReproError, match="REPRO_CPU_THREADS"):
            cpu_threads()


def test_train_on_the_cpu_uses_and_records_the_thread_count_then_restores_it(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("REPRO_CPU_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    monkeypatch.setattr("repro.train.LossWatch.add", lambda self, step, values: seen.append(torch.get_num_threads()))
    try:
        train(tiny_config(epochs_constant=1, epochs_decay=0, iters_per_epoch=2), tiny_data, tmp_path / "run",
              device="cpu", progress=False)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["cpu_threads"] == 1 and info["cuda_graphs"] is False and info["compiled"] is False


def test_a_bad_thread_setting_stops_before_the_run_folder_exists(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("REPRO_CPU_THREADS", "x")
    with pytest.raises(ReproError, match="REPRO_CPU_THREADS"):
        train(tiny_config(), tiny_data, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run").exists()
