"""FCN-8s evaluation throughput (frames/s) on the current device.

Times the two halves of `repro evaluate labels2photo` separately, on frames made in memory:
  * preparation on the CPU: PIL bilinear upsampling of a 256x256 generated image to the label size
    (one worker process; the command runs --workers of them in parallel);
  * the device part: Caffe preprocessing, FCN-8s forward, argmax and the per-frame confusion counts,
    for each batch size, in float32 (as Caffe) and, on CUDA, with TF32 allowed.
The weights are random: throughput does not depend on them.

    python benchmarks/eval_fcn.py                        # full FCN-8s at 2048x1024 on CUDA, 256x128 on CPU
    python benchmarks/eval_fcn.py --device cpu --width 0.0625 --size 256x128 --frames 8
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro.eval.fcn import fcn8s  # noqa: E402
from repro.device import pick_device  # noqa: E402
from repro.eval.labels2photo import caffe_input, frame_confusions, upsample_to_label  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_device(model, device, size_hw, batch, frames, tf32):
    torch.backends.cudnn.allow_tf32 = tf32
    h, w = size_hw
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 19, (batch, h, w), dtype=np.uint8))
    steps = max(1, frames // batch)
    with torch.inference_mode():
        for i in range(steps + 1):  # the first step warms up (cuDNN autotuning, allocations)
            if i == 1:
                sync(device)
                start = time.perf_counter()
            x, gt = images.to(device), labels.to(device)
            pred = model(caffe_input(x)).argmax(dim=1)
            frame_confusions(gt, pred, 20).cpu()
        sync(device)
    seconds = time.perf_counter() - start
    peak = f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:.1f}" if device.type == "cuda" else "n/a"
    return steps * batch / seconds, peak


def time_upsampling(size_hw, frames):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    start = time.perf_counter()
    for _ in range(frames):
        upsample_to_label(image, size_hw)
    return frames / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=1.0, help="FCN channel multiplier (1 = the real net)")
    parser.add_argument("--size", help="label size WxH (default 2048x1024 on CUDA, 256x128 on CPU)")
    parser.add_argument("--batch-sizes", default="1,2,4", help="comma-separated")
    parser.add_argument("--frames", type=int, default=16, help="frames timed per setting")
    args = parser.parse_args()

    device = pick_device(args.device)
    w, h = (int(v) for v in (args.size or ("2048x1024" if device.type == "cuda" else "256x128")).split("x"))
    model = fcn8s(width=args.width).eval().to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"FCN-8s width {args.width:g} at {w}x{h} on {name}; torch {torch.__version__}")
    rows = []
    for tf32 in ([False, True] if device.type == "cuda" else [False]):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            try:
                fps, peak = time_device(model, device, (h, w), batch, args.frames, tf32)
            except torch.OutOfMemoryError:
                rows.append([batch, "tf32" if tf32 else "fp32", "out of memory", ""])
                torch.cuda.empty_cache()
                continue
            rows.append([batch, "tf32" if tf32 else "fp32", f"{fps:.2f}", peak])
    print(tabulate(rows, headers=["batch", "precision", "frames/s (device part)", "peak GiB"]))
    print(f"\nPIL bilinear 256x256 -> {w}x{h} (one CPU process): {time_upsampling((h, w), args.frames):.1f} frames/s")


if __name__ == "__main__":
    main()
