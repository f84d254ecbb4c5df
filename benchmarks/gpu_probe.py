"""One case of benchmarks/gpu_check.sh: real training (repro.train.train_runs, the data loader included) timed
between two device syncs, with a few iterations under torch.cuda.set_sync_debug_mode("error") before.

    python benchmarks/gpu_probe.py NAME --data DIR --work DIR --json OUT [--config cityscapes/cyclegan]
        [--set FIELD=VALUE] [--device cuda] [--seeds K] [--graphs] [--amp] [--compile] [--warm 10] [--sync-iters 5] [--iters 100]

One epoch of warm + sync-iters + iters iterations (logging only at its end, no mid-epoch checkpoint). After the
warm-up (cuDNN autotuning, capture, compilation) the next `sync-iters` iterations run with sync debugging set to
"error": any host sync inside them raises (the loop promises none outside logging and checkpoints). The next
`iters` iterations are timed: iterations/s for one run, for the pack (aggregate) and per run; peak CUDA memory
per run. If the sync-debug iterations raise, the message is recorded and the case runs again without them, so a
sync costs a finding, not the figure. Writes OUT (JSON) even when the case fails.
"""

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from repro import train as train_module
from repro.config import load_config, parse_settings


def run_case(args, sync_iters: int) -> dict:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    total = args.warm + sync_iters + args.iters
    settings = {"iters_per_epoch": total, "epochs_constant": 1, "epochs_decay": 0, "log_every": 10 ** 9,
                "checkpoint_every": 0, "checkpoint_minutes": 0}
    settings = parse_settings(args.set) | settings
    cfgs = [load_config(args.config, **(settings | {"seed": s})) for s in range(args.seeds)]
    runs = [args.work / args.name / f"seed-{s}" for s in range(args.seeds)]
    marks: dict[str, float] = {}

    def sync():
        if cuda:
            torch.cuda.synchronize()

    real_add = train_module.LossWatch.add

    def add(self, step, values):  # called once per iteration, after the step was queued
        real_add(self, step, values)
        if step == args.warm:
            sync()
            marks["warm"] = time.perf_counter()
            if cuda and sync_iters:
                torch.cuda.set_sync_debug_mode("error")
        if step == args.warm + sync_iters:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            sync()
            marks["start"] = time.perf_counter()
        if step == total:
            sync()
            marks["end"] = time.perf_counter()

    train_module.LossWatch.add = add
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    try:
        train_module.train_runs(cfgs, args.data, runs, device=args.device, progress=False, graphs=args.graphs,
                                amp=args.amp, compile=args.compile)
    finally:
        train_module.LossWatch.add = real_add
        if cuda:
            torch.cuda.set_sync_debug_mode(0)
    seconds = marks["end"] - marks["start"]
    k = args.seeds
    return {"ok": True, "runs": k, "iters_timed": args.iters, "seconds_timed": round(seconds, 4),
            "it_s": round(args.iters / seconds, 2),                 # pack iterations per second (= one run's)
            "aggregate_it_s": round(k * args.iters / seconds, 2),   # run-iterations per second, all runs together
            "per_run_it_s": round(args.iters / seconds, 2),
            "setup_and_warm_s": round(marks["warm"] - began, 2),
            "wall_s": round(time.perf_counter() - began, 2),
            "peak_mem_per_run_mib": round(torch.cuda.max_memory_allocated() / k / 2 ** 20, 1) if cuda else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="run folders go here (scratch, not the results folder)")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--config", default="cityscapes/cyclegan")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field (the dry run's sizes)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--seeds", type=int, default=1, help="K runs packed into one step")
    p.add_argument("--graphs", action="store_true")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warm", type=int, default=10)
    p.add_argument("--sync-iters", type=int, default=5)
    p.add_argument("--iters", type=int, default=100)
    args = p.parse_args()
    result = {"case": args.name, "device": args.device, "config": args.config, "graphs": args.graphs,
              "amp": args.amp, "compile": args.compile, "torch": torch.__version__}
    if torch.device(args.device).type == "cuda" and torch.cuda.is_available():
        result["device_name"] = torch.cuda.get_device_name()
    sync_iters = args.sync_iters if torch.device(args.device).type == "cuda" else 0
    result["sync_debug"] = "not run (CPU)" if not sync_iters else None
    try:
        try:
            result |= run_case(args, sync_iters)
            if sync_iters:
                result["sync_debug"] = f"ok: {sync_iters} iterations under set_sync_debug_mode('error')"
        except RuntimeError as err:
            if not sync_iters or "synchronizing" not in str(err):
                raise
            result["sync_debug"] = f"FAILED: {str(err).splitlines()[0][:300]}"
            traceback.print_exc()
            print("== again without the sync-debug iterations", flush=True)
            args.name += "-again"
            result |= run_case(args, 0)
    except BaseException as err:  # recorded, then re-raised: the step's exit status says it failed
        result |= {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
        args.json.write_text(json.dumps(result, indent=1))
        raise
    args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
