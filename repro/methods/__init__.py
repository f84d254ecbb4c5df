"""Every method of the paper's tables behind one interface.

A method is a module of this package with two functions, named in METHODS:

    build(cfg, device) -> Parts
        its nets (initialised from cfg.seed), one optimiser per net, history pools, and `step(x, y, rng)`: one
        training iteration on a batch of label maps x and photos y, returning the loss terms as device tensors;
        plus which nets to export after every epoch (repro.methods.common.Parts)
    translator(run, cfg, direction, device) -> nn.Module
        a trained run's translation, "x2y" (labels -> photo) or "y2x" (photo -> labels), [-1, 1] -> [-1, 1]

optionally `check(cfg)`, which refuses a config the method cannot train (the training loop calls it before any
run folder is written), and two facts: whether it trains on aligned pairs, and what it supports beyond one eager
run (`supports`, declared once here and read by training, packing and capture: CUDA_SPEEDUPS, bf16 autocast and
channels_last; PACKING, K runs in one vectorised step with its `build_packed`; CAPTURE, its step staged and
captured as a CUDA graph or compiled by repro.capture). The training loop (repro.train), translation
(repro.translate) and the reproduction (repro.reproduce) only ever go through METHODS. To add a method: repro/methods/NAME.py, one
line below, its name in repro.config.METHODS, its configs (repro/configs/*/NAME.toml with `method = "NAME"`),
and its row in repro/rows.py and expected/.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from repro.config import Config
from repro.methods import bigan, cogan, cyclegan, pix2pix, simgan
from repro.methods.common import CAPTURE, CUDA_SPEEDUPS, PACKING, Parts, as_direction

__all__ = ["CAPTURE", "CUDA_SPEEDUPS", "METHODS", "Method", "PACKING", "Parts", "as_direction", "method_of"]


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable[..., Parts]  # (cfg, device[, amp, channels_last]) -> Parts
    translator: Callable[[Path, Config, str, torch.device], nn.Module]
    paired: bool = False         # trains on aligned (label map, photo) pairs of the same frame
    supports: frozenset[str] = frozenset()  # CUDA_SPEEDUPS, PACKING, CAPTURE: what it can do beyond one eager run
    build_packed: Callable[..., Parts] | None = None  # (cfgs, device) -> Parts for K runs in one step (PACKING)
    check: Callable[[Config], None] = lambda cfg: None  # raises ReproError for a config the method cannot train;
                                                        # the training loop calls it before any run folder is written

    def __post_init__(self):
        """The declaration holds together: packing comes with its builder, capture builds on the speed-ups' build
        signature (and captures packs when the method packs)."""
        unknown = self.supports - {CUDA_SPEEDUPS, PACKING, CAPTURE}
        if unknown:
            raise TypeError(f"method {self.name}: unknown supports {sorted(unknown)}")
        if (PACKING in self.supports) != (self.build_packed is not None):
            raise TypeError(f"method {self.name}: declare PACKING exactly when it has a build_packed")
        if CAPTURE in self.supports and CUDA_SPEEDUPS not in self.supports:
            raise TypeError(f"method {self.name}: CAPTURE builds with amp= and channels_last=, so it needs "
                            f"CUDA_SPEEDUPS")

    def can(self, what: str) -> bool:
        """Whether the method supports `what` (CUDA_SPEEDUPS, PACKING or CAPTURE)."""
        return what in self.supports


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("cyclegan", cyclegan.build, cyclegan.translator, supports=frozenset({CUDA_SPEEDUPS, PACKING, CAPTURE}),
           build_packed=cyclegan.build_packed),
    Method("pix2pix", pix2pix.build, pix2pix.translator, paired=True),
    Method("simgan", simgan.build, simgan.translator, check=simgan.check),
    Method("cogan", cogan.build, cogan.translator, check=cogan.check),
    Method("bigan", bigan.build, bigan.translator, check=bigan.check),
)}


def method_of(cfg: Config) -> Method:
    return METHODS[cfg.method]
