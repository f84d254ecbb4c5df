"""The report's figures (OUT/figures/*.png at 150 dpi): validation examples in both directions, per-class
IoU with seed error bars, and training losses (generator and discriminator terms on separate axes, one
name per term across methods, lightly smoothed)."""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cityscapesscripts.helpers.labels import trainId2label  # noqa: E402
from PIL import Image  # noqa: E402

from repro.data.frames import frame_id  # noqa: E402
from repro.eval.groundtruth import CLASS_NAMES  # noqa: E402

DPI = 150
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8})


def colourise(train_ids: np.ndarray) -> np.ndarray:
    """trainId map (19 = void) -> RGB with the Cityscapes colours; void is black."""
    table = np.zeros((256, 3), np.uint8)
    for tid in range(len(CLASS_NAMES)):
        table[tid] = trainId2label[tid].color
    return table[train_ids]


def by_frame(folder: Path) -> dict[str, Path]:
    return {frame_id(p.name): p for p in sorted(Path(folder).glob("*.png")) if frame_id(p.name)}


def display_width(path: Path) -> int:
    """CSS pixels that show a figure at the size it was drawn (its fonts at their point size)."""
    with Image.open(path) as image:
        return round(image.size[0] * 96 / DPI)


def size_of(path: Path) -> str:
    with Image.open(path) as image:
        return "{}x{}".format(*image.size)


def _grid(columns: list[str], frames: list[str], images: list[list], title: str, out: Path) -> Path:
    fig, axes = plt.subplots(len(frames), len(columns), figsize=(1.9 * len(columns), 1.95 * len(frames) + 0.5),
                             squeeze=False)
    for i, frame in enumerate(frames):
        for j, (ax, image) in enumerate(zip(axes[i], images[i])):
            picture = image if isinstance(image, np.ndarray) else np.asarray(Image.open(image).convert("RGB"))
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j])
        axes[i][0].set_ylabel(frame, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def example_figures(folder: Path, data: Path | None, figures: Path, key: str, n: int = 3) -> dict:
    """Two grids of the first n val frames of one seed: labels -> photo (label map, ours, real photo) and
    photo -> labels (photo, ours, its nearest-palette classes, ground truth). Returns
    {"figures": [{"path", "caption"}], "notes": [why a grid is missing]}."""
    from repro.eval import palette

    made = {"figures": [], "notes": []}
    if data is None or not Path(data).is_dir():
        made["notes"].append(f"Examples: the prepared dataset ({Path(data).name if data else 'unknown'}) is not "
                             "where reproduce.json says; no example grid.")
        return made
    labels, photos = by_frame(Path(data) / "testB"), by_frame(Path(data) / "testA")
    fake_photos, fake_labels = by_frame(folder / "labels2photo"), by_frame(folder / "photo2labels")
    frames = [f for f in sorted(labels) if f in photos and f in fake_photos and f in fake_labels][:n]
    if not frames:
        made["notes"].append("Examples: no translated val frame found; no example grid.")
        return made
    seed = folder.name
    ours, inputs = size_of(fake_photos[frames[0]]), size_of(labels[frames[0]])
    sizes = f"inputs {inputs}, our outputs {ours}, all shown at one size (nearest-neighbour upscaling)"
    path = _grid(["label map (input)", "ours: photo", "real photo"], frames,
                 [[labels[f], fake_photos[f], photos[f]] for f in frames],
                 f"labels -> photo, {seed.replace('-', ' ')}", figures / f"{key}_labels2photo.png")
    made["figures"].append({"path": path, "caption": f"labels -> photo, first {len(frames)} val frames, {seed}; {sizes}."})
    rows = []
    for f in frames:
        generated = np.asarray(Image.open(fake_labels[f]).convert("RGB"))
        rows.append([photos[f], fake_labels[f], colourise(palette.classify(generated)), labels[f]])
    path = _grid(["photo (input)", "ours: label map", "nearest-palette\nclasses (scored)", "ground truth"], frames, rows,
                 f"photo -> labels, {seed.replace('-', ' ')}", figures / f"{key}_photo2labels.png")
    made["figures"].append({"path": path, "caption": f"photo -> labels, the same frames; the nearest-palette classes "
                                                     f"are what the scores count; {sizes}."})
    return made


def iou_figure(results: list[dict], out: Path) -> dict:
    """Per-class IoU of both directions: mean over seeds with std error bars; a class without ground-truth
    pixels is marked `absent` (its 0 is not a failure)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    n = len(results)
    for ax, direction in zip(axes, ("labels2photo", "photo2labels")):
        iou = np.array([[c["iou"] for c in r["per_class"][direction]] for r in results])
        present = np.array([c.get("gt_pixels", 1) > 0 for c in results[0]["per_class"][direction]])
        x = np.arange(len(CLASS_NAMES))
        mean = np.where(present, iou.mean(axis=0), 0.0)
        err = np.where(present, iou.std(axis=0, ddof=1), 0.0) if n > 1 else None
        colours = [np.array(trainId2label[i].color) / 255 for i in x]
        ax.bar(x[present], mean[present], color=[c for c, p in zip(colours, present) if p], edgecolor="black",
               linewidth=0.5, yerr=None if err is None else err[present], capsize=2, error_kw={"linewidth": 0.8})
        for i in x[~present]:
            ax.text(i, 0.01, "absent", rotation=90, ha="center", va="bottom", fontsize=8, color="0.4")
        ax.set_xticks(x, CLASS_NAMES, rotation=70, fontsize=8)
        ax.set_title(f"{direction.replace('2', ' -> ')}: mean over {n} seed(s)" + (", bars: std" if n > 1 else ""))
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.8, len(x) - 0.2)
        ax.grid(axis="y", linewidth=0.3)
    axes[0].set_ylabel("IoU on the val frames")
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    caption = "Per-class IoU of the val frames, both directions" + (f"; error bars: std over {n} seeds" if n > 1 else "")
    absent = absent_classes(results[0])
    if absent:
        caption += f"; absent (no pixel in the ground truth, so no IoU): {', '.join(absent)}"
    return {"path": out, "caption": caption + "."}


def absent_classes(result: dict) -> list[str]:
    """Classes without a ground-truth pixel in the val frames (either direction's scoring)."""
    names = []
    for direction in ("labels2photo", "photo2labels"):
        names += [c["name"] for c in result["per_class"][direction] if c.get("gt_pixels", 1) == 0 and c["name"] not in names]
    return names


# ------------------------------------------------------------------------------ loss curves

SIDES = {"G": "G: labels -> photo", "F": "F: photo -> labels", "E": "E: photo -> code",
         "y": "photo side", "x": "label side", "Y": "photo side", "X": "label side"}
KINDS = {"gan": "adversarial", "cycle_forward": "cycle x -> G -> F", "cycle_backward": "cycle y -> F -> G",
         "identity": "identity", "l1": "L1 to the pair", "self_reg": "self-regularisation"}
TERM = re.compile(r"^(?P<kind>.+)_(?P<who>[GFExyXY])$")


def term_name(key: str) -> str:
    """One display name per loss term across methods (CycleGAN, pix2pix, SimGAN, CoGAN and BiGAN log the same
    kinds of terms under different keys)."""
    if key == "D":
        return "D, joint (code, image) pairs"
    if key.startswith("D_"):
        return f"D, {SIDES.get(key[2:], key[2:])}"
    match = TERM.match(key)
    if not match:
        return key
    kind, who = match["kind"], match["who"]
    return f"{KINDS.get(kind, kind.replace('_', ' '))} ({SIDES[who]})"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def smooth(values: list[float]) -> np.ndarray:
    """Light smoothing: a centred moving average over ~5% of the points (at least 1)."""
    values = np.asarray(values, float)
    width = max(1, len(values) // 20)
    if width == 1:
        return values
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def curves_figure(runs: list[Path], out: Path) -> tuple[dict | None, bool]:
    """Generator-side and discriminator terms against iteration on separate axes (seed 0 solid, other seeds
    faint), and FID when the runs logged it. Returns (figure, whether FID was plotted)."""
    logs = [read_jsonl(run / "losses.jsonl") for run in runs]
    fids = [read_jsonl(run / "fid.jsonl") for run in runs]
    if not any(logs):
        return None, False
    has_fid = any(fids)
    keys = [k for k in (logs[0][0] if logs[0] else {}) if k not in ("step", "epoch", "lr")]
    d_keys = [k for k in keys if k.startswith("D")]
    g_keys = [k for k in keys if k not in d_keys]
    panels = [("generator-side terms", g_keys), ("discriminator terms", d_keys)]
    panels = [(t, k) for t, k in panels if k]
    fig, axes = plt.subplots(1, len(panels) + has_fid, figsize=(5.6 * (len(panels) + has_fid), 4.6), squeeze=False)
    for ax, (title, panel_keys) in zip(axes[0], panels):
        for k_i, key in enumerate(panel_keys):
            for s_i, log in enumerate(logs):
                steps = [e["step"] for e in log if key in e]
                if steps:
                    ax.plot(steps, smooth([e[key] for e in log if key in e]), color=f"C{k_i % 10}",
                            alpha=1.0 if s_i == 0 else 0.3, linewidth=1.2, label=term_name(key) if s_i == 0 else None)
        ax.set_xlabel("iteration"), ax.set_ylabel("loss (weighted, smoothed)")
        ax.set_title(title + (" (seed 0 solid, other seeds faint)" if len(logs) > 1 else ""))
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        ax.grid(linewidth=0.3)
    if has_fid:
        ax = axes[0][-1]
        for s_i, log in enumerate(fids):
            ax.plot([e["step"] for e in log], [e["fid"] for e in log], marker="o", label=f"seed {s_i}")
        ax.set_xlabel("iteration"), ax.set_ylabel("FID"), ax.set_title("FID of G on the val subset")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return {"path": out, "caption": "Training losses against iteration: generator-side and discriminator terms on "
                                    "separate axes, moving average over ~5% of the logged points."}, has_fid
