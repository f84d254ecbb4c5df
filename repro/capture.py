"""CycleGAN's whole iteration replayed as one CUDA graph (`--graphs`), and compiled nets (`--compile`).

At batch 1 and 128x128 a GPU is starved by kernel launches, not FLOPs. A CUDA graph records the launches of
one full iteration once (all four updates in the configured order, the Adam steps, the bias zeroing) and
replays them with one call. The math is repro.methods.cyclegan.train_step itself, unchanged; what must stay
on the host happens before each replay, into buffers the graph reads:

  - the batch: copied into static input tensors (device to device);
  - the history pools' random choices: drawn on the host by ImagePool.draw (the generator consumed exactly as
    an eager step does), then staged as row indices into tensors on the device (DevicePool);
  - the scheduled lr: one device tensor per optimiser, refilled when the loop changes the float lr.

Adam runs with capturable=True during the capture (its step counter lives on the device). Warm-up steps
before the capture (cuDNN autotuning, lazy state) are undone afterwards, in place, so the first replayed
iteration starts from exactly the state an eager step would. Checkpoints and exports are those of an eager
run (same keys, float lr, capturable off), so a run can resume with or without graphs.

Packed runs (repro.methods.packing) are captured the same way: the whole vmapped step of K runs is one graph;
each run's pools are DevicePools whose draws are staged from that run's own generator before the replay.

`repro reproduce` and its jobs use `graphs="auto"` (train_runs): the staged step for every method whose declaration
supports CAPTURE (repro.methods.METHODS: CycleGAN and its ablations, the step staged here), captured on CUDA and
run uncaptured on the CPU, where it equals the eager step bit for bit (tests/test_capture.py).
"""

from contextlib import nullcontext

import torch

from repro import ReproError
from repro.config import Config
from repro.methods import CAPTURE, METHODS, Parts
from repro.methods import cyclegan
from repro.methods.packing import PackedRuns
from repro.pool import Choice, ImagePool

WARMUP_STEPS = 3


class _Rows:
    """The held rows of a DevicePool's buffer as a read-only sequence of [1, C, H, W] views (ImagePool's `images`)."""

    def __init__(self, pool: "DevicePool"):
        self.pool = pool

    def __len__(self) -> int:
        return self.pool.held

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self.pool.held <= i < self.pool.held:
            raise IndexError(i)
        i %= self.pool.held
        return self.pool.buffer[i:i + 1]

    def __iter__(self):
        return (self.pool.buffer[i:i + 1] for i in range(self.pool.held))


class DevicePool(ImagePool):
    """An ImagePool whose images live in one preallocated tensor and whose choices are staged as data.

    `stage(n, generator)` draws the next query's choices on the host (ImagePool.draw: the generator consumed
    exactly as ImagePool.query would) and copies them, device to device, into a small index tensor; `query`
    then carries them out with tensor ops only (no host read, no Python branch on data), so it can be
    captured in a CUDA graph and replayed with new choices. Returned images and stored contents equal
    ImagePool's bit for bit (tests/test_capture.py). The buffer has one extra row that receives the images
    a query does not keep; the held count is host state (the choices depend only on it)."""

    def __init__(self, size: int, device):
        super().__init__(size)
        self.device = torch.device(device)
        self.buffer: torch.Tensor | None = None  # [size + 1, C, H, W]; row `size` is the bin
        self.held = 0
        self.staged: torch.Tensor | None = None  # [n, 2] rows: (returned, stored); `size` = the query image / the bin
        self.pending = 0
        # rows[v] is a 0-d device tensor holding row v, so staging a choice is a device-to-device copy (no sync)
        self.rows = torch.arange(size + 1, device=self.device)

    @property
    def images(self):
        return _Rows(self)

    @images.setter
    def images(self, images: list) -> None:  # ImagePool.__init__ and load_state_dict
        self.held = len(images)
        if images:
            stack = torch.cat(list(images)).to(self.device)
            self._allocate(stack)
            self.buffer[:len(images)].copy_(stack)

    def _allocate(self, like: torch.Tensor) -> None:
        if self.buffer is None:
            self.buffer = torch.zeros((self.size + 1, *like.shape[1:]), dtype=like.dtype, device=self.device)

    def _stage_rows(self, choices: list[Choice]) -> None:
        if self.staged is None or len(self.staged) != len(choices):
            self.staged = torch.full((len(choices), 2), self.size, dtype=torch.long, device=self.device)
        for i, (take, store) in enumerate(choices):
            self.staged[i, 0].copy_(self.rows[take if take >= 0 else self.size])
            self.staged[i, 1].copy_(self.rows[store if store >= 0 else self.size])
        self.pending = len(choices)

    def stage(self, n: int, generator: torch.Generator) -> None:
        """Draws the next query's choices (consuming `generator` as ImagePool.query does) and stages them."""
        if self.size == 0:
            self.pending = n
            return
        choices = self.draw(n, generator)
        self._stage_rows(choices)
        self.held = max([self.held] + [store + 1 for _, store in choices])

    def stage_nothing(self, n: int) -> None:
        """Choices that leave the pool as it is (every image returned, none kept): for warm-up and capture."""
        if self.size == 0:
            self.pending = n
            return
        self._stage_rows([(-1, -1)] * n)

    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Carries out the staged choices (the generator was consumed by `stage`)."""
        if self.pending != len(images):
            raise RuntimeError(f"DevicePool.query of {len(images)} images without stage({len(images)}) first")
        self.pending = 0
        if self.size == 0:
            return images.detach()
        images = images.detach()
        self._allocate(images)
        out = []
        for i in range(len(images)):  # in order: a later image may receive what an earlier one stored
            image = images[i:i + 1].to(self.buffer.dtype)
            take, store = self.staged[i, 0:1], self.staged[i, 1:2]
            kept = self.buffer.index_select(0, take)  # a copy: the store below cannot change it
            out.append(torch.where((take == self.size).view(1, 1, 1, 1), image, kept))
            self.buffer.index_copy_(0, store, image)
        return torch.cat(out, 0)


def query_order(cfg: Config, gan: bool | None = None) -> tuple[str, ...]:
    """The order in which train_step queries the pools (its generator draws), per update order; `gan`: whether
    the step has the adversarial term (default: cfg's lambda_gan; a pack: whether any of its runs has it)."""
    if not (cfg.lambda_gan if gan is None else gan):
        return ()
    return ("D_X", "D_Y") if cfg.update_order == "sequential" else ("D_Y", "D_X")


class _OrderedPools(dict):
    """The pools as train_step sees them, noting the order it queries them in (checked against query_order)."""

    def __init__(self, pools: dict):
        super().__init__(pools)
        self.seen: list[str] = []

    def __getitem__(self, name):
        self.seen.append(name)
        return super().__getitem__(name)


class StagedStep:
    """CycleGAN's step with DevicePools staged before the body runs; `graphs=True` captures the body once
    (after warm-up, undone) and replays it. Without graphs it runs the body eagerly (the CPU test of the
    staging: bit-identical to the eager step). `packed`: the PackedRuns of K packed runs (x, y [K, B, ...],
    one generator per run), whose adversarial runs each stage their own pools from their own generator."""

    def __init__(self, cfg: Config, device, parts: Parts, amp: bool, channels_last: bool, graphs: bool,
                 packed: PackedRuns | None = None):
        self.cfg, self.device, self.parts = cfg, torch.device(device), parts
        self.amp, self.channels_last, self.graphs, self.packed = amp, channels_last, graphs, packed
        if packed is None:
            self.order = query_order(cfg)
            self.staged = [(parts.pools, None)]  # (a run's pools, its generator's index; None: the only one)
        else:  # every adversarial run queries its pools in the order one run does
            self.order = query_order(cfg, packed.on["gan"])
            self.staged = [(packed.pools[k], k) for k, on in enumerate(packed.adversarial_runs) if on]
        self.graph = None
        self.lr: dict[int, tuple[torch.Tensor, float]] = {}  # id(param group) -> (device lr, its float)
        self.dummy = torch.Generator()

    def autocast(self):
        if not self.amp:
            return nullcontext()
        # no autocast weight cache inside a captured graph (its cast copies would be freed between replays)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.graphs)

    def stage(self, n: int, rng) -> None:
        """The host's part of the pools, in the eager step's order of draws (per run: its own generator)."""
        for pools, k in self.staged:
            for name in self.order:
                pools[name].stage(n, rng if k is None else rng[k])

    def stage_nothing(self, n: int) -> None:
        for pools, _ in self.staged:
            for name in self.order:
                pools[name].stage_nothing(n)

    def body(self, x, y) -> torch.Tensor:
        """The eager step (train_step) on staged pools; every loss term stacked into one float tensor."""
        if self.packed is None:
            pools = _OrderedPools(self.parts.pools)
            terms = cyclegan.train_step(self.parts.nets, self.parts.opts, pools, x, y, self.cfg, self.dummy,
                                        self.autocast)
            seen = [pools.seen]
        else:
            own = self.packed.pools
            self.packed.pools = [_OrderedPools(p) for p in own]
            try:
                terms = cyclegan.train_step(self.parts.nets, self.parts.opts, None, x, y, self.cfg,
                                            [self.dummy] * len(own), self.autocast, self.packed)
            finally:
                seen, self.packed.pools = [p.seen for p in self.packed.pools], own
            seen = [seen[k] for k, on in enumerate(self.packed.adversarial_runs) if on]
        if any(tuple(s) != self.order for s in seen):
            raise RuntimeError(f"train_step queried the pools in the order {seen[0]}, but the captured step "
                               f"stages their draws in the order {self.order}: update repro.capture.query_order")
        self.names = list(terms)
        return torch.stack([t.float() for t in terms.values()])

    def __call__(self, x, y, rng) -> dict[str, torch.Tensor]:
        if self.channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        n = x.shape[1] if self.packed is not None else len(x)  # images per query: the batch (of each run)
        if self.graphs and self.graph is None:
            self.capture(x, y, n)
        self.stage(n, rng)
        if self.graph is None:
            out = self.body(x, y)
        else:
            self.refresh_lr()
            self.static_x.copy_(x)
            self.static_y.copy_(y)
            self.graph.replay()
            out = self.static_out.clone()  # the next replay overwrites static_out
        return dict(zip(self.names, out.unbind()))

    def groups(self):
        return [g for opt in self.parts.opts.values() for g in opt.param_groups]

    def refresh_lr(self) -> None:
        """The loop sets a float lr in each param group every epoch; the graph reads the device copy."""
        for g in self.groups():
            tensor, value = self.lr[id(g)]
            if g["lr"] != value:
                tensor.fill_(float(g["lr"]))
                self.lr[id(g)] = (tensor, g["lr"])

    def state_tensors(self) -> list[torch.Tensor]:
        nets, opts = self.parts.nets, self.parts.opts
        pools = [p for run_pools, _ in self.staged for p in run_pools.values()]
        tensors = [t for net in nets.values() for t in (*net.parameters(), *net.buffers())]
        tensors += [t for opt in opts.values() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
        return tensors + [p.buffer for p in pools if isinstance(p, DevicePool) and p.buffer is not None]

    def capture(self, x, y, n: int) -> None:
        if self.device.type != "cuda":
            raise ReproError("--graphs needs a CUDA device (CUDA graphs); on the CPU use --compile or neither")
        groups = self.groups()
        options = [(g["lr"], g["capturable"]) for g in groups]
        for g in groups:
            self.lr[id(g)] = (torch.tensor(float(g["lr"]), device=self.device), g["lr"])
            g["lr"], g["capturable"] = self.lr[id(g)][0], True
        for opt in self.parts.opts.values():  # a checkpoint written on the CPU keeps Adam's step counts there
            for state in opt.state.values():
                if "step" in state and state["step"].device != self.device:
                    state["step"] = state["step"].to(self.device, torch.float32)
        before = {id(t): t.detach().clone() for t in self.state_tensors()}
        self.static_x, self.static_y = x.clone(), y.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):  # cuDNN autotuning, Adam's lazy state, the pool buffers, compilation
                self.stage_nothing(n)
                self.body(self.static_x, self.static_y)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.stage_nothing(n)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_out = self.body(self.static_x, self.static_y)
        with torch.no_grad():  # undo the warm-up in place (the graph holds these very tensors)
            for t in self.state_tensors():
                t.copy_(before[id(t)]) if id(t) in before else t.zero_()  # new Adam state starts at zero
        for g, (lr, capturable) in zip(groups, options):  # checkpoints stay those of an eager run
            g["lr"], g["capturable"] = lr, capturable
        self.graph = graph


def check_supported(cfg: Config, device, graphs: bool) -> None:
    if not METHODS[cfg.method].can(CAPTURE):
        able = ", ".join(name for name, m in METHODS.items() if m.can(CAPTURE))
        raise ReproError(f"--graphs and --compile are implemented for {able} only, not for method {cfg.method!r}; "
                         f"train it without them")
    if graphs and torch.device(device).type != "cuda":
        raise ReproError(f"--graphs needs a CUDA device (CUDA graphs), not {device}; use --compile or neither")


def build(cfg: Config, device, amp: bool = False, channels_last: bool = False, graphs: bool = False,
          compile: bool = False, staged: bool = False) -> Parts:
    """The method's parts with the captured step (`graphs`, CUDA) and/or compiled nets (`compile`, any device);
    `staged` without `graphs`: the staged step uncaptured (what `graphs="auto"` trains with on the CPU)."""
    check_supported(cfg, device, graphs)
    device = torch.device(device)
    parts = cyclegan.build(cfg, device, amp=amp, channels_last=channels_last)
    if compile:
        for net in parts.nets.values():
            net.compile()  # in place: state_dict keys, checkpoints and exports unchanged
    if graphs or staged:
        parts.pools = {n: DevicePool(p.size, device) for n, p in parts.pools.items()}
        parts.step = StagedStep(cfg, device, parts, amp, channels_last, graphs=graphs)
    return parts


def build_packed(cfgs: list[Config], device, graphs: bool = False) -> Parts:
    """K packed runs (cyclegan.build_packed) with the staged step: one CUDA graph for the whole pack (`graphs`,
    CUDA), uncaptured otherwise (the CPU: bit-identical to the packed eager step)."""
    check_supported(cfgs[0], device, graphs)
    device = torch.device(device)
    parts = cyclegan.build_packed(cfgs, device)
    pools = [view[2] for view in parts.runs]
    for run_pools in pools:  # in place: the runs' checkpoint views hold these very dicts
        for name, pool in run_pools.items():
            run_pools[name] = DevicePool(pool.size, device)
    parts.step = StagedStep(cfgs[0], device, parts, False, False, graphs, packed=cyclegan.packed_runs(
        parts.nets, cfgs, pools, device))
    return parts
