"""Smoke-scale CycleGAN step time with 1 vs 2 torch threads, on an idle machine and beside CPU-bound processes.

    python benchmarks/cpu_threads.py [--iters 20] [--rounds 3] [--busy 1]

Why: at smoke scale the nets are tiny, so a second intra-op thread mostly waits for the first; when another
process holds a core, torch's spinning threads stall each other (a smoke run was seen going from 0.05 s to
4-9 s per iteration with 2 threads). This measures wall time per step (what a user waits) for each thread
count, with 0 and then `--busy` extra busy-loop processes that this script starts and stops itself, in
interleaved rounds. repro.device.CPU_THREADS holds the choice the results support.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro.config import load_config
from repro.methods import METHODS


def step_seconds(parts, x, y, rng, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        terms = parts.step(x, y, rng)
    float(sum(terms.values()))
    return (time.perf_counter() - start) / iters


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes to run beside the step")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)
    cfg = load_config("smoke/cyclegan")
    parts = METHODS["cyclegan"].build(cfg, torch.device("cpu"))
    rng = torch.Generator().manual_seed(0)
    x, y = (torch.rand(1, 3, cfg.crop_size, cfg.crop_size) * 2 - 1 for _ in "xy")
    threads = [int(t) for t in args.threads.split(",")]
    results = {}
    for busy in (0, args.busy):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            times = {t: [] for t in threads}
            for _ in range(args.rounds):
                for t in threads:
                    torch.set_num_threads(t)
                    step_seconds(parts, x, y, rng, 2)  # settle the thread pool
                    times[t].append(step_seconds(parts, x, y, rng, args.iters))
            for t in threads:
                results[(busy, t)] = statistics.median(times[t])
        finally:
            for p in procs:
                p.kill()
                p.wait()
    rows = [[busy, t, f"{s * 1000:.0f}", f"{s / results[(0, threads[0])]:.2f}x"] for (busy, t), s in results.items()]
    print(f"smoke step (32x32, resnet_6blocks, 16/16), wall time, median of {args.rounds} rounds x {args.iters}; "
          f"{len(__import__('os').sched_getaffinity(0))} cores visible")
    print(tabulate(rows, headers=["busy processes", "torch threads", "ms per step",
                                  f"vs idle, {threads[0]} thread"]))


if __name__ == "__main__":
    main()
