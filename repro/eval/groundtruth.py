"""Cityscapes ground truth for both evaluation directions.

Generated images are matched to ground truth by their frame id (`{city}_{seq}_{frame}`), which is why
`repro data cityscapes` and `repro translate` keep Cityscapes names. Labels are read at full
resolution and never resized (resizing labels collapses the scores; docs/protocol.md#pitfalls-of-the-originals).
"""

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from repro import ReproError
from repro.data.frames import frame_id
from repro.data.images import open_image

N_CLASSES = 19
IGNORE = 255
CLASS_NAMES = [l.name for l in sorted((l for l in CITYSCAPES_LABELS if 0 <= l.trainId < 255), key=lambda l: l.trainId)]

RESULT_SUFFIXES = (".png", ".jpg", ".jpeg")


def known_ids() -> np.ndarray:
    """256 booleans: which values a gtFine labelIds file may hold (the ids of cityscapesscripts' table, 0..33;
    license plate's id -1 is never written)."""
    known = np.zeros(256, dtype=bool)
    known[[label.id for label in CITYSCAPES_LABELS if 0 <= label.id < 256]] = True
    return known


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
    if not results.is_dir():
        raise ReproError(
            f"the results folder {results} {'is a file, not a folder' if results.exists() else 'does not exist'}. "
            f"Give the folder `repro translate --out` wrote (check --results)."
        )
    generated, other_format = {}, []
    for path in sorted(results.iterdir()):
        fid = frame_id(path.name)
        if fid is None or path.name.startswith("."):
            continue
        if path.suffix.lower() not in RESULT_SUFFIXES:
            other_format.append(path)
            continue
        if fid in generated:
            raise ReproError(f"two results for frame {fid} in {results}: {generated[fid].name} and {path.name}")
        generated[fid] = path
    if not generated and other_format:
        suffixes = sorted({p.suffix or "(none)" for p in other_format})
        raise ReproError(
            f"{results} holds {len(other_format)} results named by Cityscapes frame, but as {', '.join(suffixes)} "
            f"(e.g. {other_format[0].name}); the evaluation reads PNG (lossless; JPEG is accepted). Convert them "
            f"to PNG, or write them again with `repro translate`, which writes PNGs."
        )
    if not generated:
        listing = sorted(p.name for p in results.iterdir() if not p.name.startswith("."))
        raise ReproError(
            f"no images named like `frankfurt_000000_000294_leftImg8bit.png` in {results} "
            f"({f'it holds {len(listing)} other files, e.g. {listing[0]}' if listing else 'it is empty'}). "
            f"Write them with `repro translate`, which keeps the Cityscapes frame names."
        )
    missing = sorted(set(truth) - set(generated))
    extra = sorted(set(generated) - set(truth))
    if missing or extra:
        raise ReproError(
            f"{results} does not match the ground truth: {len(missing)} frame(s) missing "
            f"(first: {missing[:3]}), {len(extra)} frame(s) with no ground truth (first: {extra[:3]})"
            f"{f', and {len(other_format)} not PNG or JPEG (e.g. {other_format[0].name}), which are not read' if other_format else ''}. "
            f"Translate the whole val split with `repro translate` and evaluate against the same Cityscapes folder."
        )
    return [(generated[f], truth[f]) for f in sorted(truth)]


def load_train_ids(path: Path) -> np.ndarray:
    """Full-resolution trainId map (uint8, 255 = ignored) of a *_gtFine_labelIds.png."""
    image = open_image(path, fix="re-extract gtFine_trainvaltest.zip")
    if image.mode not in ("L", "P", "I", "I;16"):
        raise ReproError(f"{path} has mode {image.mode}; a gtFine labelIds file is 8-bit grayscale. Is it a colour map?")
    ids = np.asarray(image)
    if ids.max(initial=0) > 255:
        raise ReproError(f"{path} holds label ids above 255; it is not a Cityscapes labelIds file.")
    ids = ids.astype(np.uint8)
    unknown = ~known_ids()[ids]
    if unknown.any():  # a damaged or foreign file: silently ignoring those pixels would score it as if they were void
        row, col = (int(v[0]) for v in np.nonzero(unknown))
        values = np.unique(ids[unknown])
        raise ReproError(
            f"{path} holds label id {ids[row, col]} (first at row {row}, column {col}; {int(unknown.sum())} pixels, "
            f"ids {values[:8].tolist()}{' ...' if len(values) > 8 else ''}) that is not a Cityscapes label id "
            f"(cityscapesscripts.helpers.labels has 0..33). The file is damaged or not a gtFine *_labelIds.png: "
            f"re-extract it from gtFine_trainvaltest.zip."
        )
    return id_to_train_id()[ids]
