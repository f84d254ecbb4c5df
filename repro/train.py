"""The training loop, top to bottom: build a method's parts, (resume), loop over epochs and iterations,
checkpoint, export. One loop for every method (repro.methods); the run folder's files are repro.checkpoint's.
"""

import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from repro import ReproError
from repro.checkpoint import (check_run_folder, disk_full_fix, export, load_checkpoint, prepare_run_folder, record_data,
                              save_checkpoints, settle_pack_checkpoint, truncate_log, write_run_info)
from repro.config import Config, port_a
from repro.data.loaders import AlignedData, UnalignedData, load_folder, to_model_range
from repro.device import cpu_threads, pick_device, to_device, training_threads
from repro.io import DiskFull, free_space, is_disk_full, write_json
from repro.methods import CAPTURE, CUDA_SPEEDUPS, METHODS, Parts
from repro.methods.packing import runs_of
from repro.schedule import lr_factor


class LossWatch:
    """Loss terms stay on the device. Each iteration adds a few tiny kernels (is every term finite, and if not,
    since which step and with what value); the host reads them only when it logs and before every checkpoint,
    so the step never waits for the device. A non-finite loss stops the run at the next read, before anything
    is logged or saved after it, with the step where it first appeared. Terms are scalars, or [K] for packed runs."""

    def __init__(self):
        self.names: list[str] | None = None

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        if self.names is None:
            self.names = list(values)
            reference = torch.stack([values[n].float() for n in self.names])
            self.first_bad = torch.full(reference.shape, -1, dtype=torch.long, device=reference.device)
            self.bad_value = torch.zeros_like(reference)
        stacked = torch.stack([values[n].float() for n in self.names])
        new = ~torch.isfinite(stacked) & (self.first_bad < 0)
        self.first_bad = torch.where(new, step, self.first_bad)
        self.bad_value = torch.where(new, stacked, self.bad_value)

    def check(self, iters: int, checkpoints: list[Path], saved_step: int, amp: bool) -> None:
        """Raises the stop message if any term of any run was ever non-finite (one read from the device)."""
        if self.names is None:
            return
        first = self.first_bad.reshape(len(self.names), -1).T.tolist()  # [run][term]
        bad = [(s, k, t) for k, row in enumerate(first) for t, s in enumerate(row) if s >= 0]
        if not bad:
            return
        step, k, _ = min(bad)
        names = [self.names[t] for s, r, t in bad if (s, r) == (step, k)]
        value = float(self.bad_value.reshape(len(self.names), -1)[self.names.index(names[0]), k])
        where = f"loss {', '.join(names)} became {value} at epoch {(step - 1) // iters + 1}, iteration {(step - 1) % iters + 1}."
        if not checkpoints[k].exists():  # it went bad before the first checkpoint: there is nothing to resume
            raise ReproError(f"{where} No checkpoint had been written yet, so there is nothing to resume: lower lr"
                             f"{' or disable amp' if amp else ''} and start the run again (without --resume).")
        raise ReproError(
            f"{where} The last good checkpoint {checkpoints[k]} (step {saved_step}) was not "
            f"overwritten{' (nor those of the runs packed with it)' if len(checkpoints) > 1 else ''}; lower lr"
            f"{' or disable amp' if amp else ''} and resume with --resume.")


WARMUP_ITERATIONS = 1  # a session's first iteration: lazy state, cuDNN autotuning, the CUDA graph's capture
PROGRESS_SECONDS = 5.0  # RUN/progress.json is rewritten at log points at most this often


class Clock:
    """Where a training session's wall time goes, for run.json (docs/estimates.md):

      setup_seconds   from the call to the first iteration: the dataset read and decoded, nets built, a resume
      warmup_seconds  the first WARMUP_ITERATIONS iterations of the session (lazy state, cuDNN autotuning, the
                      CUDA graph's capture)
      io_seconds      checkpoints, generator exports and FID after the loss check that precedes them
      step_seconds    everything else in the loop: the steady-state iterations (`steps` of them) with their
                      log lines; on CUDA the device's work is counted where the host waits for it (log points)

    Times are host wall clock (time.perf_counter); a pack's are the pack's, shared by its K runs."""

    def __init__(self):
        self.called = time.perf_counter()
        self.started = self.warm = None
        self.io_seconds = self.warm_io = 0.0
        self.iterations = 0

    def start(self) -> None:
        self.started = time.perf_counter()

    def iteration_done(self) -> None:
        self.iterations += 1
        if self.iterations == WARMUP_ITERATIONS:
            self.warm, self.warm_io = time.perf_counter(), self.io_seconds

    def io(self, fn, *args):
        """fn(*args), its time counted as I/O."""
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.io_seconds += time.perf_counter() - start

    def seconds(self) -> float:
        """The loop's wall time so far (what train_seconds has always counted)."""
        return time.perf_counter() - self.started

    def summary(self) -> dict:
        now = time.perf_counter()
        warm = self.warm if self.warm is not None else now
        warm_io = self.warm_io if self.warm is not None else self.io_seconds
        steps = max(0, self.iterations - WARMUP_ITERATIONS)
        step_seconds = now - warm - (self.io_seconds - warm_io)
        return {"setup_seconds": round(self.started - self.called, 3),
                "warmup_seconds": round(warm - self.started - warm_io, 3), "warmup_iterations": self.iterations - steps,
                "io_seconds": round(self.io_seconds, 3), "step_seconds": round(step_seconds, 3), "steps": steps,
                "seconds_per_iteration": round(step_seconds / steps, 6) if steps else None}


def write_progress(runs: list[Path], step: int, total: int, first_step: int, seconds: float) -> None:
    """RUN/progress.json for each run (what the launcher shows live): the step reached of `total`, and the rate
    of this session (iterations since `first_step` over the loop's `seconds`, I/O included)."""
    rate = (step - first_step) / seconds if seconds > 0 and step > first_step else None
    info = {"step": step, "total": total, "it_per_s": round(rate, 4) if rate else None,
            "eta_seconds": round((total - step) / rate, 1) if rate else None, "updated": time.time()}
    for run in runs:
        write_json(run / "progress.json", info)


class FIDLog:
    """FID/KID of G's translations of a fixed val subset against the real val photos, every `fid_every`
    epochs, appended to RUN/fid.jsonl. Built before training starts, so missing Inception weights stop
    the run before any work."""

    def __init__(self, cfg: Config, data: Path, device, weights: Path | None, progress: bool = True):
        from repro.eval.fid import FIDScorer  # pytorch-fid is only needed when FID is asked for
        n = cfg.fid_images
        x_val, _ = load_folder(data / cfg.x_test, cfg.crop_size, cfg.resize_filter, desc="FID inputs", progress=progress)
        y_val, _ = load_folder(data / cfg.y_test, cfg.crop_size, cfg.resize_filter, desc="FID reference", progress=progress)
        self.inputs = to_model_range(x_val[:n]).to(device)
        with torch.random.fork_rng(devices=[]):  # building Inception draws random init weights: keep training's RNG
            self.scorer = FIDScorer(to_model_range(y_val[:n]), device=str(device), weights=weights)

    @torch.no_grad()
    def log(self, path: Path, G: nn.Module, epoch: int, step: int) -> None:
        fake = torch.cat([G(self.inputs[i:i + 8]) for i in range(0, len(self.inputs), 8)])
        scores = self.scorer.score(fake.float().cpu())
        with open(path, "a") as f:
            f.write(json.dumps({"step": step, "epoch": epoch, "fid": scores["fid"], "kid": scores["kid"]}) + "\n")


def train(cfg: Config, data: Path, run: Path, device: str = "auto", resume: bool = False,
          stop_after: int | None = None, amp: bool = False, channels_last: bool = False,
          progress: bool = True, fid_weights: Path | None = None, graphs: bool | str = False,
          compile: bool = False) -> Path:
    """Trains (or resumes) the config's method in folder `run`; returns the checkpoint path.

    Aligned (x, y) pairs for a paired method (pix2pix), else CycleGAN's unaligned draw. With `fid_every`,
    FID/KID of labels -> photo on a fixed val subset go to RUN/fid.jsonl (Inception: `fid_weights` or the
    torch cache). `amp` (bf16 autocast) and `channels_last` act on CUDA only, for methods that take them;
    `graphs` (each iteration replayed as one CUDA graph) and `compile` (compiled nets): repro.capture."""
    return train_runs([cfg], data, [run], device, resume, stop_after, amp, channels_last, progress, fid_weights,
                      graphs, compile)[0]


def train_runs(cfgs: list[Config], data: Path, runs: list[Path], device: str = "auto", resume: bool = False,
               stop_after: int | None = None, amp: bool = False, channels_last: bool = False,
               progress: bool = True, fid_weights: Path | None = None, graphs: bool | str = False,
               compile: bool = False) -> list[Path]:
    """One run, or K runs packed into one vectorised step (repro.methods.packing: the seeds of a row and rows
    that differ only in loss weights). Each run keeps its own folder, config.toml, generator (data order,
    crops, flips, pool), pools, log, checkpoint and exports, exactly as if trained alone.

    `graphs`: True captures the step as one CUDA graph (CUDA only), False runs the eager step, "auto" (what
    `repro reproduce` and its jobs use) runs repro.capture's staged step for the methods it supports, captured
    on CUDA and uncaptured elsewhere (bit-identical to the eager step on the CPU), and the eager step otherwise."""
    method, Runs = METHODS[cfgs[0].method], runs_of(cfgs)  # Alone or Pack: all that differs for K runs is theirs
    clock = Clock()
    for c in cfgs:  # refusals first: a config the method cannot train leaves no folder behind
        method.check(c)
    device = pick_device(device)
    if amp and device.type != "cuda":
        raise ReproError(f"--amp (bf16 autocast) needs a CUDA device, not {device}: drop --amp to train in float32 "
                         f"on the CPU")
    switch = {True: "on", False: "off"}.get(graphs, graphs)
    staged, graphs = resolve_graphs(cfgs[0], device, graphs)
    if (amp or channels_last) and not method.can(CUDA_SPEEDUPS):
        raise ReproError(f"--amp and --channels-last are implemented for CycleGAN only, not for method {cfgs[0].method!r}")
    Runs.refuse(method, cfgs, runs, amp, channels_last, compile)
    if staged or compile:
        from repro.capture import check_supported
        check_supported(cfgs[0], device, graphs)  # before any run folder is touched
    threads = cpu_threads() if device.type == "cpu" else None  # repro.device: one torch thread for CPU training
    runs, data = [Path(r) for r in runs], Path(data)
    ckpts = [run / "checkpoint.pt" for run in runs]
    for run in runs:  # a pack's checkpoint a kill interrupted: finished or dropped, so all runs stand at one step
        settle_pack_checkpoint(run)
    for c, run in zip(cfgs, runs):
        check_run_folder(c, run, resume)
    cfg = cfgs[0]  # what packed runs share: data, sizes, schedule, batch size, pairing (check_pack checks)
    folders = (data / cfg.x_train, data / cfg.y_train, cfg.load_size, cfg.crop_size, cfg.flip, cfg.resize_filter, device)
    if method.paired:
        dataset = AlignedData.from_folders(*folders, progress=progress)
    else:
        dataset = UnalignedData.from_folders(*folders, pairing=cfg.pairing, progress=progress,
                                             port_a=port_a(cfg) if cfg.pairing == "port" else "y")
    # iters_per_epoch counts iterations (batches), so a reduced run (`--iters-per-epoch N`) shortens every row
    # alike; 0 means one pass over the larger domain, in batches (CycleGAN's max(|X|, |Y|) at batch size 1)
    iters = cfg.iters_per_epoch or len(dataset) // cfg.batch_size
    if iters < 1:
        raise ReproError(f"batch_size {cfg.batch_size} is larger than the {len(dataset)} training images in {data}: "
                         f"an epoch would have no iteration; lower batch_size or set iters_per_epoch")
    parts = build_parts(cfgs, device, staged, graphs, amp, channels_last, compile)
    runner = Runs(parts, cfgs)  # the loop below is the same for one run and a pack
    views = runner.views
    fid = FIDLog(cfg, data, device, fid_weights, progress) if cfg.fid_every and parts.labels2photo else None
    for c, run in zip(cfgs, runs):  # everything that could refuse the runs has run: now the folders
        prepare_run_folder(c, run, resume)
        record_data(run, data, c, resume)  # refuses resuming on other data than the run started with
    rngs = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    positions = [{"epoch": 1, "iteration": 0, "step": 0, "order": None} for _ in cfgs]
    if resume:
        positions = [load_checkpoint(ckpt, *view, rng, device) for ckpt, view, rng in zip(ckpts, views, rngs)]
        if len({p["step"] for p in positions}) > 1:
            raise ReproError(f"runs resumed as one pack must stop at the same step; {', '.join(map(str, runs))} "
                             f"stopped at steps {[p['step'] for p in positions]}: resume them one by one")
        for run, position in zip(runs, positions):
            truncate_log(run / "losses.jsonl", position["step"])
            truncate_log(run / "fid.jsonl", position["step"])
        if positions[0]["iteration"] == 0 and positions[0]["epoch"] > 1:  # a kill may have come between the epoch's
            for run, view in zip(runs, views):                            # checkpoint and its exports
                export(run, view[0], parts.exports)
    watch, saved_step = LossWatch(), positions[0]["step"]

    last_save = time.monotonic()
    total, first_step, progress_written = cfg.epochs * iters, positions[0]["step"], 0.0

    def save():
        nonlocal saved_step, last_save
        watch.check(iters, ckpts, saved_step, amp)  # never overwrite a good checkpoint with a bad state
        clock.io(save_checkpoints, runs, cfgs, views, rngs, positions)
        saved_step, last_save = positions[0]["step"], time.monotonic()

    bar = tqdm(total=cfg.epochs * iters, initial=positions[0]["step"], disable=not progress, unit="it",
               desc=runner.label(), dynamic_ncols=True)
    logs = [open(run / "losses.jsonl", "a") for run in runs]
    clock.start()
    with training_threads(device):  # repro.device: one torch thread for CPU training, restored afterwards
        try:
            for epoch in range(positions[0]["epoch"], cfg.epochs + 1):
                lr = cfg.lr * lr_factor(epoch, cfg.epochs_constant, cfg.epochs_decay, cfg.lr_rule)
                for opt in parts.opts.values():
                    for group in opt.param_groups:
                        group["lr"] = lr
                orders = [p["order"] for p in positions]
                draws = math.ceil(iters * cfg.batch_size / len(dataset))
                for k, rng in enumerate(rngs):
                    if orders[k] is None:  # the epoch's data order, drawn once and kept in every checkpoint
                        orders[k] = torch.cat([dataset.epoch_order(rng) for _ in range(draws)])
                on_device = [to_device(order, device) for order in orders]  # once per epoch: no copy per iteration
                for i in range(positions[0]["iteration"], iters):
                    rows = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
                    batches = [dataset.batch(order[rows], rng) for order, rng in zip(on_device, rngs)]
                    terms = runner.step(batches, rngs)  # device tensors: nothing here waits for the device
                    step = (epoch - 1) * iters + i + 1
                    clock.iteration_done()
                    watch.add(step, terms)
                    positions = [{"epoch": epoch, "iteration": i + 1, "step": step, "order": order} for order in orders]
                    if step % cfg.log_every == 0 or i + 1 == iters:
                        watch.check(iters, ckpts, saved_step, amp)
                        first = write_logs(logs, runner, terms, step, epoch, lr)
                        bar.set_postfix({n: f"{v:.3f}" for n, v in first.items()}, refresh=False)
                        if time.monotonic() - progress_written >= PROGRESS_SECONDS or step == total:
                            write_progress(runs, step, total, first_step, clock.seconds())
                            progress_written = time.monotonic()
                    bar.update(1)
                    due = cfg.checkpoint_every and step % cfg.checkpoint_every == 0
                    overdue = cfg.checkpoint_minutes and time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
                    if (due or overdue) and i + 1 < iters:  # the end of an epoch saves anyway
                        save()
                    if stop_after is not None and step >= stop_after:
                        save()
                        return ckpts
                positions = [{"epoch": epoch + 1, "iteration": 0, "step": epoch * iters, "order": None} for _ in cfgs]
                if fid is not None and epoch % cfg.fid_every == 0:
                    watch.check(iters, ckpts, saved_step, amp)
                    clock.io(fid.log, runs[0] / "fid.jsonl", parts.labels2photo(), epoch, positions[0]["step"])
                save()
                for run, view in zip(runs, views):
                    clock.io(export, run, view[0], parts.exports)
        except OSError as err:  # the log lines (losses.jsonl, fid.jsonl); checkpoints and exports raise DiskFull themselves
            if not is_disk_full(err):
                raise
            raise DiskFull(Runs.folder(runs), "appending to the training logs", None,
                           free_space(runs[0]), fix=disk_full_fix(ckpts[0])) from None
        finally:
            for log in logs:
                log.close()
            bar.close()
    seconds, timing = clock.seconds(), clock.summary()
    for k, (c, run) in enumerate(zip(cfgs, runs)):
        write_run_info(run, c, data, device, amp=amp, seconds=seconds / len(runs), epochs_done=positions[0]["epoch"] - 1,
                       packed=Runs.record(runs, k), cuda_graphs=graphs, graphs=switch, staged_step=staged,
                       compiled=compile, cpu_threads=threads, timing=timing)
    return ckpts


def write_logs(logs, runner, terms: dict[str, torch.Tensor], step: int, epoch: int, lr: float) -> dict[str, float]:
    """One losses.jsonl line per run, with the terms it would log alone (the host reads the terms here, and only
    here and at checkpoints); returns the first run's terms for the progress bar."""
    lines = runner.log_rows({k: v.tolist() for k, v in terms.items()})
    for line, log in zip(lines, logs):
        log.write(json.dumps({"step": step, "epoch": epoch, "lr": lr, **line}) + "\n")
        log.flush()
    return lines[0]


def resolve_graphs(cfg: Config, device: torch.device, graphs: bool | str) -> tuple[bool, bool]:
    """(staged, captured) for train_runs' `graphs`: True and False as given, "auto" the staged step for the
    methods whose declaration supports CAPTURE (repro.methods), captured on CUDA."""
    if graphs not in (True, False, "auto"):
        raise ReproError(f"graphs={graphs!r}: give True, False or 'auto'")
    if graphs != "auto":
        return graphs, graphs
    staged = METHODS[cfg.method].can(CAPTURE)
    return staged, staged and torch.device(device).type == "cuda"


def build_parts(cfgs: list[Config], device: torch.device, staged: bool, graphs: bool, amp: bool = False,
                channels_last: bool = False, compile: bool = False) -> Parts:
    """The method's parts for one run or a pack of runs: the eager step, or repro.capture's staged step
    (captured when `graphs`) and compiled nets. The one place training and the estimate get their step."""
    capture = None
    if staged or compile:
        from repro import capture  # handed to the runs adapter, which cannot import it (capture imports packing)
    return runs_of(cfgs).build(METHODS[cfgs[0].method], cfgs, device, capture, staged, graphs, amp, channels_last,
                               compile)
