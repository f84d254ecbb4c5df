"""Photo -> labels score (the paper's Tables 3 and 5): classify generated colour label maps, compare with
the Cityscapes ground truth, and score with the FCN-score formulas.

No official script exists (docs/protocol.md#photo-to-labels); the choices made here, all recorded in the result:
- each pixel gets the class of the nearest colour of the full Cityscapes colour table (repro.eval.palette):
  RGB distance by default (the authors' advice), CIELAB as `--space lab`;
- a pixel whose nearest colour is a void colour is predicted "void": an extra confusion column (trainId
  19) that counts as wrong for its ground-truth row and is never dropped (dropping it would reward a
  generator that paints everything it is unsure of black);
  `--palette train` is the other reading: only the 19 class colours, so void is never predicted;
- `--compare full` (default): the class map is upsampled (nearest) to the full-resolution labels, never
  the labels resized, like the FCN protocol; `--compare generated`: the labels are downsampled (nearest)
  to the generated size instead. Both use PIL's NEAREST filter (pixel centres). Ground-truth pixels
  with an ignored id (trainId 255) are not scored, as in the FCN protocol;
- one confusion matrix over all frames; per-pixel, per-class and IoU exactly as repro.eval.metrics.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from tabulate import tabulate
from tqdm import tqdm

from repro import ReproError, translations
from repro.data.images import open_image
from repro.config import COMPARE
from repro.eval import palette
from repro.eval.groundtruth import CLASS_NAMES, N_CLASSES, ground_truth_files, load_train_ids, pair_results
from repro.eval.metrics import EPS, confusion_matrix, scores
from repro.eval.results import build_result
from repro.io import sha256_files


def load_rgb(path: Path) -> np.ndarray:
    return np.asarray(open_image(path, fix="regenerate it with `repro translate`").convert("RGB"))


def resize_nearest(class_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) map -> size (W, H) with PIL's NEAREST filter."""
    if class_map.shape[::-1] == tuple(size):
        return class_map
    return np.asarray(Image.fromarray(class_map).resize(size, Image.NEAREST))


def frame_confusion(image: np.ndarray, gt: np.ndarray, space: str = "rgb", compare: str = "full", cache_dir=None,
                    palette_kind: str = "full") -> np.ndarray:
    """19 x 20 confusion matrix of one frame: generated RGB label map vs full-resolution trainIds
    (column 19 = predicted void)."""
    pred = palette.classify(image, space, cache_dir, palette_kind)
    if compare == "full":
        pred = resize_nearest(pred, gt.shape[::-1])
    else:
        gt = resize_nearest(gt, pred.shape[::-1])
    return confusion_matrix(gt, pred, N_CLASSES, n_pred=N_CLASSES + 1)


def evaluate(results: Path, cityscapes: Path, space: str = "rgb", compare: str = "full", split: str = "val",
             cache_dir: Path | None = None, progress: bool = True, palette_kind: str = "full") -> dict:
    """Scores every generated label map in `results` against `cityscapes`/gtFine/`split`; returns the
    result dict (metrics, per-class table, protocol choices, void column, input hashes)."""
    if space not in palette.SPACES:
        raise ReproError(f"unknown colour space {space!r}; choose one of {palette.SPACES}")
    if compare not in COMPARE:
        raise ReproError(f"unknown comparison {compare!r}; choose one of {COMPARE}")
    if palette_kind not in palette.PALETTES:
        raise ReproError(f"unknown palette {palette_kind!r}; choose one of {palette.PALETTES}")
    translations.check(results, "photo2labels")
    pairs = pair_results(Path(results), ground_truth_files(Path(cityscapes), split))
    palette.lookup_table(space, cache_dir, palette_kind)  # build once, before the progress bar starts
    conf = np.zeros((N_CLASSES, N_CLASSES + 1), dtype=np.int64)
    sizes = set()
    for generated, labels in tqdm(pairs, desc=f"photo2labels ({space}, {compare})", unit="frame", disable=not progress):
        image = load_rgb(generated)
        sizes.add(f"{image.shape[1]}x{image.shape[0]}")
        conf += frame_confusion(image, load_train_ids(labels), space, compare, cache_dir, palette_kind)
    score = scores(conf)
    void = conf[:, palette.VOID]
    protocol = {
        "mapping": "nearest colour of the full Cityscapes colour table (cityscapesscripts, void ids included)"
        if palette_kind == "full" else "nearest colour of the 19 trainable classes' colours (void never predicted)",
        "palette": palette_kind,
        "space": space,
        "compare": compare,
        "resize": "nearest (PIL): class map -> label size" if compare == "full"
        else "nearest (PIL): labels -> generated size",
        "void_column": palette.VOID,
        "void_rule": "colours used only by ignored ids -> void (counted as wrong); pole/polegroup -> pole, "
                     "car/license plate -> car; exact ties -> the colour of the lower label id",
        "palette_sha256": palette.palette_sha256(palette_kind),
        "ignored_ground_truth": "trainId 255 pixels are not scored",
        "denominator_eps": EPS,
    }
    inputs = {
        "results": str(results),
        "results_sha256": sha256_files(g for g, _ in pairs),
        "cityscapes": str(cityscapes),
        "split": split,
        "ground_truth_sha256": sha256_files(l for _, l in pairs),
        "frames": len(pairs),
        "generated_sizes": sorted(sizes),
    }
    void_info = {
        "predicted_pixels": int(void.sum()),
        "fraction_of_scored_pixels": float(void.sum() / max(conf.sum(), 1)),
        "per_class": {name: int(n) for name, n in zip(CLASS_NAMES, void)},
    }
    return build_result("photo2labels", score, conf, protocol, inputs, void=void_info)


def summary(result: dict) -> str:
    """The three metrics, then per-class accuracy / IoU / void share, as plain-text tables."""
    m = result["metrics"]
    head = tabulate([[m["pixel_acc"], m["class_acc"], m["iou"]]], headers=["per-pixel acc", "per-class acc", "class IoU"],
                    floatfmt=".3f")
    rows = [[r["name"], r["acc"], r["iou"], r["gt_pixels"], result["void"]["per_class"][r["name"]]] for r in result["per_class"]]
    table = tabulate(rows, headers=["class", "acc", "IoU", "gt pixels", "predicted void"], floatfmt=".3f")
    p = result["protocol"]
    return (f"photo -> labels, {result['inputs']['frames']} frames, space={p['space']}, compare={p['compare']}, "
            f"palette={p.get('palette', 'full')}, "
            f"void predictions: {result['void']['predicted_pixels']} pixels "
            f"({result['void']['fraction_of_scored_pixels']:.1%}, counted as wrong)\n\n{head}\n\n{table}")
