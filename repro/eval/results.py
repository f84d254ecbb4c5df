"""The result file every evaluation writes: metrics, per-class table, protocol choices, input hashes."""

import platform

import numpy as np

from repro import __version__
from repro.eval.groundtruth import CLASS_NAMES

# The version of each scoring direction's protocol, written into its results. Bump one when a change to its
# evaluator changes the numbers it gives: every kept score and result of that direction is then redone (repro.done).
PROTOCOL_VERSIONS = {"labels2photo": 1, "photo2labels": 1}


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
        "protocol_version": PROTOCOL_VERSIONS.get(task),
        "inputs": inputs,
        **extra,
        "confusion": np.asarray(conf).astype(int).tolist(),
        "software": {"repro": __version__, "python": platform.python_version()},
    }

