"""repro.reproduce.launcher with submitit's LocalExecutor: jobs in separate processes, N at once, a job killed
mid-training requeued and ending with the uninterrupted run's weights, a failing job reported while the other
finishes, reruns that submit only what is missing or failed. (A real single-node SLURM: tests/test_launch_slurm.py.)"""

import argparse
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_city_and_segmenter
from repro import ReproError
from repro import estimate as E
from repro import reproduce as R
from repro.reproduce import launcher as L
from repro.reproduce import plan as P
from repro.commands import reproduce as C
from repro.cli import build_parser, main
from repro.config import config_to_toml
from repro.estimate import format_duration
from repro.rows import ROWS, row_config

ROW = {r.key: r for r in ROWS}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets on a busy 2-core machine: one thread here and in every job (bit-equality needs the same count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_city_and_segmenter(tmp_path_factory.mktemp("tiny"))


def smoke_setup(out, city, seg):
    return R.smoke_setup(argparse.Namespace(out=out, cityscapes=city, data=None, segmenter=seg, device="cpu"),
                         progress=False)


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["nets"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for net in wa:
        assert wa[net].keys() == wb[net].keys()
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), f"{net}.{k} differs"


def task_pid(controller_pid: int) -> int | None:
    """The python process a LocalExecutor controller runs the job in (its child)."""
    try:
        children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def log_text(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.glob("*_log.*")))


def cli(out, city, seg, *extra):
    return ["reproduce", "table4", "--scale", "smoke", "--out", str(out), "--cityscapes", str(city), "--segmenter",
            str(seg), "--seeds", "1", "--device", "cpu", "--quiet", "--launcher", "local", "--threads-per-job", "1",
            *extra]


def test_launcher_options_are_checked_before_any_work():
    parse = lambda *a: build_parser(["reproduce", "table2", *a]).parse_args(["reproduce", "table2", *a])
    with pytest.raises(ReproError, match="--no-wait needs --launcher slurm"):
        C.options_from(parse("--launcher", "local", "--no-wait"))
    with pytest.raises(ReproError, match="KEY=VALUE"):
        C.options_from(parse("--launcher", "slurm", "--slurm-option", "account"))
    with pytest.raises(ReproError, match="Drop one"):
        C.options_from(parse("--launcher", "slurm", "--no-wait", "--jobs", "3"))
    opts = C.options_from(parse("--launcher", "slurm", "--slurm-option", "qos=long", "--slurm-time", "2.5",
                                "--scale", "paper", "--slurm-cpus-per-job", "6"))
    assert (opts.gpus_per_job, opts.hours, opts.threads, opts.slurm_options, opts.jobs) == (1, 2.5, 6, {"qos": "long"}, None)
    with pytest.raises(ReproError, match="--jobs, --slurm-time apply to jobs: add --launcher"):
        C.check_arguments(parse("--jobs", "2", "--slurm-time", "3"))
    assert C.check_arguments(parse()) is None
    opts = C.options_from(parse("--launcher", "local", "--jobs", "2"))
    assert opts.jobs == 2 and opts.threads == max(1, (os.cpu_count() or 1) // 2) and opts.gpus_per_job == 0


def test_a_wrong_launcher_option_stops_the_command_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reproduce", "table4", "--out", str(out), "--launcher", "local", "--no-wait", "--device", "cpu"]) == 1
    assert "--no-wait needs --launcher slurm" in capsys.readouterr().err and not out.exists()


def test_executors_carry_the_options(tmp_path, monkeypatch):
    """What sbatch is given (submitit's submission file), and the GPU a local job sees."""
    import submitit

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as where srun exists
    opts = L.Options("slurm", partition="gpu", gpus_per_job=1, cpus_per_job=6, hours=2.5,
                     slurm_options={"qos": "long", "account": "abc"})
    script = L.make_executor(tmp_path / "slurm", opts, None, "repro-cyclegan-s0")._executor._make_submission_file_text(
        "python -m submitit.core._submit", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=6", "--time=150", "--qos=long",
                 "--account=abc", "--signal=USR2@90", "--requeue", "--job-name=repro-cyclegan-s0", "--nodes=1",
                 f"--output={tmp_path / 'slurm'}/%j_0_log.out", f"--error={tmp_path / 'slurm'}/%j_0_log.err"):
        assert f"#SBATCH {line}\n" in script
    opts.gpus_per_job = 0
    script = L.make_executor(tmp_path / "slurm", opts, None)._executor._make_submission_file_text("cmd", "uid")
    assert "--gpus" not in script and "--gres" not in script
    local = L.make_executor(tmp_path / "local", L.Options("local"), 1)
    assert local.parameters["visible_gpus"] == (1,) and local.parameters["gpus_per_node"] == 1
    assert local.parameters["timeout_min"] == L.LOCAL_TIMEOUT_MIN
    assert L.make_executor(tmp_path / "local", L.Options("local"), None).parameters.get("gpus_per_node", 0) == 0


def test_paper_scale_on_slurm_does_not_need_a_gpu_here(tmp_path, monkeypatch):
    """The jobs get the GPUs (--slurm-gpus-per-job), not the login node that submits them."""
    monkeypatch.setattr(E, "time_step", lambda cfgs, *a, **k: 0.5)
    city = tmp_path / "cs"
    (city / "gtFine" / "val").mkdir(parents=True)
    seg = tmp_path / "seg.pt"
    seg.write_bytes(b"x")
    argv = ["reproduce", "table4", "--scale", "paper", "--cityscapes", str(city), "--data", str(tmp_path / "data"),
            "--segmenter", str(seg), "--device", "cpu", "--launcher", "slurm", "--out", str(tmp_path / "out")]
    args = build_parser(argv).parse_args(argv)
    assert R.paper_setup(args, R.rows_for("table4")).scale == "paper"
    args.slurm_gpus_per_job = 0
    with pytest.raises(ReproError, match="no GPU"):
        R.paper_setup(args, R.rows_for("table4"))


@pytest.mark.slow
def test_a_job_killed_mid_training_is_requeued_and_ends_with_the_uninterrupted_weights(tiny, tmp_path):
    city, seg = tiny
    setup = smoke_setup(tmp_path / "jobs", city, seg)
    iters = 10  # smoke CycleGAN: 4 epochs of 10 iterations, a checkpoint after each epoch
    opts = L.Options("local", jobs=1, threads=1, device="cpu", poll_seconds=0.1)
    outcome = {}
    waiting = threading.Thread(
        target=lambda: outcome.update(o=L.launch([[("cyclegan", 0)]], setup, iters, opts, R.run_job)))
    waiting.start()
    folder = tmp_path / "jobs" / "cyclegan" / "seed-0"
    run = folder / "run"
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").is_file() and time.time() < deadline:  # after epoch 1 of 4
        time.sleep(0.01)
    controller = int(json.loads((folder / "local" / "job.json").read_text())["job_id"])
    first = task_pid(controller)
    assert first and not (run / "run.json").exists(), "the kill must land mid-training"
    os.kill(first, signal.SIGUSR2)  # what SLURM sends on preemption or before the time limit
    waiting.join(timeout=600)
    result = outcome["o"]
    assert not result.failed and [r["row"] for r in result.finished] == ["cyclegan"]
    assert result.finished[0]["pid"] not in (os.getpid(), first)  # the requeued job is a new process
    log = log_text(folder / "local")
    assert "interrupted; requeued" in log and "Requeued job" in log
    assert re.search(r"resuming CycleGAN seed 0 in .*cyclegan/seed-0/run", log)
    assert len(re.findall("Starting with JobEnvironment", log)) == 2

    reference = smoke_setup(tmp_path / "inprocess", city, seg)
    expected = R.run_row(ROW["cyclegan"], 0, reference, iters, progress=False)
    assert_same_weights(run, tmp_path / "inprocess" / "cyclegan" / "seed-0" / "run")
    got = json.loads((folder / "result.json").read_text())
    assert got["metrics"] == expected["metrics"]


@pytest.mark.slow
def test_a_job_killed_without_a_result_is_reported_with_its_log(tiny, tmp_path):
    """SIGKILL (out of memory, a node lost): no result and no requeue; the failure names the run."""
    city, seg = tiny
    setup = smoke_setup(tmp_path / "jobs", city, seg)
    opts = L.Options("local", jobs=1, threads=1, device="cpu", poll_seconds=0.1)
    outcome = {}
    waiting = threading.Thread(
        target=lambda: outcome.update(o=L.launch([[("gan_alone", 1)]], setup, 1, opts, R.run_job)))
    waiting.start()
    job_json = tmp_path / "jobs" / "gan_alone" / "seed-1" / "local" / "job.json"
    deadline = time.time() + 60
    while time.time() < deadline and not (job_json.is_file() and task_pid(int(json.loads(job_json.read_text())["job_id"]))):
        time.sleep(0.01)
    os.kill(task_pid(int(json.loads(job_json.read_text())["job_id"])), signal.SIGKILL)
    waiting.join(timeout=120)
    result = outcome["o"]
    assert result.finished == [] and [f.runs for f in result.failed] == [[("gan_alone", 1)]]
    message = str(result.error())
    assert "gan_alone seed 1" in message and "ended without a result" in message and "/gan_alone/seed-1/local" in message


@pytest.mark.slow
def test_an_interrupted_command_stops_its_local_jobs(tiny, tmp_path, monkeypatch):
    """Ctrl-C while waiting: local jobs are the command's own processes, so they stop with it."""
    city, seg = tiny
    setup = smoke_setup(tmp_path / "jobs", city, seg)
    job_json = tmp_path / "jobs" / "gan_alone" / "seed-0" / "local" / "job.json"
    seen = {}

    class InterruptedClock:  # the command's wait, interrupted once the job's process runs
        time = staticmethod(time.time)

        @staticmethod
        def sleep(seconds):
            if seen.get("interrupted"):  # one Ctrl-C; the stopping that follows waits as usual
                return time.sleep(seconds)
            deadline = time.time() + 60
            while time.time() < deadline and not seen.get("task"):
                seen["task"] = task_pid(int(json.loads(job_json.read_text())["job_id"]))
                time.sleep(0.01)
            seen["interrupted"] = True
            raise KeyboardInterrupt

    monkeypatch.setattr(L, "time", InterruptedClock)
    with pytest.raises(KeyboardInterrupt):
        L.launch([[("gan_alone", 0)]], setup, 50, L.Options("local", jobs=1, threads=1, device="cpu"), R.run_job)
    assert seen["task"]
    deadline = time.time() + 30
    while time.time() < deadline and Path(f"/proc/{seen['task']}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{seen['task']}").exists(), "the job's process outlived the command"
    assert not (tmp_path / "jobs" / "gan_alone" / "seed-0" / "result.json").exists()


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_stopping_a_local_job_ends_a_task_its_controller_lost(tmp_path, sigint):
    """stop_local_job ends a local job's task whatever its submitit controller does with the SIGINT of cancel():
    - default: a SIGINT landing while the controller starts its task (after the fork, before the controller lists
      the task) stops the controller but leaves the task orphaned, running to the end of its job;
    - ignored: a command started in the background by a script (bash gives `&` jobs SIGINT ignored) passes that
      on to the controller and its task, so cancel() stops nothing (seen in CI: the job wrote its result after
      the command was interrupted).
    A stand-in controller that never stops its task and exits when it ends: without stop_local_job's own kill
    the task lives on."""
    folder = tmp_path / "local"
    folder.mkdir()
    handling = "signal.default_int_handler" if sigint == "default" else "signal.SIG_IGN"
    task = (f"import pathlib, signal, sys, time; signal.signal(signal.SIGINT, {handling}); "
            "pathlib.Path(sys.argv[2], 'ready').touch(); time.sleep(120)")
    controller_code = (f"import signal, subprocess, sys; signal.signal(signal.SIGINT, {handling}); "
                       "subprocess.Popen([sys.executable, '-c', sys.argv[1], 'submitit.core._submit', sys.argv[3]])"
                       ".wait()")
    controller = subprocess.Popen([sys.executable, "-c", controller_code, task, "submitit.local._local", str(folder)])
    task_pid_ = None
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not L.local_children(controller.pid):
            time.sleep(0.01)
        [task_pid_] = L.local_children(controller.pid)
        deadline = time.time() + 30  # the task (and before it the controller) has set its SIGINT handling
        while time.time() < deadline and not (folder / "ready").exists():
            time.sleep(0.01)
        job = L.EarlierLocalJob(folder=folder, job_id=str(controller.pid))
        assert L.local_controller_alive(controller.pid, folder) and L.local_task_alive(task_pid_, folder)
        L.stop_local_job(job, wait_s=2)
        controller.wait(timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and L.local_task_alive(task_pid_, folder):
            time.sleep(0.05)
        assert not L.local_task_alive(task_pid_, folder), "the task outlived stop_local_job"
    finally:
        controller.kill()
        if task_pid_ and L.local_task_alive(task_pid_, folder):
            os.kill(task_pid_, signal.SIGKILL)


@pytest.mark.slow
def test_failing_job_is_reported_while_the_other_finishes_and_reruns_redo_only_what_is_missing(
        tiny, tmp_path, monkeypatch, capsys):
    city, seg = tiny
    out = tmp_path / "out"
    monkeypatch.setattr(P, "rows_for", lambda target: [ROW["cycle_alone"], ROW["gan_alone"]])
    bad = out / "gan_alone" / "seed-0" / "run"
    bad.mkdir(parents=True)  # a run folder of another config: run_row refuses it, so this job fails
    (bad / "config.toml").write_text(config_to_toml(row_config(ROW["gan_alone"], "smoke", 0, iters_per_epoch=5)))

    assert main(cli(out, city, seg, "--iters-per-epoch", "1", "--jobs", "2")) == 1
    printed = capsys.readouterr()
    assert "0 of 2 runs already finished; 2 to do as 2 local job(s)" in printed.out
    error = printed.err.split("error:", 1)[1]
    assert "1 job(s) failed" in error and "gan_alone seed 0" in error and "cycle_alone seed 0" not in error
    assert "holds a run of another config" in error and "Traceback" in error  # the tail of its log
    assert (out / "cycle_alone" / "seed-0" / "result.json").is_file()
    assert not (out / "gan_alone" / "seed-0" / "result.json").exists()
    assert (out / "report.md").is_file()  # the report of what finished

    # two jobs, each its own process, both running at once (--jobs 2)
    ids = [json.loads((out / k / "seed-0" / "local" / "job.json").read_text())["job_id"] for k in ("cycle_alone", "gan_alone")]
    assert len(set(ids)) == 2 and str(os.getpid()) not in ids
    spans = []
    for key in ("cycle_alone", "gan_alone"):
        stamps = re.findall(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\)", log_text(out / key / "seed-0" / "local"))
        spans.append([datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1])])
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]

    # fixed, the rerun submits only the failed run; the finished one is untouched
    import shutil
    shutil.rmtree(bad)
    done = out / "cycle_alone" / "seed-0" / "result.json"
    stamp = done.stat().st_mtime_ns
    assert main(cli(out, city, seg, "--iters-per-epoch", "1", "--jobs", "2")) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 runs already finished; 1 to do" in printed and "submitted job" in printed
    assert printed.count("submitted job") == 1 and "gan_alone seed 0" in printed
    assert done.stat().st_mtime_ns == stamp and (out / "gan_alone" / "seed-0" / "result.json").is_file()

    # all done: a third run submits nothing and writes the report again
    assert main(cli(out, city, seg, "--iters-per-epoch", "1")) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 runs already finished; 0 to do" in printed and "submitted job" not in printed


@pytest.mark.slow
def test_pack_with_a_launcher_trains_each_pack_as_one_job(tiny, tmp_path, capsys):
    """--pack with --launcher: the runs that share a vectorised step go as one job per pack (submitted first, the
    longest), the others one job each; `auto` with --jobs 2 cuts the 5 CycleGAN-family runs into 2 packs so that
    both slots train; every run keeps its folder, run.json names its pack, a rerun does nothing."""
    city, seg = tiny
    out = tmp_path / "out"
    assert main(cli(out, city, seg, "--iters-per-epoch", "1", "--pack", "auto", "--jobs", "2")) == 0
    printed = capsys.readouterr().out
    assert "5 to do as 2 local job(s), 2 of them packs of 3/2 runs" in printed
    assert printed.count("submitted job") == 2
    packs = {("cyclegan", "cycle_alone", "gan_alone"), ("gan_forward", "gan_backward")}
    for keys in packs:
        folders = []
        for key in keys:
            info = json.loads((out / key / "seed-0" / "run" / "run.json").read_text())
            assert info["packed"]["runs"] == len(keys) and (out / key / "seed-0" / "result.json").is_file()
            folders.append(info["packed"]["folders"])
        assert all(f == folders[0] for f in folders)  # one pack
        assert f"training {len(keys)} runs as one pack" in log_text(out / keys[0] / "seed-0" / "local")
    assert main(cli(out, city, seg, "--iters-per-epoch", "1", "--pack", "auto")) == 0
    assert "5 of 5 runs already finished; 0 to do" in capsys.readouterr().out


def test_launcher_groups_packs_first_then_single_runs(tiny, tmp_path, monkeypatch):
    """The job list: packs (longest) first, then every run no pack takes, one job each."""
    city, seg = tiny
    setup = smoke_setup(tmp_path / "out", city, seg)
    seen = {}
    monkeypatch.setattr(L, "launch", lambda groups, *a, **k: seen.update(groups=groups) or L.Outcome())
    argv = cli(tmp_path / "out", city, seg, "--pack", "2", "--seeds", "2")
    args = build_parser(argv).parse_args(argv)
    runs = [(ROW["pix2pix"], 0), (ROW["cyclegan"], 0), (ROW["cyclegan"], 1), (ROW["gan_alone"], 0)]
    R.launch_runs(runs, setup, args.iters_per_epoch, C.options_from(args))
    assert seen["groups"] == [[("cyclegan", 0), ("cyclegan", 1)], [("pix2pix", 0)], [("gan_alone", 0)]]


PROGRESS_LINE = re.compile(r"  job (\S+) (.+?): (?:(\d[\d,]*)/(\d[\d,]*) it, (?:([\d.]+) it/s, ETA (.+)|rate not known yet)"
                           r"|starting|trained .*)$")
OVERALL_LINE = re.compile(r"progress: (\d+) job\(s\) running, (\d+) queued; overall ETA (.+?) \(training;")


def two_jobs_in_progress(tmp_path) -> list[tuple]:
    """Two running jobs as the launcher sees them, from RUN/progress.json as training writes it: cyclegan seed 0 at
    2 it/s with 350 s left, and a pack of 2 at 0.5 it/s with 800 s left."""
    from repro.train import write_progress

    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
    write_progress(runs[:1], step=300, total=1000, first_step=100, seconds=100.0)  # 2 it/s: 350 s left
    write_progress(runs[1:], step=50, total=450, first_step=0, seconds=100.0)      # 0.5 it/s of a pack of 2: 800 s
    read = lambda run: json.loads((run / "progress.json").read_text())
    return [("11", "cyclegan seed 0", 1, 1000, read(runs[0])),
            ("12", "gan_alone seed 0 (+1 packed)", 2, 450, read(runs[1]))]


def test_launcher_progress_lines_show_each_job_and_an_overall_eta(tmp_path):
    """Per running job its iteration, it/s and ETA (from its RUN/progress.json, as training writes it), and an
    overall ETA: the running jobs' ETAs and the queued jobs' iterations at the mean rate per run, on the slots."""
    running = two_jobs_in_progress(tmp_path)
    lines = E.progress_lines(running + [("13", "cogan seed 1", 1, 600, None)], [("bigan seed 0", 1, 400)], slots=3)
    jobs = [PROGRESS_LINE.fullmatch(line) for line in lines[:-1]]
    assert all(jobs), lines
    assert [m.group(1) for m in jobs] == ["11", "12", "13"]
    assert jobs[0].group(3, 4, 5, 6) == ("300", "1,000", "2.00", "6 min")  # 350 s
    assert jobs[1].group(5) == "0.50" and jobs[2].group(0).endswith("starting")
    overall = OVERALL_LINE.match(lines[-1])
    # mean rate per run (2 + 2 x 0.5) / 2 = 1.5 run-it/s: job 13 (not logged yet) 400 s, bigan 267 s after the
    # first slot frees (350 s): 617 s; the pack ends last, at 800 s
    assert overall and overall.group(1, 2, 3) == ("3", "1", "13 min")
    lines = E.progress_lines(running, [("bigan seed 0", 1, 400), ("simgan seed 0", 1, 400)], slots=3)
    # each queued job 267 s: the 3rd slot's two end at 533 s; the pack ends last, at 800 s
    assert OVERALL_LINE.match(lines[-1]).group(3) == "13 min"
    lines = E.progress_lines(running, [("bigan seed 0", 1, 3000)], slots=2)
    assert OVERALL_LINE.match(lines[-1]).group(3) == format_duration(350 + 3000 / 1.5)
    lines = E.progress_lines([("13", "cogan seed 1", 1, 600, None)], [("bigan seed 0", 1, 400)], slots=2)
    assert OVERALL_LINE.match(lines[-1]).group(3) == "not known yet"  # no job has a rate yet


def test_launcher_etas_include_each_runs_translation_and_scoring(tmp_path):
    """With the estimate's translation and scoring per run, every job's ETA adds it for each of its runs (a pack's
    too); a trained job's counts down from its last progress.json; the overall ETA lays out jobs that long."""
    running = two_jobs_in_progress(tmp_path) + [("13", "cogan seed 1", 1, 600, None)]
    lines = E.progress_lines(running, [("bigan seed 0", 1, 400)], slots=3, evaluation=60.0)
    assert lines[0].endswith("2.00 it/s, ETA 7 min (training 6 min, then translation and scoring)")  # 410 s
    assert "ETA 15 min" in lines[1]  # 800 s + 2 runs x 60 s
    # job 13: 600 it at 1.5 run-it/s + 60 s = 460 s; bigan 267 + 60 s after the first slot frees (410 s): 737 s;
    # the pack ends last, at 920 s
    assert lines[-1].endswith("overall ETA 15 min (training, translation and scoring)")
    lines = E.progress_lines(running[:1], [("bigan seed 0", 1, 3000)], slots=1, evaluation=60.0)
    assert lines[-1].endswith(f"overall ETA {format_duration(410 + 3000 / 2 + 60)} (training, translation and scoring)")
    trained = {"step": 450, "total": 450, "it_per_s": 0.5, "eta_seconds": 0.0, "updated": 1000.0}
    lines = E.progress_lines([("12", "gan_alone seed 0 (+1 packed)", 2, 450, trained)], [("bigan seed 0", 1, 400)],
                             slots=1, evaluation=60.0, now=1020.0)
    assert lines[0].endswith("translating and scoring, ETA 100 s")  # 2 runs x 60 s, 20 s of it done
    assert lines[-1].endswith("overall ETA not known yet (training, translation and scoring)")  # no rate to go by
    lines = E.progress_lines(running, [("bigan seed 0", 1, 400)], slots=3)  # no estimate: training only, as before
    assert OVERALL_LINE.match(lines[-1]).group(3) == "13 min"


# ------------------------------------------------------------------------------ issue 22: a killed command's local jobs

def fake_controller(folder: Path, seconds: float, result=None) -> subprocess.Popen:
    """A process that looks like submitit's local controller of the job in `folder` (its command line), runs for
    `seconds`, then writes `result` as the job's result pickle (as a finished job does) and exits."""
    script = ("import os, pickle, sys, time; time.sleep(float(sys.argv[1])); r = pickle.loads(bytes.fromhex(sys.argv[2]))"
              "\nif r is not None: open(os.path.join(sys.argv[4], f'{os.getpid()}_0_result.pkl'), 'wb').write("
              "pickle.dumps(('success', r)))")
    return subprocess.Popen([sys.executable, "-c", script, str(seconds), pickle.dumps(result).hex(),
                             "submitit.local._local", str(folder.resolve())])


def record_local_job(folder: Path, pid: int, runs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps({"launcher": "local", "job_id": str(pid), "runs": runs}))


def test_a_live_local_job_of_a_killed_command_is_found_by_its_pid(tmp_path):
    folder = tmp_path / "out" / "cyclegan" / "seed-0" / "local"
    live = fake_controller(folder, 60)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a pid reused by another program
    try:
        record_local_job(folder, live.pid, [["cyclegan", 0]])
        assert L.earlier_job(folder, "local", None).job_id == str(live.pid)
        record_local_job(folder, other.pid, [["cyclegan", 0]])
        assert L.earlier_job(folder, "local", None) is None
    finally:
        for p in (live, other):
            p.kill()
            p.wait()
    record_local_job(folder, live.pid, [["cyclegan", 0]])  # the job has ended
    assert L.earlier_job(folder, "local", None) is None


def test_a_rerun_waits_for_the_live_local_jobs_of_a_killed_command_instead_of_resubmitting(tiny, tmp_path,
                                                                                          monkeypatch, capsys):
    city, seg = tiny
    out = tmp_path / "out"
    setup = smoke_setup(out, city, seg)
    pack = [["cyclegan", 0], ["cyclegan", 1]]
    folder = out / "cyclegan" / "seed-0" / "local"
    orphan = fake_controller(folder, 3, result=[{"row": "cyclegan", "seed": 0}, {"row": "cyclegan", "seed": 1}])
    record_local_job(folder, orphan.pid, pack)
    touched = []
    real_pack_groups = R.pack_groups
    monkeypatch.setattr(R, "pack_groups", lambda runs, *a: touched.extend(runs) or real_pack_groups(runs, *a))
    monkeypatch.setattr(L.submitit.LocalExecutor, "submit", lambda *a, **k: pytest.fail("submitted a second job"))
    argv = cli(out, city, seg, "--pack", "2", "--seeds", "2")
    args = build_parser(argv).parse_args(argv)
    try:
        outcome = R.launch_runs([(ROW["cyclegan"], 0), (ROW["cyclegan"], 1)], setup, args.iters_per_epoch,
                                C.options_from(args))
    finally:
        orphan.kill()
        orphan.wait()
    assert touched == []  # the orphan's runs are neither regrouped nor their checkpoints read
    assert outcome.adopted == [[("cyclegan", 0), ("cyclegan", 1)]] and outcome.submitted == []
    assert outcome.finished == [{"row": "cyclegan", "seed": 0}, {"row": "cyclegan", "seed": 1}] and not outcome.failed
    assert f"job {orphan.pid} of an earlier command still runs" in capsys.readouterr().out
