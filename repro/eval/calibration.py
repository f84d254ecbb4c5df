"""The segmenter's calibration rule, in one place: the paper's ground-truth row and its accepted band
(expected/calibration.toml), where a segmenter's calibration is kept (SEG.calibration.json), and the verdict
that labels every labels -> photo score comparable to the paper or not.

Comparable means comparable: a segmenter's scores are read against the paper's only when
  1. it is one the paper's numbers could have come from: imported from the pix2pix authors' Caffe weights,
     or trained on real Cityscapes at full width (VGG16's channels), and
  2. its calibration scored the real Cityscapes val photos at 256x256, and
  3. that calibration lies inside the band around pix2pix's ground-truth row.
A segmenter trained on (or calibrated against) the synthetic city, or at a reduced width, is reported as
such whatever its calibration says: landing near 0.80/0.26/0.21 on synthetic photos says nothing about
Cityscapes.

`repro segmenter calibrate` computes the scores (repro.eval.segmenter); everything that reads or judges them
(labels2photo results, `repro reproduce`, the report) goes through this module.
"""

import json
import tomllib
from pathlib import Path

from repro import ReproError
from repro.data.synth_city import MARKER as SYNTHETIC_MARKER
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


def is_synthetic(cityscapes) -> bool:
    """Whether a Cityscapes-layout folder is the synthetic city (repro.data.synth_city leaves its marker)."""
    return cityscapes is not None and (Path(cityscapes) / SYNTHETIC_MARKER).is_file()


def scored_data(cityscapes: Path, frames: int, size: str) -> dict:
    """What a calibration actually scored, in words a reader checks against the paper's row."""
    synthetic = is_synthetic(cityscapes)
    return {"images": frames, "size": size, "synthetic": synthetic,
            "source": ("the synthetic city's val photos (repro.data.synth_city), not Cityscapes" if synthetic
                       else "real Cityscapes val photos (leftImg8bit/val)")}


def comparability(segmenter: dict, scored: dict | None, in_band: bool) -> tuple[bool, str]:
    """(comparable to the paper, why) for a segmenter's metadata (load_segmenter's info), what its calibration
    scored (scored_data) and whether it lies in the band. The rule is in this module's docstring."""
    source, width = segmenter.get("source"), float(segmenter.get("width", 1.0))
    trained_on = segmenter.get("trained_on") or {}  # the synthetic city's marker tells, where it still is
    trained_synthetic = trained_on.get("synthetic", is_synthetic(trained_on.get("cityscapes")))
    if (scored or {}).get("synthetic") or trained_synthetic:
        return False, "synthetic segmenter: calibrated against the synthetic city, not comparable to the paper"
    if source == "trained" and width != 1.0:
        trunk = (segmenter.get("training") or {}).get("trunk", "scratch")
        return False, (f"reduced-width segmenter (width {width:g}, {trunk}): not comparable to the paper "
                       "(only the pix2pix authors' weights or a full-width net trained on Cityscapes are)")
    if source not in ("caffemodel", "trained"):
        return False, f"segmenter of unknown origin (source {source!r}): not comparable to the paper"
    if scored is None:
        return False, "calibration does not say what it scored: calibrate again"
    if not in_band:
        return False, "outside the calibration band: labels -> photo scores are not comparable to the paper's"
    return True, "comparable to the paper: " + ("the pix2pix authors' weights" if source == "caffemodel" else
                                                "full-width segmenter trained on Cityscapes") + ", calibration inside the band"


def describe(calibration: dict | None) -> str:
    """One line for `repro check`, the report and `repro evaluate`: comparable or not, and why."""
    if not calibration or calibration.get("comparable_to_paper") is None:
        return (calibration or {}).get("note") or "unknown (segmenter not calibrated)"
    reason = calibration.get("comparability")
    if reason:
        return reason
    return "comparable to the paper" if calibration["comparable_to_paper"] else "NOT comparable to the paper"


def read(segmenter: Path, sha256: str, say_stale: bool = False) -> dict | None:
    """The kept calibration of this segmenter file, judged by today's rule (a file written before the rule
    named what it scored is judged again), or None when there is none or it was made with another file
    (`say_stale`: say so, for a caller that calibrates again)."""
    path = calibration_file(segmenter)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro segmenter calibrate` again.") from None
    key = {"segmenter.sha256": sha256}  # no protocol version: a kept calibration is judged again (rejudged)
    return rejudged(data) if is_current(data, key, what=str(path) if say_stale else None) else None


def rejudged(data: dict) -> dict:
    """A kept calibration with comparable_to_paper, comparability and scored as this module's rule gives them."""
    if data.get("segmenter", {}).get("source") is None or not data.get("metrics"):
        return data  # too little recorded to judge again: as written
    inputs = data.get("inputs", {})
    scored = data.get("scored") or (scored_data(inputs["cityscapes"], inputs.get("frames"), "256x256")
                                    if inputs.get("cityscapes") else None)
    in_band = verdict(data["metrics"], {"paper": data["paper"], "band": data["band"]})[1]
    comparable, reason = comparability(data["segmenter"], scored, in_band)
    return data | {"comparable_to_paper": comparable, "comparability": reason, "scored": scored}


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
            "comparability": data.get("comparability"), "metrics": data["metrics"], "paper": data["paper"],
            "band": data["band"], "scored": data.get("scored")}


def summary(data: dict) -> dict:
    """The part of a calibration a result's provenance records."""
    return {k: data.get(k) for k in ("metrics", "paper", "band", "deltas", "comparable_to_paper", "comparability",
                                     "scored")}
