"""The one place a --device argument becomes a torch.device, and the torch thread count for CPU training."""

import os

import torch

from repro import ReproError


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA when torch sees it, else the CPU. Asking for CUDA where there is none is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReproError(f"--device {name}: no CUDA device is visible to torch here; use --device cpu or auto.")
    return torch.device(name)


# Torch threads for training on the CPU. Measured (benchmarks/cpu_threads.py, 2-core machine shared with other
# processes): a smoke step took 141 ms with 1 thread and 1223 ms with 2; beside one busy-loop process 188 ms
# with 1 thread and 2839 ms with 2. The smoke nets are too small for a second intra-op thread to help, and
# spinning threads that share cores with anything else stall each other. One thread per run, runs in
# parallel processes or packed, is the fast and predictable choice. REPRO_CPU_THREADS overrides it.
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

