"""Wall time of the smoke reproduction (`make demo`: `repro reproduce all --scale smoke`), packed vs unpacked,
in parallel jobs, and (--baseline REV) as an earlier version of this code ran it, on this machine in one run.

    python benchmarks/demo_time.py [--work DIR] [--iters-per-epoch N] [--seeds N] [--repeats 1] [--baseline 6f6a2d6]
        [--baseline-as VARIANT]

--baseline REV extracts that git revision (`git archive`) into WORK/baseline-REV and times its own
`repro reproduce all` on the same prepared data and segmenter, in one process at torch's default thread
count, as it ran then (6f6a2d6 is the code before the training-engine work); with --baseline-as VARIANT it
runs with that variant's flags instead (e.g. "--pack auto --launcher local", what `make demo` runs), to compare
two versions of `make demo` (the baseline's `repro reproduce --help` must offer those flags). Ratios are
against it when given, else against today's unpacked run.

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


def reproduce_flags(env: dict, cwd: Path = ROOT) -> str:
    """That version's `repro reproduce --help` (`python -m` puts the cwd first on sys.path: run it in its folder)."""
    return subprocess.run([sys.executable, "-m", "repro.cli", "reproduce", "--help"], capture_output=True,
                          text=True, check=True, env=env, cwd=cwd).stdout


def variants(help_text: str, jobs: int) -> dict[str, list[str]]:
    """Unpacked (the demo as `make demo` runs it), and what this version of `repro reproduce` offers beyond it."""
    found = {"unpacked": ["--pack", "off"] if "--pack" in help_text else []}
    if "--pack" in help_text:
        found["packed (--pack auto)"] = ["--pack", "auto"]
    if "--launcher" in help_text and "--jobs" in help_text:  # runs in parallel processes, one thread each
        jobs_flags = ["--launcher", "local", "--jobs", str(jobs), "--threads-per-job", "1"]
        found[f"--launcher local --jobs {jobs}"] = (["--pack", "off"] if "--pack" in help_text else []) + jobs_flags
        if "--pack" in help_text:
            found[f"--pack auto --launcher local --jobs {jobs}"] = ["--pack", "auto"] + jobs_flags
            # what make demo runs (the Makefile's DEMO_PACK)
            found[f"--pack 5 --launcher local --jobs {jobs}"] = ["--pack", "5"] + jobs_flags
    return found


def baseline(rev: str, work: Path) -> tuple[dict, Path]:
    """(environment, folder) that run `repro` from revision REV, extracted (once) into WORK/baseline-REV."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    dest = work / f"baseline-{sha}"
    if not (dest / "repro" / "cli.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REPRO_CPU_THREADS", "PYTHONPATH")}
    return env | {"PYTHONPATH": str(dest)}, dest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--iters-per-epoch", type=int, help="shorten every row (the smoke configs have 100)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: the smoke reproduction's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="for the --jobs variant, where it exists")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--baseline", metavar="REV", help="also time this git revision's demo (e.g. 6f6a2d6)")
    parser.add_argument("--baseline-as", metavar="VARIANT", help="run the baseline with the flags of the variant "
                        "whose name starts with this (default: one process at torch's default threads)")
    parser.add_argument("--only", action="append", help="time only the variants whose name starts with this "
                        "(repeatable; default: all)")
    args = parser.parse_args(argv)
    work = (args.work or Path(tempfile.mkdtemp(prefix="demo-time-"))).resolve()  # the runs start in other folders
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
    offered = variants(reproduce_flags(ENV), args.jobs)
    cases = {name: (flags, ENV, ROOT) for name, flags in offered.items()}
    if args.baseline:
        env, dest = baseline(args.baseline, work)
        name, flags = f"baseline {args.baseline}: one process at torch's default threads", []
        if args.baseline_as:
            theirs = variants(reproduce_flags(env, dest), args.jobs)
            matching = [v for v in theirs if v.startswith(args.baseline_as)]
            if not matching:
                sys.exit(f"--baseline-as {args.baseline_as!r}: {args.baseline}'s variants are {list(theirs)}")
            name, flags = f"baseline {args.baseline}: {matching[0]}", theirs[matching[0]]
        cases = {name: (flags, env, dest)} | cases
    if args.only:
        names = list(cases)
        cases = {name: case for name, case in cases.items() if any(name.startswith(o) for o in args.only)}
        if not cases:
            sys.exit(f"--only {args.only}: no variant's name starts with that; the variants: {names}")
    times = {name: [] for name in cases}
    for r in range(args.repeats):
        for i, (name, (flags, env, cwd)) in enumerate(cases.items()):
            out = work / f"run-{i}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            log = work / f"run-{i}-{r}.log"
            with open(log, "w") as f:
                done = subprocess.run([sys.executable, "-m", "repro.cli", "reproduce", "all", *common, *flags, "--out",
                                       str(out)], stdout=f, stderr=subprocess.STDOUT, env=env,
                                      cwd=cwd)  # `python -m` puts the cwd first on sys.path
            if done.returncode:
                sys.exit(f"{name} failed (exit {done.returncode}); its output: {log}\n" + log.read_text()[-2000:])
            times[name].append(time.perf_counter() - start)
            print(f"  {name}: {times[name][-1]:.0f} s", flush=True)
    base_name = next(iter(times))  # the baseline when given, else today's unpacked demo
    base = statistics.median(times[base_name])
    rows = [[name, f"{statistics.median(t):.0f}", f"{base / statistics.median(t):.2f}x"] for name, t in times.items()]
    print(f"\nsmoke reproduction (all rows), wall time, median of {args.repeats}; "
          + (f"REDUCED: --iters-per-epoch {args.iters_per_epoch} (the demo has 100)" if args.iters_per_epoch
             else "full length"))
    print(tabulate(rows, headers=["variant", "seconds", "speed vs the first row"]))
    if len(offered) == 1:
        print("  (this `repro reproduce` has neither --pack nor --jobs: only its unpacked demo was timed)")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
