"""Cityscapes ground truth for both evaluation directions.

Generated images are matched to ground truth by their frame id (`{city}_{seq}_{frame}`), which is why
`repro data cityscapes` and `repro translate` keep Cityscapes names. Labels are read at full
resolution and never resized (resizing labels collapses the scores; PAPER.md section 8).
"""

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from PIL import Image

from repro import ReproError
from repro.data.frames import frame_id

N_CLASSES = 19
IGNORE = 255
CLASS_NAMES = [l.name for l in sorted((l for l in CITYSCAPES_LABELS if 0 <= l.trainId < 255), key=lambda l: l.trainId)]


def id_to_train_id() -> np.ndarray:
    """256-entry table: labelId -> trainId (255 for every ignored id)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for label in CITYSCAPES_LABELS:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            table[label.id] = label.trainId
    return table


def ground_truth_files(cityscapes: Path, split: str = "val") -> dict[str, Path]:
    """frame id -> gtFine labelIds PNG, from an extracted Cityscapes package root."""
    root = Path(cityscapes) / "gtFine" / split
    if not root.is_dir():
        raise ReproError(
            f"{root} does not exist. --cityscapes must be the folder holding the extracted official "
            f"packages (gtFine/ and leftImg8bit/): unzip gtFine_trainvaltest.zip there, or make a "
            f"synthetic one with `repro data synth-city --out DIR`."
        )
    files = {frame_id(p.name): p for p in sorted(root.glob("*/*_gtFine_labelIds.png"))}
    if not files:
        raise ReproError(f"no *_gtFine_labelIds.png under {root}/CITY/: is the gtFine package extracted completely?")
    return files


def pair_results(results: Path, truth: dict[str, Path]) -> list[tuple[Path, Path]]:
    """(generated image, labelIds) pairs, one per ground-truth frame; every frame must be present."""
    results = Path(results)
    generated = {}
    for path in sorted(results.iterdir()) if results.is_dir() else []:
        fid = frame_id(path.name)
        if fid is not None and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            if fid in generated:
                raise ReproError(f"two results for frame {fid} in {results}: {generated[fid].name} and {path.name}")
            generated[fid] = path
    if not generated:
        raise ReproError(
            f"no images named like `frankfurt_000000_000294_leftImg8bit.png` in {results}. "
            f"Write them with `repro translate`, which keeps the Cityscapes frame names."
        )
    missing = sorted(set(truth) - set(generated))
    extra = sorted(set(generated) - set(truth))
    if missing or extra:
        raise ReproError(
            f"{results} does not match the ground truth: {len(missing)} frame(s) missing "
            f"(first: {missing[:3]}), {len(extra)} frame(s) with no ground truth (first: {extra[:3]}). "
            f"Translate the whole val split with `repro translate` and evaluate against the same Cityscapes folder."
        )
    return [(generated[f], truth[f]) for f in sorted(truth)]


def load_train_ids(path: Path) -> np.ndarray:
    """Full-resolution trainId map (uint8, 255 = ignored) of a *_gtFine_labelIds.png."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise ReproError(f"{path} has mode {image.mode}; a gtFine labelIds file is 8-bit grayscale. Is it a colour map?")
            ids = np.asarray(image)
    except OSError as err:  # missing, truncated or not an image
        raise ReproError(f"cannot read {path} ({err}): re-extract gtFine_trainvaltest.zip.") from err
    if ids.max(initial=0) > 255:
        raise ReproError(f"{path} holds label ids above 255; it is not a Cityscapes labelIds file.")
    return id_to_train_id()[ids.astype(np.uint8)]
