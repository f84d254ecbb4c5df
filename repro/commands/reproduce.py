"""`repro reproduce TARGET` (repro.reproduce), its runs in this process or as jobs (`--launcher`,
repro.reproduce.launcher)."""

import argparse
from pathlib import Path

from repro import ReproError
from repro.commands.options import (add_device, add_iters_per_epoch, add_quiet, add_set, docstring, non_negative_int,
                                    positive_int)
from repro.rows import DEFAULT_SEEDS, FID_TARGETS, PRETRAINED, TARGETS


def run_reproduce(args: argparse.Namespace) -> int:
    import time

    if args.target in FID_TARGETS:
        from repro import reproduce_fid
        return reproduce_fid.run(args)
    started = time.time()
    from repro import layout, report, setup_time
    from repro.config import parse_settings
    from repro.device import pick_device
    from repro.estimate import format_duration, measured_line
    from repro.io import DiskFull
    from repro.reproduce import (REPRODUCE_DISK_FULL_FIX, estimate_for, evaluation_seconds, launch_runs, paper_setup,
                                 planned_runs, reproduce, rows_for, run_bounds, run_pretrained,
                                 scorings_without_training, smoke_setup)
    from repro.reproduce.plan import SMOKE_CITY, SMOKE_PREPARED_SIZE, SMOKE_SEGMENTER
    from repro.rows import row_config
    from repro.verdicts import default_ranges

    settings = parse_settings(args.set)  # checked before any work
    opts = args.launch_options = check_arguments(args)  # --launcher and its options, likewise
    args.out = Path(args.out) if args.out else Path(f"reproductions/{args.target}-{args.scale}")
    pretrained = "only" if args.pretrained_only else "add" if args.pretrained else None
    if pretrained and not any(t in PRETRAINED.tables for t in TARGETS[args.target]):
        raise ReproError(f"--pretrained adds a row to Tables 2 and 3; {args.target} has none of them.")
    rows = rows_for(args.target) if pretrained != "only" and not args.bounds_only else []
    seeds = args.seeds or DEFAULT_SEEDS[args.scale]
    plans = []  # the training estimate's job layout
    if args.scale == "paper":
        setup = paper_setup(args, rows, plans)
        steps = setup_time.setup_steps(setup.cityscapes, setup.data, setup.segmenter, setup.device, 256,
                                       calibration_later=True)
    else:
        device = str(pick_device(args.device))
        seconds, text = estimate_for(args, rows, "smoke", seeds, device, SMOKE_CITY["n_train"], plans)
        print(f"estimated training time: {format_duration(seconds)}, {text}", flush=True)
        steps = setup_time.setup_steps(*layout.smoke_inputs(args.out, args.cityscapes, args.data, args.segmenter),
                                       device, SMOKE_PREPARED_SIZE, SMOKE_CITY if args.cityscapes is None else None,
                                       {"workers": 0, **SMOKE_SEGMENTER})
    if steps:
        print(setup_time.setup_line(steps) + "\n" + setup_time.total_line(steps, plans[0].seconds if plans else 0.0),
              flush=True)
    setup_started = time.time()
    if args.scale == "paper":
        if not (setup.data / "manifest.json").is_file():
            from repro.data import cityscapes as prep
            prep.prepare(setup.cityscapes, setup.cityscapes, setup.data, size=256)
    else:
        setup = smoke_setup(args, progress=not args.quiet)
    setup.settings, setup.graphs = settings, args.graphs
    work_started, expected = time.time(), None
    if plans and plans[0].durations:  # now that the val set and the segmenter are there: their part, timed
        per_run = evaluation_seconds(setup, row_config(rows[0], setup.scale, 0, args.iters_per_epoch, settings))
        scorings = scorings_without_training(seeds, pretrained)  # floor and ceiling rows, --pretrained's row
        expected = plans[0].with_evaluation(per_run, scorings) + setup_time.later(steps)
        if opts is not None:
            opts.evaluation_seconds = per_run  # the launcher's ETAs count it too
        print(f"estimated from here: {format_duration(expected)} (training {format_duration(plans[0].seconds)}; "
              f"translation and scoring {format_duration(per_run)} per run, measured now on 3 val frames, for "
              f"{sum(plans[0].runs)} runs and {scorings} scorings of rows without training"
              + (f"; calibration {format_duration(setup_time.later(steps))}" if setup_time.later(steps) else "")
              + ")", flush=True)
    failed = None
    if args.bounds_only:  # nothing to train: the plan (for the report) and the floor and ceiling rows
        planned_runs(args.target, setup, seeds, args.iters_per_epoch, pretrained)
        run_bounds(setup, seeds, not args.quiet)
    elif args.launcher is None:
        try:
            reproduce(args.target, setup, seeds, args.iters_per_epoch, progress=not args.quiet, pretrained=pretrained,
                      pack=args.pack)
        except DiskFull as err:  # the fix of a bare `repro train` (its --resume, its checkpoint) is not this command's
            err.fix = REPRODUCE_DISK_FULL_FIX
            raise
    else:  # every run a job (repro.reproduce.launcher); the pretrained row (translation and scoring only) here
        if pretrained:
            run_pretrained(setup, not args.quiet)
        runs = planned_runs(args.target, setup, seeds, args.iters_per_epoch, pretrained)
        if pretrained != "only":
            run_bounds(setup, seeds, not args.quiet)  # cheap: scored here, not as jobs
        outcome = launch_runs(runs, setup, args.iters_per_epoch, opts)
        if outcome.pending:
            return 0  # --no-wait: a rerun of the same command collects the jobs and writes the report
        failed = outcome.error()
    ranges = args.ranges or default_ranges(args.scale, args.iters_per_epoch)
    report.write_report(setup.out, TARGETS[args.target], ranges=ranges)
    parts = ([("set-up", setup_time.before(steps), work_started - setup_started)] if steps else []) + (
        [("training, translation and scoring", expected, time.time() - work_started)] if expected is not None else [])
    if parts:
        print(measured_line(parts, time.time() - started), flush=True)
    if failed:
        raise failed
    return 0


def pack_option(text: str) -> str:
    if text in ("off", "auto") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: off, auto or a number of runs (1 or more)")


def add_commands(commands) -> None:
    p = commands.add("reproduce", description=docstring("repro.reproduce"))
    p.add_argument("target", choices=(*TARGETS, *FID_TARGETS),
                   help="table2/table3 (same rows), table4/table5 (same rows), all; horse2zebra: FID/KID against the "
                        "published figures; fid --dataset NAME: the same for another CycleGAN dataset")
    p.add_argument("--scale", choices=("paper", "smoke"), default="smoke",
                   help="paper: repro/configs/cityscapes on Cityscapes (GPU); smoke: synthetic city on the CPU")
    p.add_argument("--seeds", type=positive_int, help=f"seeds 0..N-1 per row (default by scale: {DEFAULT_SEEDS})")
    p.add_argument("--out", type=Path, help="output folder (default: reproductions/TARGET-SCALE)")
    p.add_argument("--data", type=Path, help="prepared dataset (paper: 256x256, prepared from --cityscapes if missing; "
                                             "smoke: default OUT/data)")
    p.add_argument("--cityscapes", type=Path, help="raw Cityscapes root with gtFine/ and leftImg8bit/ "
                                                   "(smoke: default OUT/synth-city, generated)")
    p.add_argument("--segmenter", type=Path, help="FCN-8s .pt (paper: required; smoke: default OUT/segmenter.pt, trained)")
    add_iters_per_epoch(p, "each row's config; a smaller number makes a reduced run")
    add_set(p, " in every row", "each run's config.toml and in reproduce.json")
    p.add_argument("--ranges", type=Path, help="accepted ranges for the verdicts (default: expected/ranges_SCALE.toml; "
                                               "horse2zebra/fid: expected/ranges_fid_SCALE.toml)")
    p.add_argument("--dataset", help="fid: the Berkeley CycleGAN dataset to train and score (e.g. apple2orange)")
    p.add_argument("--url", help="horse2zebra/fid: fetch the dataset archive from this URL (a mirror) through "
                                 "`repro data get`'s verified download")
    p.add_argument("--fid-weights", type=Path, help="horse2zebra/fid: pytorch-fid's Inception weights file (default: "
                                                    "the torch hub cache, fetched once)")
    p.add_argument("--clean-fid-network", type=Path, help="horse2zebra/fid: a local inception-2015-12-05.pt (clean-fid's "
                                                          "TorchScript Inception): adds clean-fid's own clean-mode FID column")
    add_device(p)
    p.add_argument("--allow-cpu", action="store_true", help="run a paper-scale reproduction on the CPU anyway (days)")
    p.add_argument("--pretrained", action="store_true",
                   help="also score the official port's pretrained cityscapes_label2photo / cityscapes_photo2label "
                        "(downloaded into OUT/pretrained; REPRO_PRETRAINED_URL names a mirror) as a row of Tables 2/3")
    p.add_argument("--pretrained-only", action="store_true", help="score only that row (nothing is trained)")
    p.add_argument("--bounds-only", action="store_true",
                   help="score only the floor and ceiling rows (ground truth, untrained generator per seed, constant "
                        "output; nothing is trained, see repro.bounds)")
    p.add_argument("--pack", type=pack_option, default="off",
                   help="train runs that differ only in seed and loss weights (CycleGAN and its ablations) as one "
                        "vectorised step: off, a number of runs per pack, or auto (from the GPU's free memory; 10 on "
                        "the CPU; measured on this machine's device, so with --launcher slurm give N; with --jobs N, "
                        "near-equal packs that fill the N job slots). Each run keeps "
                        "its own folder, generator, pools, log and checkpoint; results equal runs trained alone to "
                        "float tolerance. With --launcher, each pack is one job")
    p.add_argument("--graphs", choices=("auto", "off"), default="auto",
                   help="auto: CycleGAN and its ablations train with the step captured as one CUDA graph on CUDA "
                        "(packs too; uncaptured on the CPU, where it equals the eager step bit for bit); off: the "
                        "eager step. Recorded in each run.json (graphs, cuda_graphs)")
    add_quiet(p)
    add_launcher_arguments(p)
    p.set_defaults(func=run_reproduce)


def add_launcher_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("jobs", "run every (row, seed) as a job through submitit instead of in this process")
    g.add_argument("--launcher", choices=("local", "slurm"),
                   help="local: separate processes on this machine; slurm: jobs on a SLURM cluster (submitit)")
    jobs = [
        g.add_argument("--jobs", type=positive_int,
                       help="at most N jobs at once (default: 1 with local; every job queued at once with slurm)"),
        g.add_argument("--no-wait", action="store_true",
                       help="slurm: submit and return; rerun the same command later to collect and write the report"),
        g.add_argument("--threads-per-job", type=positive_int,
                       help="torch threads per job (default: CPU cores / --jobs with local, --slurm-cpus-per-job with "
                            "slurm)"),
        g.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's default)"),
        g.add_argument("--slurm-gpus-per-job", type=non_negative_int,
                       help="GPUs per job (default: 1 at paper scale, 0 at smoke scale)"),
        g.add_argument("--slurm-cpus-per-job", type=positive_int, default=4, help="CPU cores per job"),
        g.add_argument("--slurm-time", type=float, default=24.0,
                       help="time limit per job in hours; a job reaching it is requeued and resumes"),
        g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. account=abc or qos=long (repeatable)"),
        g.add_argument("--progress-seconds", type=float, default=30.0,
                       help="print each running job's iteration, it/s and ETA and an overall ETA this often (0: never)"),
    ]
    p.set_defaults(job_flags=[(a.option_strings[0], a.dest, a.default) for a in jobs])  # for check_arguments


def check_arguments(args: argparse.Namespace):
    """The job options, checked before any work (None: no --launcher, the runs go in this process)."""
    if args.launcher is None:
        given = [flag for flag, dest, default in args.job_flags if getattr(args, dest) != default]
        if given:
            raise ReproError(f"{', '.join(given)} apply to jobs: add --launcher slurm or --launcher local")
        return None
    return options_from(args)


def options_from(args: argparse.Namespace):
    """repro.reproduce.launcher.Options from the command line, checked."""
    from repro.device import threads_per_job
    from repro.reproduce.launcher import Options

    if args.slurm_time <= 0:
        raise ReproError(f"--slurm-time {args.slurm_time}: give the hours a job may run, e.g. 24")
    if args.no_wait and args.launcher == "local":
        raise ReproError("--no-wait needs --launcher slurm: local jobs are this command's own processes")
    if args.no_wait and args.jobs:
        raise ReproError("--jobs limits what the waiting command keeps queued; with --no-wait every job is "
                         "submitted at once (SLURM schedules them). Drop one of the two.")
    extra = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ReproError(f"--slurm-option {item!r}: write KEY=VALUE, e.g. --slurm-option account=abc")
        extra[key.replace("-", "_")] = value
    gpus = args.slurm_gpus_per_job if args.slurm_gpus_per_job is not None else (1 if args.scale == "paper" else 0)
    if args.launcher == "local":
        jobs = args.jobs or 1
        threads = args.threads_per_job or threads_per_job(jobs)
    else:
        jobs, threads = args.jobs, args.threads_per_job or args.slurm_cpus_per_job
    return Options(args.launcher, jobs, not args.no_wait, threads, args.device, args.slurm_partition, gpus,
                   args.slurm_cpus_per_job, args.slurm_time, extra, pack=getattr(args, "pack", "off"),
                   progress_seconds=getattr(args, "progress_seconds", 30.0))
