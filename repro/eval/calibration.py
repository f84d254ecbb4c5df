"""The segmenter's calibration rule, in one place: the paper's ground-truth row and its accepted band
(expected/calibration.toml), where a segmenter's calibration is kept (SEG.calibration.json), and the verdict
that labels every labels -> photo score comparable to the paper or not.

`repro segmenter calibrate` computes the scores (repro.eval.segmenter); everything that reads or judges them
(labels2photo results, `repro reproduce`, the report) goes through this module.
"""

import json
import tomllib
from pathlib import Path

from repro import ReproError
from repro.done import is_current
from repro.resources import expected_file

METRICS = ("pixel_acc", "class_acc", "iou")


def calibration_file(segmenter: Path) -> Path:
    """SEG.pt -> SEG.calibration.json, where `repro segmenter calibrate` writes its verdict."""
    segmenter = Path(segmenter)
    return segmenter.with_name(segmenter.stem + ".calibration.json")


def load_band(path: Path | None = None) -> dict:
    """{"paper": {metric: value}, "band": {metric: half-width}} from expected/calibration.toml (shipped)."""
    source = expected_file("calibration.toml") if path is None else Path(path)
    if not source.is_file():
        raise ReproError(f"{source} is missing; it holds the paper's ground-truth row and the accepted band "
                         "(restore it from git, or reinstall repro).")
    return tomllib.loads(source.read_text())


def verdict(metrics: dict, band: dict) -> tuple[dict, bool]:
    """Distance of each metric from the paper's row, and whether all three lie inside the band."""
    deltas = {k: metrics[k] - band["paper"][k] for k in METRICS}
    return deltas, all(abs(d) <= band["band"][k] + 1e-9 for k, d in deltas.items())


def read(segmenter: Path, sha256: str) -> dict | None:
    """The kept calibration of this segmenter file, or None when there is none or it was made with another file."""
    path = calibration_file(segmenter)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro segmenter calibrate` again.") from None
    return data if is_current(data, {"segmenter.sha256": sha256}) else None


def status(segmenter: Path, sha256: str) -> dict:
    """The segmenter's calibration verdict, or why there is none. comparable_to_paper is None
    when the segmenter was never calibrated (or changed since)."""
    path = calibration_file(segmenter)
    if not path.is_file():
        return {"file": str(path), "comparable_to_paper": None,
                "note": f"not calibrated: run `repro segmenter calibrate --segmenter {segmenter} --cityscapes DIR`"}
    data = read(segmenter, sha256)
    if data is None:
        return {"file": str(path), "comparable_to_paper": None,
                "note": "the calibration was made with a different segmenter file; calibrate again"}
    return {"file": str(path), "comparable_to_paper": data["comparable_to_paper"],
            "metrics": data["metrics"], "paper": data["paper"], "band": data["band"]}


def summary(data: dict) -> dict:
    """The part of a calibration a result's provenance records."""
    return {k: data.get(k) for k in ("metrics", "paper", "band", "deltas", "comparable_to_paper")}
