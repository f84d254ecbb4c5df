"""Pixels per second of the photo -> labels colour mapping: the 2^24 lookup table vs brute force.

    python benchmarks/palette_mapping.py [--frames 20] [--size 256] [--brute-frames 2]

Prints one table: for RGB and CIELAB, the one-off table build time, then pixels/s of the table gather
(repro.eval.palette.classify) and of the brute-force nearest colour (distance to every palette colour,
per pixel), and the ratio between them. Input: generator-like label maps (palette colours plus noise).
CPU only: the mapping is numpy.
"""

import argparse
import time

import numpy as np
from tabulate import tabulate

from repro.eval import palette


def label_like_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n blocky maps of palette colours with +-20 noise, like a generator's soft output."""
    colours, _ = palette.palette()
    rng = np.random.default_rng(seed)
    blocks = colours[rng.integers(0, len(colours), (n, size // 16, size // 16))]
    images = np.repeat(np.repeat(blocks, 16, axis=1), 16, axis=2).astype(int)
    return np.clip(images + rng.integers(-20, 21, images.shape), 0, 255).astype(np.uint8)


def rate(fn, images) -> float:
    start = time.perf_counter()
    for image in images:
        fn(image)
    return images[:, :, :, 0].size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames mapped through the table")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--brute-frames", type=int, default=2, help="frames mapped by brute force (slow)")
    args = parser.parse_args()

    images = label_like_images(args.frames, args.size)
    rows = []
    for space in palette.SPACES:
        start = time.perf_counter()
        palette.lookup_table(space)
        build = time.perf_counter() - start
        table = rate(lambda im: palette.classify(im, space), images)
        brute = rate(lambda im: palette.classify_brute_force(im, space), images[: args.brute_frames])
        same = all(np.array_equal(palette.classify(im, space), palette.classify_brute_force(im, space))
                   for im in images[: args.brute_frames])
        rows.append([space, f"{build:.2f}", f"{table:,.0f}", f"{brute:,.0f}", f"{table / brute:,.0f}x", same])
    print(f"{args.frames} frames of {args.size}x{args.size} (brute force on {args.brute_frames})")
    print(tabulate(rows, headers=["space", "table build s", "table px/s", "brute force px/s", "ratio", "agree"]))


if __name__ == "__main__":
    main()
