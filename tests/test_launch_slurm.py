"""`repro reproduce --launcher slurm` against a real single-node SLURM cluster that this test starts.

Debian's slurm-wlm and munge (`.ci/run` installs them): the test writes a slurm.conf for 127.0.0.1 (one node
with this machine's CPUs and memory, select/cons_tres, proctrack/linuxproc, no cgroups, no accounting),
starts munged, slurmctld and slurmd in a temporary folder on free ports, and stops them by their process ids.
Run only this test with `pytest -m slurm`; it is skipped (saying why) where the binaries are missing."""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from repro import reproduce as R
from repro.reproduce import plan as P
from repro.cli import main
from repro.data.synth_city import generate
from repro.eval.fcn import fcn8s, save_segmenter
from repro.rows import ROWS
from tests.test_launch import assert_same_weights, log_text

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
pytestmark = [
    pytest.mark.slurm, pytest.mark.slow,
    pytest.mark.skipif(any(shutil.which(d) is None for d in DAEMONS),
                       reason="needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge; .ci/run does)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def wait_for(what: str, condition, seconds: float, logs: list[Path]):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tails = "\n".join(f"== {p}\n" + "\n".join(p.read_text().splitlines()[-15:]) for p in logs if p.is_file())
    raise AssertionError(f"{what} within {seconds} s failed; daemon logs:\n{tails}")


@pytest.fixture
def cluster(tmp_path_factory, monkeypatch):
    """munged + slurmctld + slurmd for 127.0.0.1 in a temp folder; SLURM_CONF points the clients at it."""
    root = tmp_path_factory.mktemp("slurm")
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir()
    (root / "munge").chmod(0o755)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=repro-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={os.environ.get("USER", "root") if os.getuid() else "root"}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=repro-node NodeHostname={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={int(memory_mb() * 0.9)} State=UNKNOWN
PartitionName=test Nodes=repro-node Default=YES MaxTime=INFINITE State=UP
""")
    logs = [root / "munge" / "munged.log", root / "log" / "slurmctld.log", root / "log" / "slurmd.log"]
    subprocess.run(["mungekey", "--create", "--force", "--keyfile", str(root / "munge" / "munge.key")], check=True)
    (root / "munge" / "munge.key").chmod(0o600)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    env = dict(os.environ)
    daemons = []
    try:
        daemons.append(subprocess.Popen(
            ["munged", "--foreground", "--force", "--socket", f"{root}/munge/munge.socket",
             "--key-file", f"{root}/munge/munge.key", "--pid-file", f"{root}/munge/munged.pid",
             "--log-file", f"{root}/munge/munged.log", "--seed-file", f"{root}/munge/munged.seed"], env=env))
        wait_for("munged's socket", lambda: (root / "munge" / "munge.socket").exists(), 30, logs)
        daemons.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env))
        daemons.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", "repro-node"], env=env))
        idle = lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
        wait_for("the node to be idle", idle, 60, logs)
        yield root
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def scontrol_job(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def test_smoke_row_on_slurm_no_wait_then_usr2_requeue_then_rerun_collects_the_in_process_weights(cluster, tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)  # as the job (--slurm-cpus-per-job 1)
    city = generate(tmp_path / "cs", n_train=4, n_val=2, size=(64, 32), progress=False)
    seg = tmp_path / "seg.pt"
    save_segmenter(fcn8s(width=1 / 32).eval(), seg, source="test")
    row = {r.key: r for r in ROWS}["cyclegan"]
    monkeypatch.setattr(P, "rows_for", lambda target: [row])
    out, iters = tmp_path / "slurm-out", 10
    argv = ["reproduce", "table4", "--scale", "smoke", "--out", str(out), "--cityscapes", str(city), "--segmenter",
            str(seg), "--seeds", "1", "--iters-per-epoch", str(iters), "--device", "cpu", "--quiet",
            "--launcher", "slurm", "--slurm-partition", "test", "--slurm-cpus-per-job", "1", "--slurm-time", "1"]
    assert main(argv + ["--no-wait"]) == 0  # submits and returns
    printed = capsys.readouterr().out
    assert "0 of 1 runs already finished; 1 to do as 1 slurm job(s)" in printed and "1 job(s) submitted" in printed
    assert not (out / "report.md").exists()

    folder = out / "cyclegan" / "seed-0"
    logs = [cluster / "log" / "slurmctld.log", cluster / "log" / "slurmd.log"]
    wait_for("the job's first checkpoint", lambda: (folder / "run" / "checkpoint.pt").is_file(), 300, logs)
    job_id = json.loads((folder / "slurm" / "job.json").read_text())["job_id"]
    assert not (folder / "run" / "run.json").exists(), "the signal must land mid-training"
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # as SLURM does before a preemption/time limit
    requeued = lambda: (lambda j: j.get("Restarts") == "1" and j.get("JobState") == "PENDING" and j)(scontrol_job(job_id))
    wait_for("the job to be requeued", requeued, 120, logs)

    # SLURM holds a requeued job ~2 min before it may start again: a rerun now finds it queued, submits nothing
    assert main(argv + ["--no-wait"]) == 0
    printed = capsys.readouterr().out
    assert f"job {job_id} of an earlier command still runs" in printed and "submitted job" not in printed
    assert "0 job(s) submitted, 1 still running from before" in printed
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)  # release it now

    assert main(argv) == 0, capsys.readouterr().err  # waits for the requeued job, collects, writes the report
    printed = capsys.readouterr().out
    assert f"job {job_id} of an earlier command still runs" in printed and "submitted job" not in printed
    log = log_text(folder / "slurm")
    assert "interrupted; requeued" in log and f"Requeued job {job_id}" in log
    assert re.search(r"resuming CycleGAN seed 0 in .*cyclegan/seed-0/run", log)
    assert len(re.findall(rf"Starting with JobEnvironment\(job_id={job_id},", log)) == 2
    assert (out / "report.md").is_file()

    reference = R.smoke_setup(argparse.Namespace(out=tmp_path / "inprocess", cityscapes=city, data=None,
                                                 segmenter=seg, device="cpu"), progress=False)
    expected = R.run_row(row, 0, reference, iters, progress=False)
    assert_same_weights(folder / "run", tmp_path / "inprocess" / "cyclegan" / "seed-0" / "run")
    assert json.loads((folder / "result.json").read_text())["metrics"] == expected["metrics"]

    # a rerun submits nothing: every run is finished
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 of 1 runs already finished; 0 to do" in capsys.readouterr().out
