"""Same-seed CPU fingerprints of every method, through the CLI (so they survive refactors): the check that a
change to training, data loading, networks, losses or the step keeps same-seed CPU results bit-identical.

    .venv/bin/python benchmarks/fingerprint.py --work /tmp/fp-after > after.txt
    (the same in a checkout of the base commit) > before.txt; diff before.txt after.txt   # nothing: identical

Trains each case a few iterations (--iters-per-epoch 3 --epochs 2) on a tiny blocky dataset written here,
then hashes every tensor of checkpoint.pt (nets, optimisers, pools, RNG states, position; by key, sorted), losses.jsonl bytes and every exported
.pth. One line per case and file. Uses OMP_NUM_THREADS=1. --only NAME runs a subset.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

from pathlib import Path
import numpy as np
from PIL import Image


CASES = {
    "cyclegan": ["smoke/cyclegan"],
    "cycle_alone": ["smoke/cycle_alone"],
    "gan_alone": ["smoke/gan_alone"],
    "gan_forward": ["smoke/gan_forward"],
    "gan_backward": ["smoke/gan_backward"],
    "pix2pix": ["smoke/pix2pix"],
    "simgan": ["smoke/simgan"],
    "feature_gan": ["smoke/feature_gan"],
    "cogan": ["smoke/cogan"],
    "bigan": ["smoke/bigan"],
    "cyclegan_joint": ["smoke/cyclegan", "--set", "update_order=joint"],
    "cyclegan_pytorch": ["smoke/cyclegan", "--set", "profile=pytorch"],
    "packed3": ["smoke/cyclegan", "--seeds", "0", "1", "2"],
}


def write_data(root: Path):
    rng = np.random.default_rng(0)
    for folder, n in (("trainB", 6), ("trainA", 6), ("testB", 2), ("testA", 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            blocks = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(np.kron(blocks, np.ones((12, 12, 1), dtype=np.uint8))).save(
                root / folder / f"aachen_000000_{i:06d}_{folder}.png")


def tensor_hash(obj, h, prefix=""):
    import torch
    if isinstance(obj, torch.Tensor):
        h.update(prefix.encode()); h.update(obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            tensor_hash(obj[k], h, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            tensor_hash(v, h, f"{prefix}/{i}")


def fingerprint(folder: Path):
    import torch
    out = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.name == "losses.jsonl":
            out.append((str(rel), hashlib.sha256(f.read_bytes()).hexdigest()[:16]))
        elif f.suffix in (".pt", ".pth") and not f.name.startswith("."):
            state = torch.load(f, map_location="cpu", weights_only=False)
            h = hashlib.sha256()
            keep = state  # every tensor: nets, opts, pools, rng, position
            tensor_hash(keep, h)
            out.append((str(rel), h.hexdigest()[:16]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first): data and run folders")
    ap.add_argument("--only", nargs="*", help=f"run only these cases (of {', '.join(CASES)})")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    data = a.work / "data"; write_data(data)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name, args in CASES.items():
        if a.only and name not in a.only:
            continue
        out = a.work / name
        cmd = [sys.executable, "-m", "repro.cli", "train", *args, "--data", str(data), "--out", str(out),
               "--device", "cpu", "--iters-per-epoch", "3", "--epochs", "2", "--quiet"]
        if "--seeds" not in args:
            cmd += ["--seed", "0"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name} FAILED rc={done.returncode}: {done.stderr[-400:]}", flush=True); continue
        for rel, h in fingerprint(out):
            print(f"{name} {rel} {h}", flush=True)


if __name__ == "__main__":
    main()
