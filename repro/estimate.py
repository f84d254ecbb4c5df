"""How long training will take, said before it starts and shown while it runs (docs/estimates.md).

The estimate times the step training will run (repro.train.build_parts: captured on CUDA, packed as --pack
packs, at the thread count a run or a job trains with), several iterations after a warm-up one, and multiplies
by each run's iterations (epochs and iterations per epoch after --set and --iters-per-epoch). Runs are grouped
into jobs as the reproduction groups them (packs first, then runs alone) and the jobs laid out on the slots
that run at once (--jobs with --launcher, else one): the estimate is when the last job ends. While the jobs
run, progress_lines turns their progress.json files into the launcher's live ETAs. The one-off set-up before
training is estimated in repro.setup_time.
"""

import heapq
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from repro.config import Config
from repro.methods.packing import PACKABLE

MIN_STEPS = 2          # timed iterations after the warm-up one, at least (a paper-scale CPU step: seconds)
MIN_SECONDS = 1.0      # and at least this long (a tiny step is timed over more iterations)
MAX_STEPS = 20


@dataclass(frozen=True)
class Job:
    """Runs trained together (a pack when len(cfgs) > 1) for `iterations` iterations each."""

    cfgs: tuple[Config, ...]
    iterations: int


def total_iterations(cfg: Config, train_pairs: int) -> int:
    return cfg.epochs * (cfg.iters_per_epoch or train_pairs // cfg.batch_size)  # as repro.train counts them


def pack_key(cfg: Config) -> tuple:
    """What runs packed together share (repro.methods.packing.PACKABLE may differ)."""
    return tuple((k, v) for k, v in sorted(asdict(cfg).items()) if k not in PACKABLE)


def pack_chunks(members: list, pack: int, slots: int = 1) -> list[list]:
    """Runs that may share a step (in order) cut into packs of up to `pack`, in order (a chunk of one trains
    alone). With `slots` > 1 (`--pack auto` with a launcher's --jobs) into max(ceil(n / pack), min(slots, n))
    packs of near-equal size, so that the runs fill every slot: 10 runs on 2 slots are 5 + 5, 9 on 4 are
    3 + 2 + 2 + 2 (one pack of 10 would leave a slot idle). repro.reproduce.plan.pack_groups cuts the same way."""
    n = len(members)
    if slots <= 1:
        return [members[i:i + pack] for i in range(0, n, pack)]
    k = max(-(-n // pack), min(slots, n))
    size, extra = divmod(n, k)
    bounds = [j * size + min(j, extra) for j in range(k + 1)]
    return [members[bounds[j]:bounds[j + 1]] for j in range(k)]


def training_jobs(cfgs: list[Config], train_pairs: int, pack: int, packable: Callable[[Config], bool],
                  slots: int = 1) -> list[Job]:
    """The runs as the reproduction's launcher lays them out: configs that can share a step (`packable`, same
    pack_key) in packs (pack_chunks of `pack` over `slots`) first, then every run no pack takes, in order."""
    groups: dict[tuple, list[Config]] = {}
    for cfg in cfgs:
        if pack > 1 and packable(cfg):
            groups.setdefault(pack_key(cfg), []).append(cfg)
    jobs, packed = [], set()
    for members in groups.values():
        for chunk in pack_chunks(members, pack, slots):
            if len(chunk) > 1:
                jobs.append(Job(tuple(chunk), total_iterations(chunk[0], train_pairs)))
                packed.update(id(cfg) for cfg in chunk)
    return jobs + [Job((cfg,), total_iterations(cfg, train_pairs)) for cfg in cfgs if id(cfg) not in packed]


def makespan(durations: list[float], slots: int, busy: list[float] = ()) -> float:
    """When the last job ends if the jobs start in this order, each as soon as one of `slots` is free (the
    launcher's queue); `busy`: the seconds left of jobs already running (taking slots)."""
    ends = sorted(busy)[:max(slots, len(busy))]
    free = ends + [0.0] * max(0, slots - len(ends))
    heapq.heapify(free)
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free, default=0.0)


@dataclass
class Estimate:
    seconds: float      # the training's
    lines: list[str]    # one per kind of step timed, then the total
    durations: list[float]  # each job's training seconds
    runs: list[int]         # each job's runs
    slots: int

    def text(self) -> str:
        return "\n  ".join(self.lines)

    def with_evaluation(self, per_run: float, scorings: int = 0) -> float:
        """When the last job ends if each also translates and scores each of its runs (`per_run` seconds), as
        a job does after training (and a reproduction without --launcher does run by run), plus `scorings` more
        done one after another in the command itself (the floor and ceiling rows and --pretrained's row,
        repro.reproduce.scorings_without_training: before the jobs with --launcher, after the runs without)."""
        return makespan([d + k * per_run for d, k in zip(self.durations, self.runs)], self.slots) + scorings * per_run


def plan(jobs: list[Job], seconds_per_iteration: Callable[[tuple[Config, ...]], float], slots: int = 1,
         contention: float = 1.0) -> Estimate:
    """Each job's iterations x its step's seconds per iteration (one call per kind of step: the configs
    without seed and name), x `contention` (jobs sharing too few cores), laid out on `slots`."""
    timed: dict[tuple, float] = {}
    durations, lines = [], []
    for job in jobs:
        kind = tuple(pack_key(c) + tuple((k, getattr(c, k)) for k in sorted(PACKABLE - {"seed", "name"}))
                     for c in job.cfgs)
        if kind not in timed:
            timed[kind] = seconds_per_iteration(job.cfgs)
            what = f"a pack of {len(job.cfgs)} runs" if len(job.cfgs) > 1 else "one run"
            lines.append(f"{job.cfgs[0].name} ({job.cfgs[0].method}, {what}): {timed[kind] * 1000:,.0f} ms per "
                         f"iteration x {job.iterations:,} iterations")
        durations.append(timed[kind] * job.iterations * contention)
    seconds = makespan(durations, slots)
    runs = sum(len(j.cfgs) for j in jobs)
    lines.append(f"{runs} run(s) in {len(jobs)} job(s), {slots if slots < len(jobs) else len(jobs)} at a time"
                 + (f", x{contention:.2g} for cores shared" if contention > 1 else "")
                 + f": {format_duration(seconds)} of training")
    return Estimate(seconds, lines, durations, [len(j.cfgs) for j in jobs], slots)


def progress_lines(running: list[tuple[str, str, int, int, dict | None]], queued: list[tuple[str, int, int]],
                   slots: int, evaluation: float | None = None, now: float | None = None) -> list[str]:
    """One line per running job (id, label, runs, iterations per run, its progress.json or None) and the overall
    ETA line: the running jobs' ETAs, then the queued jobs ((label, runs, iterations per run), and running jobs
    that have not logged yet) at the running jobs' mean rate per run, laid out on `slots` (estimate.makespan).
    `evaluation`: one run's translation and scoring in seconds (the up-front estimate's), added to each job for
    each of its runs (a job translates and scores its runs after training them); None: training only. `now`: the
    time (default time.time()), for a trained job's scoring already under way since its last progress.json."""
    now = time.time() if now is None else now
    scoring = lambda runs: runs * (evaluation or 0.0)  # noqa: E731
    lines, busy, rates, unknown = [], [], [], []
    for job_id, label, runs, iterations, p in running:
        if p is None:
            lines.append(f"  job {job_id} {label}: starting")
            unknown.append((runs, runs * iterations))
            continue
        rate, eta = p.get("it_per_s"), p.get("eta_seconds")
        if p["step"] >= p["total"]:
            left = max(0.0, scoring(runs) - (now - p.get("updated", now)))
            lines.append(f"  job {job_id} {label}: trained {p['step']:,}/{p['total']:,} it, translating and scoring"
                         + (f", ETA {format_duration(left)}" if evaluation is not None else ""))
            busy.append(left)
            continue
        lines.append(f"  job {job_id} {label}: {p['step']:,}/{p['total']:,} it, "
                     + (f"{rate:.2f} it/s, ETA {format_duration(eta + scoring(runs))}" if rate
                        else "rate not known yet")
                     + (f" (training {format_duration(eta)}, then translation and scoring)"
                        if rate and evaluation is not None else ""))
        if rate:
            busy.append(eta + scoring(runs))
            rates.append(rate * runs)  # run-iterations per second
        else:
            unknown.append((runs, runs * (p["total"] - p["step"])))
    if rates:
        per_run_rate = sum(rates) / len(rates)
        busy += [work / per_run_rate + scoring(runs) for runs, work in unknown]
        eta = makespan([runs * iters / per_run_rate + scoring(runs) for _, runs, iters in queued], slots, busy)
        overall = f"overall ETA {format_duration(eta)}"
    else:
        overall = "overall ETA not known yet"
    lines.append(f"progress: {len(running)} job(s) running, {len(queued)} queued; {overall} "
                 + ("(training, translation and scoring)" if evaluation is not None
                    else "(training; translation and scoring come on top)"))
    return lines


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def measured_line(parts: list[tuple[str, float, float]], whole: float) -> str:
    """The line a command ends with: its estimate beside the measured wall time, in all and per part (name,
    estimated, measured: each measured over the span its estimate covers); `whole`: the command's own wall time."""
    detail = "; ".join(f"{name}: estimated {format_duration(e)}, measured {format_duration(m)}" for name, e, m in parts)
    return (f"estimated {format_duration(sum(e for _, e, _ in parts))}, measured "
            f"{format_duration(sum(m for _, _, m in parts))} ({detail}; the whole command, the estimates' own timing "
            f"included: {format_duration(whole)}; docs/estimates.md)")


def time_step(cfgs: tuple[Config, ...], device: str, graphs: str = "auto", threads: int | None = None,
              min_steps: int = MIN_STEPS, min_seconds: float = MIN_SECONDS) -> float:
    """Seconds per iteration of the step these runs train with (repro.train.build_parts: a pack when several,
    captured on CUDA with graphs "auto"), on random images of their sizes: one warm-up iteration (the capture
    on CUDA), then at least `min_steps` timed and until `min_seconds` passed. On the CPU at `threads` torch
    threads (default repro.device.cpu_threads(), what a run trains with)."""
    from repro.device import cpu_threads
    from repro.train import build_parts, resolve_graphs

    device_ = torch.device(device)
    cfgs = list(cfgs)
    staged, captured = resolve_graphs(cfgs[0], device_, graphs)
    before = torch.get_num_threads()
    if device_.type == "cpu":
        torch.set_num_threads(threads or cpu_threads())
    try:
        with torch.random.fork_rng(devices=[device_] if device_.type == "cuda" else []):
            parts = build_parts(cfgs, device_, staged, captured)
            cfg, k = cfgs[0], len(cfgs)
            shape = (cfg.batch_size, 3, cfg.crop_size, cfg.crop_size)
            rng = [torch.Generator().manual_seed(j) for j in range(k)] if k > 1 else torch.Generator().manual_seed(0)
            x = torch.rand((k, *shape) if k > 1 else shape, device=device_) * 2 - 1
            y = torch.rand_like(x) * 2 - 1
            sync = torch.cuda.synchronize if device_.type == "cuda" else (lambda: None)
            parts.step(x, y, rng)
            sync()
            steps, start = 0, time.perf_counter()
            while steps < min_steps or (time.perf_counter() - start < min_seconds and steps < MAX_STEPS):
                parts.step(x, y, rng)
                steps += 1
                if steps >= min_steps:
                    sync()
            sync()
            return (time.perf_counter() - start) / steps
    finally:
        torch.set_num_threads(before)
