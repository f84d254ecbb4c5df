"""`repro reproduce ... --launcher local|slurm`: every run of a reproduction as a job, through submitit.

SLURM through submitit's AutoExecutor, or its LocalExecutor (separate processes on this machine, `--jobs N`
at once). A job is a list of (row, seed) runs: one run, or with `--pack` a pack (repro.reproduce.plan.pack_groups)
that the job trains as one vectorised step (repro.reproduce.pipeline.train_packs). It then translates and scores
each run with repro.reproduce.pipeline.run_row, which writes OUT/ROW/seed-K/result.json. Packs are submitted first
(the longest jobs). The work function is handed in (repro.reproduce.launch_runs): this module imports no pipeline.

Preemption and time limits: SLURM signals the job (USR2, 90 s before its time limit or on preemption);
submitit's checkpointing hook calls `RunGroup.checkpoint`, which requeues the same job, and run_row resumes
from run/checkpoint.pt, so a requeued run ends bit-identical to an uninterrupted one (at the same number of
torch threads). The work since the last checkpoint is redone.

    OUT/ROW/seed-K/slurm/ (or local/)   the job's submitit folder: JOBID_0_log.out/.err, pickles, job.json

A rerun with the same arguments submits only the runs without a finished result.json whose job is not still
queued or running (it waits for those: SLURM's by squeue, local ones by their controller's pid, which a killed
command leaves running); with --no-wait it submits and returns, and a later rerun collects.
A failed job is reported by row and seed with the tail of its log; the other jobs go on.

While it waits, the command prints every --progress-seconds (default 30) one line per running job (its
iteration, it/s and ETA, from the RUN/progress.json its training rewrites at log points) and an overall ETA
(repro.estimate.makespan over the running jobs' ETAs and the queued jobs' iterations at the running jobs'
mean rate per run), each job's translation and scoring included (its runs x the estimate's time per run).
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import submitit
import submitit.local.local

from repro import ReproError, estimate, layout
from repro.done import is_current
from repro.io import process_alive, read_json_or_empty, write_json

LOCAL_TIMEOUT_MIN = 30 * 24 * 60  # LocalExecutor's default (2 min) would signal every run as timed out
MAX_TIMEOUTS = 50                 # requeues after the time limit (each resumes; preemptions are not counted)
TAIL_LINES = 25


class RunGroup(submitit.helpers.Checkpointable):
    """One job: (row key, seed) runs trained, translated and scored one after another in this process."""

    def __init__(self, runs: list[tuple[str, int]], setup, iters_per_epoch: int | None, device: str, threads: int,
                 work, packed: bool = False):
        self.runs, self.setup, self.iters_per_epoch = list(runs), setup, iters_per_epoch
        self.device, self.threads = device, threads  # device resolved where the job runs (a node's GPU)
        self.work = work  # (runs, setup, iters_per_epoch, packed) -> list of dicts: repro.reproduce.pipeline.run_job
        self.packed = packed  # train the runs as one pack first (a requeued pack resumes as one)

    def __call__(self) -> list[dict]:
        from repro.device import pick_device, use_threads

        use_threads(self.threads)  # CPU training's thread count too
        setup = replace(self.setup, device=str(pick_device(self.device)))
        return self.work(self.runs, setup, self.iters_per_epoch, self.packed)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeues this same job: its runs resume from their run/checkpoint.pt (results already written stay)."""
        print(f"interrupted; requeued, each run resumes from its last checkpoint: {self.runs}", flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


@dataclass
class Options:
    """How the jobs are run (from the command line)."""

    launcher: str                       # local | slurm
    jobs: int | None = None             # at most this many jobs queued or running at once (None: all)
    wait: bool = True
    threads: int = 1                    # torch threads per job
    device: str = "auto"                # as the job sees it
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    hours: float = 24.0
    slurm_options: dict = field(default_factory=dict)
    pack: str = "off"                   # --pack: runs that can share a vectorised step go as one job
    poll_seconds: float = 1.0           # how often result files are looked for
    squeue_seconds: float = 15.0        # how often SLURM is asked which jobs it still holds
    progress_seconds: float = 30.0      # how often the jobs' progress is printed (0: never)
    evaluation_seconds: float | None = None  # one run's translation and scoring (the estimate's), in the ETAs


@dataclass
class Failure:
    runs: list[tuple[str, int]]
    job_id: str
    folder: Path
    tail: str

    def describe(self) -> str:
        names = ", ".join(f"{key} seed {seed}" for key, seed in self.runs)
        return f"{names} (job {self.job_id}, logs in {self.folder}):\n" + "\n".join("      " + l for l in self.tail.splitlines())


@dataclass
class Outcome:
    submitted: list[list[tuple[str, int]]] = field(default_factory=list)  # groups submitted by this call
    adopted: list[list[tuple[str, int]]] = field(default_factory=list)    # groups of an earlier call, still active
    finished: list[dict] = field(default_factory=list)                    # what each job returned
    failed: list[Failure] = field(default_factory=list)
    pending: int = 0                                                       # groups not waited for (--no-wait)

    def error(self) -> ReproError | None:
        """Every failed job by row and seed with the tail of its log, as one error (None: none failed)."""
        if not self.failed:
            return None
        return ReproError(f"{len(self.failed)} job(s) failed; the report holds the runs that finished. Rerun the same "
                          f"command to redo only the failed ones:\n  - " + "\n  - ".join(f.describe() for f in self.failed))


def job_folder(setup, group: list[tuple[str, int]], launcher: str) -> Path:
    """The group's first run's OUT/ROW/seed-K/<launcher>/ (a packed group keeps its logs there)."""
    key, seed = group[0]
    return layout.job_folder(setup.out, key, seed, launcher)


def make_executor(folder: Path, opts: Options, device_index: int | None, name: str = "repro"):
    """submitit's executor for one job in `folder`: local (a GPU index shared by every local job, or none) or
    SLURM with the command's options. `name`: the job name squeue shows."""
    if opts.launcher == "local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_TIMEOUTS)
        gpus = {} if device_index is None else {"gpus_per_node": 1, "visible_gpus": (device_index,)}
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, **gpus)
        return executor
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=MAX_TIMEOUTS)
    except RuntimeError as err:  # submitit finds no srun/sbatch
        raise ReproError(f"--launcher slurm: {err} Run on a SLURM login node, or use --launcher local.") from None
    params = dict(name=name, timeout_min=max(1, round(opts.hours * 60)), cpus_per_task=opts.cpus_per_job,
                  tasks_per_node=1, nodes=1)
    if opts.gpus_per_job:  # no --gpus-per-node=0 line: a cluster without GPUs (GRES) may refuse any
        params["gpus_per_node"] = opts.gpus_per_job
    if opts.partition:
        params["slurm_partition"] = opts.partition
    # --requeue: requeueable even where the cluster's default (JobRequeue=0) is not, for `scontrol requeue`
    params["slurm_additional_parameters"] = {"requeue": True, **opts.slurm_options}
    executor.update_parameters(**params)
    return executor


def slurm_states() -> dict[str, str] | None:
    """{job id: state} of this user's jobs that SLURM still lists (one squeue call for all jobs, so that
    polling 50 jobs does not load the controller); None when squeue fails (every job is then taken as active)."""
    try:
        out = subprocess.run(["squeue", "--me", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        print(f"squeue failed ({err}); jobs are taken as still active", file=sys.stderr, flush=True)
        return None
    if out.returncode != 0:
        print(f"squeue failed ({out.stderr.strip()}); jobs are taken as still active", file=sys.stderr, flush=True)
        return None
    return dict(line.split(None, 1) for line in out.stdout.splitlines() if len(line.split(None, 1)) == 2)


def is_active(job, launcher: str, states: dict[str, str] | None = None) -> bool:
    """Still queued or running (a requeued job is active): no result yet and the scheduler still holds it.
    `states`: slurm_states(), read once per poll for every job."""
    if job.paths.result_pickle.exists():
        return False
    if launcher == "local":
        return not job.done()
    if states is None:
        return True
    state = states.get(str(job.job_id))
    return state is not None and state.split("+")[0].strip() not in SLURM_ENDED


SLURM_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
               "PREEMPTED"}  # states of a job that will not run again (a requeued job shows PENDING)


def log_tail(job, lines: int = TAIL_LINES) -> str:
    """The last lines of the job's stderr (traceback, submitit's messages), else of its stdout; progress bars
    reduced to their last state."""
    for text in (job.stderr() or "", job.stdout() or ""):
        kept = [l.split("\r")[-1] for l in text.splitlines()]
        kept = [l for l in kept if l.strip()]
        if kept:
            return "\n".join(kept[-lines:])
    return f"(no log in {job.paths.folder})"


def collect(job, group, outcome: Outcome, result_wait_s: float = 30.0) -> None:
    """A job that is no longer active: its result, or a Failure with the tail of its log."""
    deadline = time.time() + result_wait_s  # a shared filesystem may show the result file late
    while not job.paths.result_pickle.exists() and time.time() < deadline:
        time.sleep(1.0)
    if job.paths.result_pickle.exists():
        try:
            outcome.finished += job.result()
            return
        except Exception as err:  # submitit's FailedJobError holds the job's traceback
            reason = "\n".join(str(err).strip().splitlines()[-TAIL_LINES:])
    else:  # not submitit's result.wait(): without SLURM accounting (sacct) it would wait forever
        reason = ("the job ended without a result: cancelled, out of memory, node failure, or its time limit "
                  f"reached {MAX_TIMEOUTS} times")
    tail = log_tail(job)
    if job.paths.result_pickle.exists() and reason.splitlines() and reason.splitlines()[-1] in tail:
        reason = ""  # the traceback is in the log already
    outcome.failed.append(Failure(group, job.job_id, job.paths.folder, "\n".join(t for t in (tail, reason) if t)))
    names = ", ".join(f"{k} seed {s}" for k, s in group)
    print(f"FAILED: {names} (job {job.job_id}); the other jobs go on", file=sys.stderr, flush=True)


class EarlierLocalJob(submitit.local.local.LocalJob):
    """A local job an earlier command started (its controller's pid is the job id) and that outlived it: a killed
    command's jobs run on. Not this process's child, so it is watched through its pid."""

    def done(self, force_check: bool = False) -> bool:
        return not local_controller_alive(int(self.job_id), self.paths.folder)

    def cancel(self, check: bool = True) -> None:
        if not self.done():
            os.kill(int(self.job_id), signal.SIGINT)  # as LocalJob.cancel: the controller stops its task


def local_controller_alive(pid: int, folder: Path) -> bool:
    """Whether `pid` is still submitit's local controller of the job in `folder` (not a pid reused since)."""
    if not Path("/proc").is_dir():  # no /proc (macOS): only the pid's existence is known
        return process_alive(pid)
    return runs_submitit(pid, b"submitit.local._local", folder)


def runs_submitit(pid: int, module: bytes, folder: Path) -> bool:
    """Whether `pid` is a live process running submitit's `module` for the job in `folder` (its command line)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")  # empty for a zombie
    except OSError:
        return False
    return module in argv and bool({os.fsencode(str(folder)), os.fsencode(str(Path(folder).resolve()))} & set(argv))


def earlier_job(folder: Path, launcher: str, states: dict[str, str] | None):
    """The job an earlier command submitted for this group, if it still runs: SLURM still holds it (queued or
    running), or its local controller process is alive."""
    info = read_json_or_empty(folder / "job.json")
    if not is_current(info, {"launcher": launcher}) or not info.get("job_id"):  # repro.done's rule
        return None
    if launcher == "local" and str(info["job_id"]).isdigit():
        job = EarlierLocalJob(folder=folder.resolve(), job_id=str(info["job_id"]))
        return job if is_active(job, "local") else None
    if launcher == "slurm":
        job = submitit.SlurmJob(folder=folder, job_id=str(info["job_id"]))
        return job if is_active(job, "slurm", states) else None
    return None


# ------------------------------------------------------------------------------ live progress


def group_label(group: list[tuple[str, int]]) -> str:
    key, seed = group[0]
    return f"{key} seed {seed}" + (f" (+{len(group) - 1} packed)" if len(group) > 1 else "")


def read_progress(setup, group: list[tuple[str, int]]) -> dict | None:
    """The RUN/progress.json of the group's first run (a pack's runs step together), None before its first."""
    key, seed = group[0]
    try:
        return json.loads((layout.run_folder(setup.out, key, seed) / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def planned_iterations(setup, group: list[tuple[str, int]], iters_per_epoch: int | None) -> int:
    """A queued job's iterations per run, as repro.train will count them (an epoch without iters_per_epoch:
    the larger training folder, in batches)."""
    from repro.estimate import total_iterations
    from repro.rows import ROWS, row_config

    key, seed = group[0]
    cfg = row_config({r.key: r for r in ROWS}[key], setup.scale, seed, iters_per_epoch, setup.settings)
    count = lambda folder: sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0
    return total_iterations(cfg, max(count(setup.data / cfg.x_train), count(setup.data / cfg.y_train)))


def launch(groups: list[list[tuple[str, int]]], setup, iters_per_epoch: int | None, opts: Options, work) -> Outcome:
    """Runs each group of (row key, seed) runs as one job, `work(group, setup, iters_per_epoch, packed)` in the job's
    process (repro.reproduce.pipeline.run_job), and waits for them (unless opts.wait is False). Groups are given only
    for runs still to do; a group whose earlier job is still active is waited for."""
    import torch

    # absolute paths: a job may start in another working directory (sbatch --chdir, a node's home)
    setup = replace(setup, out=setup.out.resolve(), data=setup.data.resolve(), cityscapes=setup.cityscapes.resolve(),
                    segmenter=setup.segmenter.resolve())
    device = torch.device(setup.device)
    device_index = (device.index or 0) if opts.launcher == "local" and device.type == "cuda" else None
    job_device = "cuda" if device_index is not None else (setup.device if opts.launcher == "local" else opts.device)
    outcome = Outcome()
    queue, running = [], []  # groups to submit; (job, group) submitted or adopted
    states = slurm_states() if opts.launcher == "slurm" and groups else None
    for group in groups:
        job = earlier_job(job_folder(setup, group, opts.launcher), opts.launcher, states)
        if job is not None:
            print(f"job {job.job_id} of an earlier command still runs {group}: waiting for it", flush=True)
            outcome.adopted.append(group)
            running.append((job, group))
        else:
            queue.append(group)
    limit = opts.jobs if opts.jobs and opts.wait else len(queue) + len(running)
    asked = 0.0  # when squeue was last asked
    shown = time.time()  # when progress was last printed
    try:
        while queue or running:
            while queue and len(running) < limit:
                group = queue.pop(0)
                folder = job_folder(setup, group, opts.launcher)
                executor = make_executor(folder, opts, device_index, "repro-" + "+".join(f"{k}-s{s}" for k, s in group))
                try:
                    job = executor.submit(RunGroup(group, setup, iters_per_epoch, job_device, opts.threads, work,
                                                   packed=opts.pack != "off" and len(group) > 1))
                except Exception as err:  # sbatch refused it (partition, account, limits): the cluster's words
                    raise ReproError(f"could not submit the job for {group} ({opts.launcher}): {err}\n"
                                     f"Jobs already submitted go on; fix the option and rerun the same command.") from None
                write_json(folder / "job.json", {"launcher": opts.launcher, "job_id": str(job.job_id),
                                                 "runs": [list(r) for r in group], "submitted": time.time()})
                print(f"submitted job {job.job_id}: {', '.join(f'{k} seed {s}' for k, s in group)} "
                      f"(logs: {folder})", flush=True)
                outcome.submitted.append(group)
                running.append((job, group))
                asked = 0.0  # the states read before this submission do not list it yet
            if not opts.wait:
                outcome.pending = len(running)
                running = []
                break
            if opts.launcher == "slurm" and time.time() - asked >= opts.squeue_seconds:
                states, asked = slurm_states(), time.time()
            still = []
            for job, group in running:
                if is_active(job, opts.launcher, states):
                    still.append((job, group))
                else:  # local: the controller has exited, so the result file is there or never will be
                    collect(job, group, outcome, result_wait_s=0 if opts.launcher == "local" else 30)
            running = still
            if running and opts.progress_seconds and time.time() - shown >= opts.progress_seconds:
                now = [(job.job_id, group_label(g), len(g), planned_iterations(setup, g, iters_per_epoch),
                        read_progress(setup, g)) for job, g in running]
                later = [(group_label(g), len(g), planned_iterations(setup, g, iters_per_epoch)) for g in queue]
                print("\n".join(estimate.progress_lines(now, later, limit, opts.evaluation_seconds)), flush=True)
                shown = time.time()
            if running:
                time.sleep(opts.poll_seconds)
    finally:  # interrupted while waiting: local jobs are this command's children, stop them; SLURM's go on
        if opts.launcher == "local":
            for job, _ in running:
                if not job.done():
                    stop_local_job(job)
    return outcome


def stop_local_job(job, wait_s: float = 10.0) -> None:
    """Cancels a local job and makes sure its task ends with it. submitit's controller stops the tasks it knows
    of on SIGINT, but not a task it was starting when the SIGINT landed (after the fork, before its own list
    holds it), and nothing at all where SIGINT is ignored (a command started with `&` from a script passes that
    on: seen in CI, the job's result.json written after the command was interrupted). So the controller's
    children are noted until it exits or `wait_s` passed, and any still running then get what the controller
    gives its tasks: SIGINT, then SIGKILL a second later."""
    controller, folder = int(job.job_id), job.paths.folder
    tasks = set(local_children(controller))
    job.cancel()
    deadline = time.time() + wait_s
    while time.time() < deadline and local_controller_alive(controller, folder):
        tasks.update(local_children(controller))
        time.sleep(0.05)
    for sig in (signal.SIGINT, signal.SIGKILL):
        alive = [pid for pid in tasks if local_task_alive(pid, folder)]
        for pid in alive:
            os.kill(pid, sig)
        if alive and sig == signal.SIGINT:
            time.sleep(1.0)


def local_children(pid: int) -> list[int]:
    """The child processes of `pid` (a local controller's: its tasks); none where /proc cannot tell."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def local_task_alive(pid: int, folder: Path) -> bool:
    """Whether `pid` is still a task submitit runs for the job in `folder` (not a pid reused since)."""
    return runs_submitit(pid, b"submitit.core._submit", folder)


def running_groups(setup, todo, launcher: str) -> list[list[tuple[str, int]]]:
    """The runs of earlier jobs that still run (a killed command's local jobs run on), as their job.json groups
    them, so that they are waited for as they are and not regrouped, resubmitted or touched."""
    states = slurm_states() if launcher == "slurm" and todo else None
    groups = []
    for row, seed in todo:
        folder = job_folder(setup, [(row.key, seed)], launcher)
        if earlier_job(folder, launcher, states) is not None:
            runs = read_json_or_empty(folder / "job.json").get("runs") or [[row.key, seed]]
            groups.append([(str(k), int(s)) for k, s in runs])
    return groups
