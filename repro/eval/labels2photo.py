"""labels -> photo scoring: the FCN-score of pix2pix's scripts/eval_cityscapes, exactly.

Per frame, as the original does it:
  label  = the full-resolution gtFine labelIds, mapped to trainIds (255 = ignored); never resized;
  image  = the generated PNG, resized to the label size by PIL bilinear on the uint8 image (what
           scipy.misc.imresize(im, (H, W)) does), still uint8;
  input  = float32, RGB -> BGR, minus the mean (72.78044, 83.21195, 73.45286) in BGR order, no scaling;
  pred   = argmax over the net's 20 score channels.
One confusion matrix collects all frames; scores come from repro.eval.metrics (1e-12 denominators).

The original's 19-vs-20 quirk. It counts with fast_hist(label, pred, 19), i.e.
bincount(19 * gt + pred, minlength=361), returning 0 when the result is longer than 361. The net
has 20 outputs, so a prediction of channel 19 at a pixel of class a < 18 lands in cell (a + 1, 0),
and one pixel of class 18 (bicycle) predicted 19 makes the whole frame count for nothing.
`--protocol pix2pix` (default: the paper's numbers came from it) reproduces that and counts the
pixels and frames it touched; `--protocol strict` uses a 19 x 20 matrix where channel 19 is simply
wrong and nothing is dropped. Both are computed in one pass and written to the same JSON file:
the chosen protocol is the headline ("metrics", "per_class", "confusion") and the other one sits
in "other_protocols".

Where the original is silent or environment-dependent, the choices are: non-RGB result images
(RGBA, grayscale) are converted to RGB (the original would crash on them); convolutions run in
full float32 (TF32 off, as Caffe computed) unless --tf32; frames of the same size are batched,
which cannot change any prediction (FCN-8s treats batch items independently, no batch norm).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tabulate import tabulate
from tqdm import tqdm

from repro import ReproError, translations
from repro.data.images import image_size, open_image
from repro.device import loader_workers, pick_device
from repro.eval import calibration
from repro.eval.fcn import load_segmenter
from repro.data.frames import frame_id
from repro.eval.groundtruth import N_CLASSES, ground_truth_files, load_train_ids, pair_results
from repro.eval.metrics import scores
from repro.eval.results import build_result, per_class_table
from repro.config import PROTOCOLS
from repro.io import sha256_files

MEAN_BGR = (72.78044, 83.21195, 73.45286)


# ------------------------------------------------------------------------------ one frame


def upsample_to_label(image: Image.Image, size_hw: tuple[int, int]) -> np.ndarray:
    """scipy.misc.imresize(im, (H, W)) of the original: PIL bilinear on the uint8 image."""
    h, w = size_hw
    return np.asarray(image.convert("RGB").resize((w, h), Image.BILINEAR))


def caffe_input(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 BGR minus the mean, unscaled."""
    mean = torch.tensor(MEAN_BGR, dtype=torch.float32, device=images.device)
    bgr = images.float().flip(-1) - mean
    return bgr.permute(0, 3, 1, 2).contiguous()


def frame_confusions(gt: torch.Tensor, pred: torch.Tensor, n_pred: int) -> torch.Tensor:
    """(N, 19, n_pred) counts, one matrix per frame, by a single bincount on the device.
    gt: (N, H, W) trainIds with 255 ignored; pred: (N, H, W) in [0, n_pred)."""
    n = gt.shape[0]
    gt, pred = gt.long(), pred.long()
    valid = gt < N_CLASSES
    frame = torch.arange(n, device=gt.device).view(n, 1, 1).expand_as(gt)
    index = (frame * N_CLASSES + gt) * n_pred + pred
    counts = torch.bincount(index[valid], minlength=n * N_CLASSES * n_pred)
    return counts.view(n, N_CLASSES, n_pred)


def pix2pix_frame_hist(strict: np.ndarray) -> tuple[np.ndarray | None, int]:
    """What the original's fast_hist(label, pred, 19) returns for a frame whose 19 x 20 matrix is
    `strict`, and how many pixels it put into a wrong cell. None means the frame is dropped."""
    if strict.shape[1] == N_CLASSES:  # a 19-output net: nothing to displace
        return strict.copy(), 0
    if strict[N_CLASSES - 1, N_CLASSES] > 0:  # bin 19 * 18 + 19 = 361: bincount too long -> 0
        return None, 0
    hist = strict[:, :N_CLASSES].copy()
    hist[1:, 0] += strict[:-1, N_CLASSES]  # bin 19 * a + 19 == 19 * (a + 1) + 0
    return hist, int(strict[:-1, N_CLASSES].sum())


@dataclass
class Tally:
    """Both protocols' confusion matrices and the quirk's footprint, accumulated frame by frame."""

    n_pred: int = 20
    strict: np.ndarray = None
    pix2pix: np.ndarray = field(default_factory=lambda: np.zeros((N_CLASSES, N_CLASSES), np.int64))
    frames: int = 0
    pixels_channel_19: int = 0  # scored pixels (gt not ignored) predicted channel 19
    pixels_channel_19_all: int = 0  # any pixel predicted channel 19, ignored ground truth included
    pixels_displaced: int = 0  # pixels the original put into a wrong cell (kept frames)
    frames_dropped: list = field(default_factory=list)
    pixels_in_dropped_frames: int = 0  # scored pixels of the frames the original dropped

    def __post_init__(self):
        if self.strict is None:
            self.strict = np.zeros((N_CLASSES, self.n_pred), np.int64)

    def add(self, frame: str, strict: np.ndarray, channel_19_all: int = 0) -> None:
        self.frames += 1
        self.strict += strict
        if self.n_pred > N_CLASSES:
            self.pixels_channel_19 += int(strict[:, N_CLASSES].sum())
        self.pixels_channel_19_all += int(channel_19_all)
        hist, displaced = pix2pix_frame_hist(strict)
        if hist is None:
            self.frames_dropped.append(frame)
            self.pixels_in_dropped_frames += int(strict.sum())
        else:
            self.pix2pix += hist
            self.pixels_displaced += displaced

    def quirk(self) -> dict:
        return {
            "pixels_predicted_channel_19": self.pixels_channel_19,
            "pixels_predicted_channel_19_incl_ignored": self.pixels_channel_19_all,
            "pixels_displaced_to_wrong_cell": self.pixels_displaced,
            "frames_dropped": len(self.frames_dropped),
            "frames_dropped_ids": self.frames_dropped,
            "pixels_in_dropped_frames": self.pixels_in_dropped_frames,
            "frames": self.frames,
        }


# ------------------------------------------------------------------------------ all frames


class FrameDataset(torch.utils.data.Dataset):
    """(frame id, image path, labelIds path) -> (frame id, uint8 image at label size, trainIds).
    `prepare` (picklable, PIL -> PIL) runs first: the calibration uses it to shrink real photos to 256."""

    def __init__(self, frames: list[tuple[str, Path, Path]], prepare=None):
        self.frames, self.prepare = frames, prepare

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        fid, image_path, label_path = self.frames[i]
        label = load_train_ids(label_path)
        hint = ("it is a real photo: re-extract leftImg8bit_trainvaltest.zip" if self.prepare is not None  # calibration
                else "regenerate it with `repro translate`")
        image = open_image(image_path, fix=hint).convert("RGB")
        if self.prepare is not None:
            image = self.prepare(image)
        return fid, upsample_to_label(image, label.shape), label


def score_frames(frames, model, device, batch_size: int = 4, workers: int | None = None, prepare=None,
                 tf32: bool = False, desc: str = "FCN-8s", progress: bool = True) -> Tally:
    """Runs the net over every frame (same-size frames stacked into batches) and tallies both protocols."""
    n_pred = model.n_classes
    if n_pred not in (N_CLASSES, N_CLASSES + 1):
        raise ReproError(f"the segmenter has {n_pred} outputs; the Cityscapes protocol needs 19 classes (+1 unused).")
    loader = torch.utils.data.DataLoader(
        FrameDataset(frames, prepare), batch_size=batch_size, num_workers=loader_workers(torch.device(device), workers),
        collate_fn=list,
    )
    tally = Tally(n_pred=n_pred)
    previous_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.inference_mode(), tqdm(total=len(frames), desc=desc, unit="frame", disable=not progress) as bar:
            for batch in loader:
                by_size = {}
                for item in batch:
                    by_size.setdefault(item[2].shape, []).append(item)
                for items in by_size.values():
                    images = torch.from_numpy(np.stack([im for _, im, _ in items])).to(device)
                    gt = torch.from_numpy(np.stack([lb for _, _, lb in items])).to(device)
                    pred = model(caffe_input(images)).argmax(dim=1)
                    confusions = frame_confusions(gt, pred, n_pred).cpu().numpy()
                    channel_19 = (pred == N_CLASSES).flatten(1).sum(1).cpu().numpy()
                    for (fid, _, _), conf, c19 in zip(items, confusions, channel_19):
                        tally.add(fid, conf.astype(np.int64), c19)
                    bar.update(len(items))
    finally:
        torch.backends.cudnn.allow_tf32 = previous_tf32
    return tally


def protocol_block(name: str, tally: Tally) -> dict:
    conf = tally.pix2pix if name == "pix2pix" else tally.strict
    score = scores(conf)
    return {"metrics": {k: score[k] for k in ("pixel_acc", "class_acc", "iou")},
            "per_class": per_class_table(score, conf), "confusion": conf.tolist()}


def protocol_description(name: str, n_pred: int, tf32: bool) -> dict:
    return {
        "name": name,
        "labels": "gtFine labelIds at full resolution -> trainIds, 255 ignored, never resized",
        "image_resize": "PIL bilinear of the uint8 image to the label size (scipy.misc.imresize)",
        "input": "float32, RGB->BGR, minus mean_bgr, unscaled",
        "mean_bgr": list(MEAN_BGR),
        "prediction": f"argmax over {n_pred} channels",
        "confusion": "19 x 19 as fast_hist of the original: channel 19 shifts to (gt+1, 0), a bicycle pixel "
                     "predicted 19 drops the frame" if name == "pix2pix" else
                     f"19 x {n_pred}: channel 19 counts as wrong, nothing dropped",
        "denominator_eps": 1e-12,
        "tf32": tf32,
    }


def image_sizes(paths) -> dict[str, int]:
    """{"WxH": count} of the generated images (headers only): the paper's CycleGAN outputs were 128x128."""
    sizes = {}
    for path in paths:
        key = "{}x{}".format(*image_size(path, fix="regenerate it with `repro translate`"))
        sizes[key] = sizes.get(key, 0) + 1
    return sizes


def evaluate(results: Path, cityscapes: Path, segmenter: Path, protocol: str = "pix2pix", device: str = "auto",
             batch_size: int = 4, workers: int | None = None, tf32: bool = False, progress: bool = True) -> dict:
    """Scores the generated val photos in `results` against `cityscapes`/gtFine/val; the result dict
    (headline = `protocol`, the other protocol under "other_protocols")."""
    if protocol not in PROTOCOLS:
        raise ReproError(f"--protocol {protocol}: choose one of {', '.join(PROTOCOLS)}.")
    translations.check(results, "labels2photo")
    truth = ground_truth_files(cityscapes, "val")
    pairs = pair_results(results, truth)
    frames = [(frame_id(label.name), image, label) for image, label in pairs]
    device = pick_device(device)
    model, info = load_segmenter(segmenter, device)
    tally = score_frames(frames, model, device, batch_size, workers, tf32=tf32, desc="labels2photo", progress=progress)
    confusion = {"pix2pix": tally.pix2pix, "strict": tally.strict}[protocol]
    calibrated = calibration.status(segmenter, info["sha256"])
    if calibration.is_synthetic(cityscapes):  # scores on the synthetic city are never the paper's, whatever the segmenter
        calibrated |= {"comparable_to_paper": False, "comparability": "synthetic segmenter: scored against the "
                       "synthetic city, not comparable to the paper"}
    result = build_result(
        "labels2photo",
        scores(confusion),
        confusion,
        protocol_description(protocol, model.n_classes, tf32),
        {"results": str(results), "results_sha256": sha256_files([p for p, _ in pairs]),
         "cityscapes": str(cityscapes), "labels_sha256": sha256_files([p for _, p in pairs]), "frames": len(pairs),
         "generated_sizes": image_sizes(p for p, _ in pairs)},
        other_protocols={name: {**protocol_block(name, tally), "protocol": protocol_description(name, model.n_classes, tf32)}
                         for name in PROTOCOLS if name != protocol},
        quirk=tally.quirk(),
        segmenter=info,
        calibration=calibrated,
        comparable_to_paper=calibrated["comparable_to_paper"],
        device=str(device),
    )
    return result


def print_summary(result: dict) -> None:
    rows = [[result["protocol"]["name"] + " (headline)", *result["metrics"].values()]]
    rows += [[name, *block["metrics"].values()] for name, block in result.get("other_protocols", {}).items()]
    print(tabulate(rows, headers=["protocol", "per-pixel acc", "per-class acc", "class IoU"], floatfmt=".4f"))
    print()
    print(tabulate([[r["name"], r["acc"], r["iou"], r["gt_pixels"]] for r in result["per_class"]],
                   headers=["class", "acc", "IoU", "gt pixels"], floatfmt=".4f"))
    q = result.get("quirk")
    if q:
        print(f"\npix2pix quirk: {q['pixels_predicted_channel_19']} scored pixels predicted channel 19, "
              f"{q['pixels_displaced_to_wrong_cell']} displaced, {q['frames_dropped']} of {q['frames']} frames dropped.")
    verdict = result.get("comparable_to_paper")
    why = calibration.describe(result.get("calibration"))
    print("comparable to the paper: " + {True: "yes", False: "NO", None: "unknown"}[verdict] + f" ({why})")
