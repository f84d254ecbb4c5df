"""The result file every evaluation writes: metrics, per-class table, protocol choices, input hashes."""

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from repro import __version__
from repro.data.download import sha256_file  # noqa: F401 (the project's one file hasher, used from here)
from repro.eval.groundtruth import CLASS_NAMES




def sha256_files(paths) -> str:
    """One hash over names and contents, so the same images under the same names give the same hash."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def per_class_table(score: dict, conf: np.ndarray) -> list[dict]:
    """Per-class accuracy and IoU by name, with the ground-truth pixel count, so swapped classes show."""
    return [
        {"train_id": i, "name": name, "acc": score["per_class_acc"][i], "iou": score["per_class_iou"][i],
         "gt_pixels": int(conf[i].sum())}
        for i, name in enumerate(CLASS_NAMES)
    ]


def build_result(task: str, score: dict, conf: np.ndarray, protocol: dict, inputs: dict, **extra) -> dict:
    return {
        "task": task,
        "metrics": {k: score[k] for k in ("pixel_acc", "class_acc", "iou")},
        "per_class": per_class_table(score, conf),
        "protocol": protocol,
        "inputs": inputs,
        **extra,
        "confusion": np.asarray(conf).astype(int).tolist(),
        "software": {"repro": __version__, "python": platform.python_version()},
    }


def write_json(path: Path, data: dict) -> Path:
    """Atomic write: a crash never leaves a truncated result that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path
