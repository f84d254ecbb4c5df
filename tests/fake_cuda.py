"""Fake CUDA: the real training code on "cuda" tensors that have shapes, dtypes and devices but no data, on any
machine (torch._subclasses.fake_tensor.FakeTensorMode). It checks what a real GPU run would pay for or break on:

  host read         .item(), float(), bool() / Python control flow on a CUDA tensor, .tolist(), nonzero, a copy to
                    the CPU, torch.cuda.synchronize: the host waits for the device. Allowed only while setting up,
                    inside the windows a test names (logging, checkpoints, exports), never inside a captured graph.
  pageable copy     a host-to-device copy from memory that is not pinned, or without non_blocking: the host waits
                    for the copy. Allowed while setting up and inside the windows, never once the iterations run.
  mixed devices     a CPU tensor (not 0-d) meeting a CUDA one in one op, or a CPU generator drawing for a CUDA op.
  capture           inside torch.cuda.graph: any op on a CPU tensor, with a CPU generator, or on the host alone
                    (it runs once, at capture, and the graph replays a constant), any host read or copy.

Everything that needs a driver is stubbed: streams, graphs, events, synchronize, the CUDA RNG state, fused Adam
(no meta kernel), and backward (the autograd engine needs a CUDA context, pytorch/pytorch#92627: here each
parameter gets a gradient of its shape, so backward kernels are not checked). A fake tensor copied back to the host
reads as zeros (-1 for integers, so LossWatch reads "never non-finite"), except an integer tensor that was copied up
(a checkpoint's generator state), which reads back as it was; torch.save / torch.load write and read those host
copies, so checkpoints, resume and exports run end to end. Module.to keeps each parameter object, as on real CUDA.
Read this file with tests/test_fake_cuda.py, which runs repro.train.train_runs under it.
"""

import contextlib
import inspect
import weakref

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._mode_utils import no_dispatch
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils._python_dispatch import _disable_current_modes

aten = torch.ops.aten
HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.is_nonzero.default, aten.equal.default}
PIN = {aten._pin_memory.default}
FUSED = {aten._fused_adam_, aten._fused_adamw_}


class Violation(AssertionError):
    """What a real GPU run would wait on or fail at, with the op and where the harness stood."""


def host_copy_of(t: torch.Tensor) -> torch.Tensor:
    """What a fake CUDA tensor reads as on the host: zeros, -1 for integers."""
    fill = -1 if not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool) else 0
    with no_dispatch():
        return torch.full(t.shape, fill, dtype=t.dtype)


class FakeCuda(FakeTensorMode):
    """CUDA tensors are fake, CPU tensors stay real (data, generators and file reads work as they do).

    `phase` is "setup" until the loop's first iteration (`iterating()`), then "loop"; `window()` marks code
    allowed to read the device back (logging, checkpoints); `capturing` is set by the torch.cuda.graph stub.
    The first violation raises Violation; `events` keeps every host read and copy seen, for tests to count."""

    def __init__(self):
        super().__init__(allow_non_fake_inputs=True)
        self.phase, self.windows, self.capturing = "setup", 0, False
        self.pinned: dict[int, weakref.ref] = {}  # id -> the host tensors pin_memory made
        self.events: list[tuple[str, str, str]] = []  # (phase, kind, op)
        self.uploaded: dict[int, tuple[weakref.ref, torch.Tensor]] = {}  # id(fake) -> (it, the host tensor copied up)

    # --- where the harness stands
    def iterating(self) -> None:
        self.phase = "loop"

    @contextlib.contextmanager
    def window(self):
        self.windows += 1
        try:
            yield
        finally:
            self.windows -= 1

    def host_copy(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor copied up from the host reads back as it was (a checkpoint's generator state); others are
        host_copy_of's zeros."""
        ref, host = self.uploaded.get(id(t), (lambda: None, None))
        if ref() is t and host.shape == t.shape:
            with no_dispatch():
                return host.to(t.dtype).clone()
        return host_copy_of(t)

    def is_pinned(self, t: torch.Tensor) -> bool:
        return id(t) in self.pinned and self.pinned[id(t)]() is t

    def where(self) -> str:
        return "capture" if self.capturing else "window" if self.windows else self.phase

    def check(self, kind: str, op, detail: str = "") -> None:
        """A host read ("read") or pageable copy ("copy"): recorded, and a violation where it is not allowed."""
        where = self.where()
        self.events.append((where, kind, str(op)))
        if where in ("capture", "loop"):
            what = {"read": "the host reads a CUDA tensor (the host waits for the device)",
                    "copy": "a host-to-device copy from pageable memory or without non_blocking (the host waits)",
                    "sync": "the host synchronises with the device"}[kind]
            inside = "inside a captured CUDA graph" if where == "capture" else "inside a training iteration"
            raise Violation(f"{op}: {what}, {inside}{detail}")

    def violation(self, message: str) -> None:
        raise Violation(message)

    # --- the dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        fake = [t for t in tensors if isinstance(t, FakeTensor)]
        device = kwargs.get("device")
        to_cuda = device is not None and torch.device(device).type == "cuda"
        generator = kwargs.get("generator")

        if func.overloadpacket in FUSED:  # no meta kernel; in place, nothing to compute on fake tensors
            cpu = [t for t in tensors if not isinstance(t, FakeTensor)]
            if cpu:
                self.violation(f"{func}: optimiser state on the CPU (shape {tuple(cpu[0].shape)}) in a CUDA step")
            return None
        if func is aten.is_pinned.default:
            return self.is_pinned(args[0])
        if func in PIN:
            if self.capturing:
                self.violation(f"{func}: pinning host memory inside a captured CUDA graph")
            with no_dispatch():
                out = args[0].clone()
            self.pinned[id(out)] = weakref.ref(out)
            return out
        if self.capturing:
            # A CPU tensor feeding the graph is replayed as captured: a host computation (a CPU input without a
            # CUDA one) or a CPU operand with elements is refused. A 0-dim CPU operand of a CUDA op (vmap's lifted
            # Python scalars, `0.5 * x`) is passed by value as real CUDA does: fine for a constant.
            cpu = [t for t in tensors if not isinstance(t, FakeTensor) and (t.dim() > 0 or not fake)]
            # A host op without tensor inputs makes a constant (vmap lifts `0.5 * x`'s scalar with one), which a
            # graph may replay; a random one (the global CPU generator) would replay one draw forever.
            host_op = (not (fake or to_cuda) and func.namespace == "aten"  # not the profiler's record_function
                       and torch.Tag.nondeterministic_seeded in func.tags)
            if cpu or (generator is not None and generator.device.type != "cuda") or host_op:
                self.violation(f"{func} runs on the host (a CPU tensor, a CPU generator or a host op) inside a "
                               f"captured CUDA graph: it ran once, at capture, and the graph replays its result as a "
                               f"constant")
        if generator is not None and (fake or to_cuda) and generator.device.type != "cuda":
            self.violation(f"{func}: a CPU torch.Generator draws for a CUDA op (real CUDA refuses it)")
        if not fake and not to_cuda:
            with no_dispatch():  # a CPU op: runs for real
                return func(*args, **kwargs)

        real = [t for t in tensors if not isinstance(t, FakeTensor)]
        copy_in = func in (aten._to_copy.default, aten.copy_.default) and real and (
            to_cuda or (func is aten.copy_.default and isinstance(args[0], FakeTensor)))
        copy_out = (func is aten._to_copy.default and fake and device is not None and torch.device(device).type == "cpu") \
            or (func is aten.copy_.default and not isinstance(args[0], FakeTensor))
        if copy_in:
            source = args[1] if func is aten.copy_.default else args[0]
            non_blocking = args[2] if func is aten.copy_.default and len(args) > 2 else kwargs.get("non_blocking", False)
            if self.capturing:
                self.violation(f"{func}: a host-to-device copy inside a captured CUDA graph")
            if not (non_blocking and self.is_pinned(source)):
                self.check("copy", func)
            out = super().__torch_dispatch__(func, types, args, kwargs)
            if not source.dtype.is_floating_point:  # no weakref on a net's parameters: Module.to swaps them
                with no_dispatch():
                    self.uploaded[id(out)] = (weakref.ref(out), source.clone())
            return out
        elif copy_out:
            self.check("read", func)
            source = args[1] if func is aten.copy_.default else args[0]
            host = self.host_copy(source)
            if func is aten.copy_.default:
                with no_dispatch():
                    return args[0].copy_(host.to(args[0].dtype))
            with no_dispatch():
                return host.to(kwargs.get("dtype") or host.dtype)
        elif func in HOST_READS:
            self.check("read", func)
            if func is aten._local_scalar_dense.default:
                return self.host_copy(args[0]).item()
            self.violation(f"{func} on fake CUDA has no data to answer with")
        else:
            big_cpu = [t for t in real if t.dim() > 0]
            if big_cpu:
                self.violation(f"{func}: a CPU tensor of shape {tuple(big_cpu[0].shape)} meets a CUDA tensor "
                               f"(real CUDA refuses it, or copies and waits)")
        return super().__torch_dispatch__(func, types, args, kwargs)


# --- what needs a driver
class Stream:
    def __init__(self, device=None, priority=0):
        self.device = torch.device("cuda")

    def wait_stream(self, other) -> None:
        pass

    def synchronize(self) -> None:
        MODE[0].check("sync", "Stream.synchronize")

    def record_event(self, event=None):
        return event or Event()


class Event:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, stream=None) -> None:
        pass

    def synchronize(self) -> None:
        MODE[0].check("sync", "Event.synchronize")

    def elapsed_time(self, other) -> float:
        return 0.0


class CUDAGraph:
    """Records nothing and replays nothing: fake tensors have no values to recompute."""

    def __init__(self, *args, **kwargs):
        self.captured = False

    def replay(self) -> None:
        if not self.captured:
            raise Violation("CUDAGraph.replay before a capture")


@contextlib.contextmanager
def graph(cuda_graph, pool=None, stream=None, capture_error_mode="global"):
    mode = MODE[0]
    if mode.capturing:
        raise Violation("torch.cuda.graph inside another capture")
    mode.capturing = True
    try:
        yield
    finally:
        mode.capturing = False
    cuda_graph.captured = True


@contextlib.contextmanager
def stream(s):
    yield


def synchronize(device=None) -> None:
    MODE[0].check("sync", "torch.cuda.synchronize")


MODE: list[FakeCuda] = []  # the active harness, for the stubs


def asked_by_repro() -> bool:
    """torch.cuda.is_available() answers True to the project's code (and its tests) only: torch's own code
    keeps seeing no device, so it never tries to initialise a driver."""
    caller = inspect.currentframe().f_back.f_back
    return caller.f_globals.get("__name__", "").split(".")[0] in ("repro", "tests", "__main__")


def leaves(root: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors a loss's graph accumulates gradients into."""
    found, seen, todo = [], set(), [root.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            found.append(fn.variable)
        todo += [next_fn for next_fn, _ in fn.next_functions]
    return found


def fake_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Tensor.backward on fake CUDA: every input gets a gradient of its shape (zeros where it had none).
    The autograd engine itself needs a CUDA context (pytorch/pytorch#92627), so the backward kernels are not
    run here: what this harness checks lives in the forward pass, the optimiser and the loop."""
    if self.numel() != 1 and gradient is None:
        raise RuntimeError("grad can be implicitly created only for scalar outputs")
    if not self.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    for t in (list(inputs) if inputs is not None else leaves(self)):
        if t.grad is None:
            t.grad = torch.zeros_like(t)


class NoFakeWeakrefs:
    """The fake mode's own weak references (to each real tensor it converted, each fake tensor it made) may
    point at a swapped parameter: the harness never converts that tensor again."""
    getweakrefs = staticmethod(lambda t: [])


def fake_save(obj, f, *args, **kwargs):
    """torch.save of fake CUDA tensors: their host copies (a real save of fake tensors has no bytes to write)."""
    host = tree_map(lambda t: MODE[0].host_copy(t) if isinstance(t, FakeTensor) else t, obj)
    with _disable_current_modes():  # torch.save and torch.load see an active fake mode and skip the data
        return REAL["save"](host, f, *args, **kwargs)


def fake_load(f, map_location=None, **kwargs):
    """torch.load onto fake CUDA: read on the host, then moved to the device (setup-time copies)."""
    with _disable_current_modes():
        obj = REAL["load"](f, map_location="cpu", **kwargs)
    if map_location is not None and torch.device(map_location).type == "cuda":
        obj = tree_map(lambda t: t.to("cuda") if isinstance(t, torch.Tensor) else t, obj)
    return obj


REAL = {"save": torch.save, "load": torch.load}


@contextlib.contextmanager
def fake_cuda(monkeypatch):
    """The harness, active: yields the FakeCuda mode. Uses pytest's monkeypatch for every stub."""
    mode = FakeCuda()
    MODE[:] = [mode]
    real_available = torch.cuda.is_available
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True if asked_by_repro() else real_available())
    for name, value in {"Stream": Stream, "Event": Event, "CUDAGraph": CUDAGraph, "graph": graph, "stream": stream,
                        "synchronize": synchronize, "current_stream": lambda device=None: Stream(),
                        "get_rng_state_all": lambda: [torch.zeros(16, dtype=torch.uint8)],
                        "set_rng_state_all": lambda states: None, "manual_seed_all": lambda seed: None,
                        "is_bf16_supported": lambda including_emulation=True: True,
                        "max_memory_allocated": lambda device=None: 0, "reset_peak_memory_stats": lambda device=None: None,
                        "set_sync_debug_mode": lambda mode: None, "get_device_name": lambda device=None: "fake CUDA"}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    # Module.to keeps each parameter object (a real CUDA move sets .data; caches such as repro.networks' conv
    # biases rely on it): onto fake tensors that is torch.utils.swap_tensors, which refuses a tensor with weak
    # references, and the fake mode keeps some: let the swap ignore them
    monkeypatch.setattr(torch.__future__, "_swap_module_params_on_conversion", True)
    monkeypatch.setattr(torch.utils, "weakref", NoFakeWeakrefs)
    monkeypatch.setattr(torch, "save", fake_save)
    monkeypatch.setattr(torch.Tensor, "backward", fake_backward)
    monkeypatch.setattr(torch, "load", fake_load)
    try:
        with mode:
            yield mode
    finally:
        MODE.clear()
