"""The one place a --device argument becomes a torch.device."""

import torch

from repro import ReproError


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA when torch sees it, else the CPU. Asking for CUDA where there is none is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ReproError(f"--device {name}: no CUDA device is visible to torch here; use --device cpu or auto.")
    return torch.device(name)
