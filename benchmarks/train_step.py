"""Iterations per second of a full CycleGAN training step (G, F, D_X, D_Y), on the current device.

    python benchmarks/train_step.py [--device auto|cpu|cuda] [--iters 10] [--amp] [--channels-last]

Prints one table: the paper's config (128x128, resnet_6blocks, Lua update order) and the 256x256 /
resnet_9blocks config, each with its seconds per iteration and the ratio between them.
"""

import argparse
import contextlib
import time

import torch
from tabulate import tabulate

from repro.config import make_config
from repro.pool import ImagePool
from repro.device import pick_device
from repro.methods.cyclegan import build_nets, train_step

CASES = {
    "paper (128, resnet_6blocks, sequential)": dict(),
    "256, resnet_9blocks, sequential": dict(load_size=286, crop_size=256, generator="resnet_9blocks"),
    "port (256, resnet_9blocks, joint)": dict(profile="pytorch", lambda_identity=0.0),
}


def measure(overrides: dict, device, iters: int, amp: bool, channels_last: bool) -> float:
    overrides = dict(overrides)
    cfg = make_config(overrides.pop("profile", "paper"), **overrides)
    nets = {n: net.to(device) for n, net in build_nets(cfg).items()}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    nets = {n: net.to(memory_format=fmt) for n, net in nets.items()}
    opts = {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n, net in nets.items()}
    pools = {"D_X": ImagePool(cfg.pool_size), "D_Y": ImagePool(cfg.pool_size)}
    rng = torch.Generator().manual_seed(0)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp and device.type == "cuda" else contextlib.nullcontext
    x = (torch.rand(1, 3, cfg.crop_size, cfg.crop_size, device=device) * 2 - 1).contiguous(memory_format=fmt)
    y = (torch.rand(1, 3, cfg.crop_size, cfg.crop_size, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
        train_step(nets, opts, pools, x, y, cfg, rng, autocast)
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        losses = train_step(nets, opts, pools, x, y, cfg, rng, autocast)
        float(losses["D_Y"])  # the training loop reads every loss each iteration (NaN check)
    sync()
    return (time.perf_counter() - start) / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows, base = [], None
    for label, overrides in CASES.items():
        seconds = measure(overrides, device, args.iters, args.amp, args.channels_last)
        base = base or seconds
        rows.append([label, f"{1 / seconds:.2f}", f"{seconds * 1000:.0f}", f"{seconds / base:.2f}x"])
    print(f"device: {name}; torch {torch.__version__}; amp={args.amp}; channels_last={args.channels_last}; "
          f"{args.iters} timed iterations after 3 warm-up")
    print(tabulate(rows, headers=["config", "it/s", "ms/it", "time vs paper config"]))


if __name__ == "__main__":
    main()
