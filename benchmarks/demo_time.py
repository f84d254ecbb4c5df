"""Wall time of the smoke reproduction (`make demo`: `repro reproduce all --scale smoke`), packed vs unpacked
(and with --jobs where `repro reproduce` has it), on this machine in one run.

    python benchmarks/demo_time.py [--work DIR] [--iters-per-epoch N] [--seeds N] [--repeats 1]

The synthetic city, its prepared data and the smoke segmenter are made once in WORK/setup (not timed); each
variant then runs the whole reproduction (every row's training, translation and scoring, and the report) in its
own folder, as a `repro` subprocess, and its wall time is printed with the ratio to the unpacked run. With
--repeats > 1 the variants alternate, so a busy machine slows them alike. --iters-per-epoch shortens every row
alike (the smoke configs have 100): the ratio then weighs the fixed costs (start-up, scoring) more than the
full demo does, and the run says so.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def reproduce_flags() -> str:
    return subprocess.run([sys.executable, "-m", "repro.cli", "reproduce", "--help"], capture_output=True,
                          text=True, check=True, env=ENV).stdout


def variants(help_text: str, jobs: int) -> dict[str, list[str]]:
    """Unpacked (today's demo), and what this version of `repro reproduce` offers beyond it."""
    found = {"unpacked": ["--pack", "off"] if "--pack" in help_text else []}
    if "--pack" in help_text:
        found["packed (--pack auto)"] = ["--pack", "auto"]
    if "--launcher" in help_text and "--jobs" in help_text:  # runs in parallel processes, one thread each
        found[f"--launcher local --jobs {jobs}"] = (["--pack", "off"] if "--pack" in help_text else []) + [
            "--launcher", "local", "--jobs", str(jobs), "--threads-per-job", "1"]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--iters-per-epoch", type=int, help="shorten every row (the smoke configs have 100)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: the smoke reproduction's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="for the --jobs variant, where it exists")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="demo-time-"))
    from repro.reproduce import smoke_setup

    print(f"setting up the synthetic city and the smoke segmenter in {work}/setup (not timed) ...", flush=True)
    setup = smoke_setup(Namespace(out=work / "setup", cityscapes=None, data=None, segmenter=None, device=args.device),
                        progress=False)
    common = ["--scale", "smoke", "--device", args.device, "--quiet", "--cityscapes", str(setup.cityscapes),
              "--data", str(setup.data), "--segmenter", str(setup.segmenter)]
    if args.iters_per_epoch:
        common += ["--iters-per-epoch", str(args.iters_per_epoch)]
    if args.seeds:
        common += ["--seeds", str(args.seeds)]
    cases = variants(reproduce_flags(), args.jobs)
    times = {name: [] for name in cases}
    for r in range(args.repeats):
        for i, (name, flags) in enumerate(cases.items()):
            out = work / f"run-{i}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            log = work / f"run-{i}-{r}.log"
            with open(log, "w") as f:
                done = subprocess.run([sys.executable, "-m", "repro.cli", "reproduce", "all", *common, *flags, "--out",
                                       str(out)], stdout=f, stderr=subprocess.STDOUT, env=ENV)
            if done.returncode:
                sys.exit(f"{name} failed (exit {done.returncode}); its output: {log}\n" + log.read_text()[-2000:])
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.0f} s", flush=True)
    base = statistics.median(times["unpacked"])
    rows = [[name, f"{statistics.median(t):.0f}", f"{base / statistics.median(t):.2f}x"] for name, t in times.items()]
    print(f"\nsmoke reproduction (all rows), wall time, median of {args.repeats}; "
          + (f"REDUCED: --iters-per-epoch {args.iters_per_epoch} (the demo has 100)" if args.iters_per_epoch
             else "full length"))
    print(tabulate(rows, headers=["variant", "seconds", "speed vs unpacked"]))
    if len(cases) == 1:
        print("  (this `repro reproduce` has neither --pack nor --jobs: only the unpacked demo was timed)")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
