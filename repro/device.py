"""The one place a --device argument becomes a torch.device, host-to-device copies that do not wait, and the torch
thread count for CPU training."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from repro import ReproError


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA when torch sees it, else the CPU. Asking for CUDA where there is none is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReproError(f"--device {name}: no CUDA device is visible to torch here; use --device cpu or auto.")
    return torch.device(name)


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """`tensor` on `device` without waiting for it: on CUDA through pinned memory, non_blocking, so the copy is
    queued on the stream like a kernel (a copy from pageable memory makes the host wait for the device)."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":  # a resumed run's order is on the device already
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def loader_workers(device: torch.device, workers: int | None = None) -> int:
    """Image-loading processes for a DataLoader: `workers` when given, else none on the CPU (they would take cores
    from the net) and min(4, cores) on CUDA."""
    if workers is not None:
        return workers
    return 0 if torch.device(device).type == "cpu" else min(4, os.cpu_count() or 1)


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of `jobs` processes sharing this machine's cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def use_threads(threads: int) -> None:
    """This process (a launcher's job) trains and evaluates with `threads` torch threads, CPU training included
    (cpu_threads reads REPRO_CPU_THREADS)."""
    torch.set_num_threads(threads)
    os.environ["REPRO_CPU_THREADS"] = str(threads)


# Torch threads for training on the CPU. Measured with benchmarks/cpu_threads.py on this project's 2-core
# machine (wall ms per smoke step, 1 vs 2 threads): idle 65 vs 53; beside one busy-loop process 70 vs 211
# (2026-12-02); earlier, with other agents' jobs on the machine, 141 vs 1223 and 188 vs 2839. A second intra-op
# thread gains ~20% on an idle machine and loses 3-9x as soon as anything else wants a core (spinning threads
# stall each other). One thread per run, runs in parallel processes or packed, is the predictable choice, and
# one fixed count keeps CPU results the same in every process (float sums split across threads round
# differently). REPRO_CPU_THREADS overrides it.
CPU_THREADS = 1


def cpu_threads() -> int:
    """The torch thread count for CPU training: REPRO_CPU_THREADS if set (a positive integer), else CPU_THREADS."""
    value = os.environ.get("REPRO_CPU_THREADS", "").strip()
    if not value:
        return CPU_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ReproError(f"REPRO_CPU_THREADS={value!r}: give a positive integer (torch threads for CPU training) "
                         f"or unset it for the default {CPU_THREADS}")
    return int(value)


@contextmanager
def training_threads(device: torch.device) -> Iterator[int | None]:
    """While training on the CPU, torch uses cpu_threads() threads (restored afterwards); yields that count,
    None on other devices. Every CPU trainer (runs, the smoke segmenter) goes through here, so a result does
    not depend on the process it was trained in (pytest, the CLI, a launcher job)."""
    if torch.device(device).type != "cpu":
        yield None
        return
    threads, before = cpu_threads(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)

