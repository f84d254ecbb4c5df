"""Several runs of one architecture trained as one vectorised step ("packing").

K runs (the seeds of a row, and rows that differ only in loss weights) keep their nets as one set of
parameters stacked on a leading run axis, [K, ...], and every net call is `torch.func.vmap` over that axis
of `functional_call` on the original module. Loss terms are computed per run inside the vmap, so each
run's gradient is exactly its own loss's gradient; their sum over runs is backpropagated once. Adam is
elementwise, so one Adam over the stacked tensors is K independent Adams (same lr schedule, same step
count). What is random stays per run: each run keeps its own torch.Generator (data order, crops, flips,
history pool) and its own pools; initialisation uses each run's seed exactly as a solo run does.

On the CPU a packed run equals the same run trained alone to float tolerance (a batched convolution sums
in another order), not bit for bit; tests/test_packing.py checks losses and weights over 20 iterations.
"""

import copy
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from repro import ReproError
from repro.config import Config
from repro.methods.common import CUDA_SPEEDUPS, PACKING
from repro.networks import conv_bias_names
from repro.pool import ImagePool


class Stacked(nn.Module):
    """K nets of one architecture as one module: parameters stacked [K, ...]; `call` runs one run's net
    (inside PackedRuns.apply's vmap)."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.runs = len(nets)
        self.base = [copy.deepcopy(nets[0]).to("meta")]  # a list: the structure only, not a submodule
        params, buffers = stack_module_state(nets)
        self.names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach().clone()) for n in self.names])
        self.buffer_names = list(buffers)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name].clone())
        self.conv_biases = [self.stacked[self.names.index(n)] for n in conv_bias_names(nets[0])]
        self.state_keys = list(nets[0].state_dict())

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(parameters, buffers) by the original module's names, each [K, ...]."""
        return (dict(zip(self.names, self.stacked)),
                {n: getattr(self, f"buffer_{i}") for i, n in enumerate(self.buffer_names)})

    def call(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        """One run's forward, with that run's parameters (inside a vmap)."""
        return functional_call(self.base[0], (params, buffers), (x,))

    # One run's view, with the state_dict layout of the original module (for checkpoints and exports).
    def run_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        params, buffers = self.tensors()
        both = params | buffers
        return {key: both[key][k].detach().clone() for key in self.state_keys}

    @torch.no_grad()
    def load_run_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        params, buffers = self.tensors()
        both = params | buffers
        missing = set(self.state_keys) ^ set(state)
        if missing:
            raise KeyError(f"state_dict keys differ from the net's: {sorted(missing)[:5]}")
        for key in self.state_keys:
            both[key][k].copy_(state[key])


class RunNet:
    """Run k of a Stacked net, seen as a module by repro.checkpoint (state_dict / load_state_dict)."""

    def __init__(self, stacked: Stacked, k: int):
        self.stacked, self.k = stacked, k

    def state_dict(self) -> dict:
        return self.stacked.run_state_dict(self.k)

    def load_state_dict(self, state: dict) -> None:
        self.stacked.load_run_state_dict(self.k, state)


class RunOptimizer:
    """Run k of an Adam over stacked parameters, in the state_dict layout of that run's solo Adam."""

    def __init__(self, opt: torch.optim.Optimizer, k: int):
        self.opt, self.k = opt, k

    def state_dict(self) -> dict:
        full = self.opt.state_dict()
        state = {i: {key: (v if key == "step" else v[self.k]).clone() for key, v in s.items()}
                 for i, s in full["state"].items()}
        return {"state": state, "param_groups": full["param_groups"]}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        params = self.opt.param_groups[0]["params"]
        for i, s in state["state"].items():
            p = params[int(i)]
            own = self.opt.state[p]
            if not own:  # a fresh optimizer: create the stacked state this run's slice lands in
                own.update({key: (v.clone() if key == "step" else
                                  torch.zeros((len(p),) + tuple(v.shape), dtype=v.dtype, device=p.device))
                            for key, v in s.items()})
            for key, v in s.items():
                if key == "step":
                    own[key].copy_(v)  # the same in every run of a pack (they step together)
                else:
                    own[key][self.k].copy_(v)
        for group, saved in zip(self.opt.param_groups, state["param_groups"]):
            group["lr"] = saved["lr"]


class OneRun:
    """How a method's step runs one run (the default): its nets, its config, its pools, as they are."""

    def __init__(self, nets: dict[str, nn.Module], cfg, pools: dict[str, ImagePool], on: dict[str, bool]):
        self.nets, self.cfg, self.pools, self.on = nets, cfg, pools, on

    def apply(self, fn, *tensors):
        return fn(self.nets, self.cfg, *tensors)

    @staticmethod
    def total(loss: torch.Tensor) -> torch.Tensor:
        return loss

    adversarial_total = total

    def query(self, name: str, fake: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return self.pools[name].query(fake, rng)


class PackedRuns:
    """How a method's step runs K packed runs: terms per run under vmap, their sum over runs, one pool and
    one generator per run, and the runs whose config has no adversarial term leaving their discriminators
    untouched (zero gradient: Adam, whose moments stay zero, moves nothing) and their generators undrawn."""

    def __init__(self, nets: dict[str, Stacked], cfgs: list, on: dict[str, bool], pools: list[dict[str, ImagePool]],
                 device):
        self.nets, self.on, self.pools = nets, on, pools
        self.weights = {k: torch.tensor([float(getattr(c, k)) for c in cfgs], device=device)
                        for k in ("lambda_gan", "lambda_forward", "lambda_backward", "lambda_identity")}
        self.cfg = cfgs[0]  # every field but the weights is the same in every run of a pack (check_pack)
        self.adversarial_runs = [c.lambda_gan != 0 for c in cfgs]
        self.adversarial = torch.tensor(self.adversarial_runs, dtype=torch.float32, device=device)

    def apply(self, fn, *tensors):
        """fn(nets, cfg, *tensors) once per run (vmap): nets are that run's functions, cfg its config (the pack's
        shared fields, that run's loss weights), so the loss code reads every field as it does for a run alone."""
        names = list(self.nets)
        params = {n: self.nets[n].tensors()[0] for n in names}
        buffers = {n: self.nets[n].tensors()[1] for n in names}

        def one_run(params, buffers, weights, *xs):
            nets = {n: (lambda x, n=n: self.nets[n].call(params[n], buffers[n], x)) for n in names}
            return fn(nets, replace(self.cfg, **weights), *xs)

        return vmap(one_run)(params, buffers, self.weights, *tensors)

    @staticmethod
    def total(loss: torch.Tensor) -> torch.Tensor:
        return loss.sum()

    def adversarial_total(self, loss: torch.Tensor) -> torch.Tensor:
        return (loss * self.adversarial).sum()

    def query(self, name: str, fake: torch.Tensor, rngs: list[torch.Generator]) -> torch.Tensor:
        """Each run's own pool and generator; a run without an adversarial term draws nothing (as alone)."""
        fake = fake.detach()
        return torch.stack([self.pools[k][name].query(fake[k], rngs[k]) if self.adversarial_runs[k] else fake[k]
                            for k in range(len(fake))])


def logged(term: str, cfg: Config) -> bool:
    """Whether a run trained alone would log this term (packed runs compute a term any of them uses)."""
    for prefix, weight in (("gan", cfg.lambda_gan), ("D_", cfg.lambda_gan), ("cycle_forward", cfg.lambda_forward),
                           ("cycle_backward", cfg.lambda_backward), ("identity", cfg.lambda_identity)):
        if term.startswith(prefix):
            return weight != 0
    return True


class Alone:
    """What the training loop sees of one run: what it refuses, how its parts are built, its step on one batch,
    its (nets, optimisers, pools) for the checkpoint, its log line, its progress bar, where a full disk is named
    and its run.json record. Pack is the same for K runs; runs_of picks one, and the loop reads the same for both."""

    def __init__(self, parts, cfgs: list[Config]):
        self.parts, self.cfgs, self.views = parts, cfgs, [(parts.nets, parts.opts, parts.pools)]

    @staticmethod
    def refuse(method, cfgs: list[Config], runs: list, amp: bool, channels_last: bool, compile: bool) -> None:
        """One run is refused only what any run is (repro.train.train_runs)."""

    @staticmethod
    def build(method, cfgs: list[Config], device, capture, staged: bool, graphs: bool, amp: bool, channels_last: bool,
              compile: bool):
        """The method's parts: its eager step, or repro.capture's staged step (captured when `graphs`) and compiled
        nets; `capture` is that module, handed in by repro.train (it imports this one)."""
        speedups = {"amp": amp, "channels_last": channels_last} if method.can(CUDA_SPEEDUPS) else {}
        if staged or compile:
            return capture.build(cfgs[0], device, **speedups, graphs=graphs, compile=compile, staged=staged)
        return method.build(cfgs[0], device, **speedups)

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor]], rngs: list[torch.Generator]) -> dict:
        return self.parts.step(*batches[0], rngs[0])

    @staticmethod
    def log_rows(values: dict[str, float]) -> list[dict[str, float]]:
        return [values]

    def label(self) -> str:
        return f"train {self.cfgs[0].name}"

    @staticmethod
    def folder(runs: list[Path]) -> Path:
        """Where the run's files are (a full disk names it)."""
        return runs[0]

    @staticmethod
    def record(runs: list, k: int) -> dict | None:
        """run.json's `packed` entry of run k."""
        return None


class Pack(Alone):
    """What the training loop sees of K packed runs: one step on the K batches stacked, each run's view of the
    nets, optimisers and pools for its checkpoint, and each run's log line with the terms it would log alone."""

    def __init__(self, parts, cfgs: list[Config]):
        self.parts, self.cfgs, self.views = parts, cfgs, parts.runs

    @staticmethod
    def refuse(method, cfgs: list[Config], runs: list, amp: bool, channels_last: bool, compile: bool) -> None:
        """Runs that cannot share one step: one folder named twice, a method the declaration (Method.supports)
        does not pack, the CUDA speed-ups, fid_every or --compile, or configs that differ in more than PACKABLE."""
        if len({Path(r).resolve() for r in runs}) < len(runs):
            raise ReproError(f"runs packed together need a folder each, but {', '.join(map(str, runs))} name one "
                             f"folder twice; give each seed once")
        if not method.can(PACKING) or amp or channels_last or any(c.fid_every for c in cfgs):
            raise ReproError(f"packing several runs is implemented for CycleGAN and its ablations without --amp, "
                             f"--channels-last and fid_every (method {cfgs[0].method!r}); train these runs one by one")
        check_pack(cfgs)
        if compile:
            raise ReproError("--compile is implemented for one run at a time, not for packed runs; "
                             "train the pack without it")

    @staticmethod
    def build(method, cfgs: list[Config], device, capture, staged: bool, graphs: bool, amp: bool, channels_last: bool,
              compile: bool):
        """K runs in one vectorised step (method.build_packed), or repro.capture's staged step for the pack."""
        if staged:
            return capture.build_packed(cfgs, device, graphs=graphs)
        return method.build_packed(cfgs, device)

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor]], rngs: list[torch.Generator]) -> dict:
        x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        return self.parts.step(x, y, rngs)

    def log_rows(self, values: dict[str, list[float]]) -> list[dict[str, float]]:
        return [{n: v[k] for n, v in values.items() if logged(n, c)} for k, c in enumerate(self.cfgs)]

    def label(self) -> str:
        return f"train {self.cfgs[0].name} (+{len(self.cfgs) - 1} packed)"

    @staticmethod
    def folder(runs: list[Path]) -> Path:
        """The folder holding the pack's run folders (a full disk names it)."""
        return runs[0].parent

    @staticmethod
    def record(runs: list, k: int) -> dict | None:
        return {"runs": len(runs), "index": k, "folders": [str(r) for r in runs]}


def runs_of(cfgs: list[Config]) -> type[Alone]:
    """The adapter for these runs: Alone for one, Pack for several."""
    return Pack if len(cfgs) > 1 else Alone


# What may differ between the runs of a pack: the seed, the loss weights (the ablations), the name.
PACKABLE = {"seed", "name", "lambda_gan", "lambda_forward", "lambda_backward", "lambda_identity"}


def check_pack(cfgs) -> None:
    """Refuses runs that cannot share one step: anything but seed, name and loss weights differs."""
    first = vars(cfgs[0])
    differ = sorted(k for k in first if k not in PACKABLE and any(vars(c)[k] != first[k] for c in cfgs[1:]))
    if differ:
        raise ReproError(f"runs packed together may differ only in seed and loss weights; these differ: {differ}")
