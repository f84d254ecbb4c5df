"""The FCN-8s evaluator itself: get the pix2pix authors' weights, import them, or train a stand-in;
then calibrate it against the paper's ground-truth row.

    repro segmenter get          [--out PT] [--url URL]          download + import the Caffe weights
    repro segmenter import-caffe FILE.caffemodel OUT.pt           import a copy you already have
    repro segmenter train        --cityscapes DIR --out PT ...    train FCN-8s the original's way
    repro segmenter calibrate    --segmenter PT --cityscapes DIR  real val photos at 256 -> score

A segmenter file is a torch .pt ({"state_dict", "n_classes", "width", "source", ...}, see fcn.py)
with a PT.sha256 next to it; calibrate writes PT-stem.calibration.json next to it, which
`repro evaluate labels2photo` reads to label its results comparable to the paper or not.

Training choices (the original, Caffe SGD at lr 1e-10 on an unnormalised per-pixel loss sum with
momentum 0.99, is silent on the rest):
  * photos are shrunk to 256x256 (Pillow's default filter, bicubic, as the dataset preparation does)
    and bilinearly upsampled to the label resolution, so the net learns on exactly what it will
    score; `--label-size WxH` resizes labels (nearest) and photos to a smaller size to make training
    affordable (evaluation is always at full resolution);
  * cross-entropy averaged over labelled pixels (255 ignored); no augmentation;
  * `--optimizer adam` (default, lr 1e-4): it trains a VGG-initialised net and a from-scratch small
    net alike in a few thousand steps; `--optimizer sgd` is the original's recipe: momentum 0.99,
    weight decay 5e-4, lr 1e-10 x pixels per image (the same step as Caffe's unnormalised sum);
  * the VGG16 trunk comes from torchvision's ImageNet weights, vgg16-397923af.pth in the torch cache
    (fetched there when missing and --width is 1, `repro weights get vgg16`), converted to Caffe's
    BGR 0..255 input; when it cannot be had the net starts from scratch and says so loudly; score
    layers start at zero and the deconvolutions bilinear, as FCN does.
"""

import functools
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from tqdm import tqdm

from repro import ReproError, weights
from repro.data.images import open_image
from repro.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16_FILE, imagenet_vgg16, vgg16_weights_path
from repro.data.cityscapes import JPEG_OPTIONS
from repro.data.download import DownloadFailed
from repro.data.loaders import FILTERS
from repro.device import loader_workers, pick_device, training_threads
from repro.eval.caffemodel import import_caffemodel
from repro.eval.fcn import VGG_BLOCKS, FCN8s, fcn8s, init_for_training, load_segmenter, save_segmenter
from repro.data.frames import frame_id
from repro.eval.groundtruth import IGNORE, ground_truth_files, load_train_ids
from repro.eval.calibration import comparability, load_band, scored_data, verdict
from repro.eval.labels2photo import (MEAN_BGR, PROTOCOLS, protocol_block, protocol_description,
                                     score_frames)
from repro.eval.metrics import scores
from repro.eval.results import build_result
from repro.io import load_torch_file, sha256_file, sha256_files


VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # convs in torchvision's vgg16.features


# ------------------------------------------------------------------------------ get / import


def import_caffe(caffemodel: Path, out: Path) -> str:
    """caffemodel -> segmenter .pt (+ .sha256); returns the .pt's sha256."""
    model, note = import_caffemodel(caffemodel)
    return save_segmenter(model, out, source="caffemodel", caffemodel=Path(caffemodel).name,
                          caffemodel_sha256=sha256_file(caffemodel), **note)


def get(out: Path = weights.FCN8S_OUT, url: str | None = None, caffemodel: Path | None = None, retries: int = 4,
        sha256: str | None = None, progress: bool = True) -> str:
    """Downloads the pix2pix authors' fcn-8s-cityscapes.caffemodel (unless already there) and imports it.
    No hash is published for it: the first download records its sha256 in CAFFEMODEL.sha256 and later
    downloads and reuses must match it (or `sha256`). url: default $REPRO_FCN8S_URL, else weights.FCN8S_URL."""
    from repro.weights import FCN8S_ENV, download_recorded

    url = url or os.environ.get(FCN8S_ENV) or weights.FCN8S_URL
    caffemodel = Path(caffemodel) if caffemodel else Path(out).with_name("fcn-8s-cityscapes.caffemodel")
    try:  # resumable: a cut connection keeps what arrived
        download_recorded(url, caffemodel, what="the FCN-8s Cityscapes caffemodel", check=import_caffemodel,
                          sha256=sha256, retries=retries, progress=progress, folder_flag="--out")
    except DownloadFailed as err:
        raise ReproError(
            f"could not download {url} ({err}).\n"
            f"The FCN-8s Cityscapes weights (fcn-8s-cityscapes.caffemodel, ~537 MB) were last published at\n"
            f"  {weights.FCN8S_URL}\n(the older {weights.FCN8S_DEAD_URL} has been dead since 2021).\n"
            f"If you have a copy, import it with:\n"
            f"  repro segmenter import-caffe PATH/fcn-8s-cityscapes.caffemodel {out}\n"
            f"If you cannot get one, train a stand-in and calibrate it:\n"
            f"  repro segmenter train --cityscapes DIR --out {out}"
        ) from err
    return import_caffe(caffemodel, out)


# ------------------------------------------------------------------------------ training data


def shrink_photo(image: Image.Image, size: int = 256, resample: int = Image.BICUBIC,
                 jpeg_quality: int | None = None) -> Image.Image:
    """A real photo as the dataset preparation stores it: size x size (Pillow's default filter is
    bicubic), optionally through JPEG at the given quality (the prepared datasets use 100, chroma 4:4:4)."""
    image = image.convert("RGB").resize((size, size), resample)
    if jpeg_quality is not None:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", **(JPEG_OPTIONS | {"quality": jpeg_quality}))  # 4:4:4 as the official files
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return image


def photo_frames(cityscapes: Path, split: str) -> list[tuple[str, Path, Path]]:
    """(frame id, leftImg8bit photo, gtFine labelIds) for every labelled frame of a split."""
    truth = ground_truth_files(cityscapes, split)
    root = Path(cityscapes) / "leftImg8bit" / split
    photos = {frame_id(p.name): p for p in sorted(root.glob("*/*_leftImg8bit.png"))}
    missing = sorted(set(truth) - set(photos))
    if missing:
        raise ReproError(
            f"{len(missing)} labelled frame(s) of {split} have no photo under {root}/CITY/ (first: {missing[:3]}): "
            f"extract leftImg8bit_trainvaltest.zip into {cityscapes}."
        )
    return [(fid, photos[fid], truth[fid]) for fid in sorted(truth)]


class TrainingSet(torch.utils.data.Dataset):
    """Photo at 256x256, bilinearly upsampled to the label size -> Caffe input; labels -> trainIds."""

    def __init__(self, frames, label_size: tuple[int, int] | None = None):
        self.frames, self.label_size = frames, label_size  # label_size is (W, H)

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        _, photo_path, label_path = self.frames[i]
        label = load_train_ids(label_path)
        if self.label_size is not None:
            label = np.asarray(Image.fromarray(label).resize(self.label_size, Image.NEAREST))
        photo = shrink_photo(open_image(photo_path, fix="re-extract leftImg8bit_trainvaltest.zip"))
        photo = np.asarray(photo.resize((label.shape[1], label.shape[0]), Image.BILINEAR), dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(photo[..., ::-1] - np.float32(MEAN_BGR))).permute(2, 0, 1)
        return x, torch.from_numpy(label.astype(np.int64))


# ------------------------------------------------------------------------------ VGG16 trunk


def vgg16_to_fcn(vgg: dict) -> dict:
    """torchvision vgg16 state_dict -> FCN-8s trunk parameters (conv1_1..conv5_3, fc6, fc7).
    conv1_1 is rewritten for Caffe's input: torchvision expects RGB in [0, 1] normalised by the
    ImageNet mean/std, FCN gets BGR 0..255 minus the Cityscapes mean; the two agree exactly wherever
    the 3x3 window lies inside the image. fc6/fc7 are the classifier's Linear layers as convolutions."""
    names = [name for block in VGG_BLOCKS for name, _ in block]
    state = {}
    for name, index in zip(names, VGG16_CONV_INDICES):
        state[f"{name}.weight"] = vgg[f"features.{index}.weight"].float()
        state[f"{name}.bias"] = vgg[f"features.{index}.bias"].float()
    w, b = state["conv1_1.weight"], state["conv1_1.bias"]
    std = torch.tensor(IMAGENET_STD) * 255
    shift = (torch.tensor(MEAN_BGR[::-1]) - torch.tensor(IMAGENET_MEAN) * 255) / std  # per RGB channel
    state["conv1_1.weight"] = (w / std.view(1, 3, 1, 1)).flip(1)
    state["conv1_1.bias"] = b + (w * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    fc6 = vgg["classifier.0.weight"].float()
    channels = state["conv5_3.weight"].shape[0]
    state["fc6.weight"] = fc6.view(fc6.shape[0], channels, 7, 7)
    state["fc6.bias"] = vgg["classifier.0.bias"].float()
    fc7 = vgg["classifier.3.weight"].float()
    state["fc7.weight"] = fc7.view(*fc7.shape, 1, 1)
    state["fc7.bias"] = vgg["classifier.3.bias"].float()
    return state


def loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr)


def init_trunk(model: FCN8s) -> str:
    """Loads the ImageNet VGG16 trunk from the torch cache when it fits (a full-width net fetches a missing
    file through repro.weights); returns "imagenet-vgg16" or "scratch". The loud warning (what to place where)
    is only for a full-width net, the one a user can give the trunk and score against the paper; a reduced-width
    net (the smoke segmenter) cannot take the real file and gets one plain line."""
    path = vgg16_weights_path()
    try:
        path = imagenet_vgg16(fetch=model.width == 1)  # only the full-width net can use the real file: fetch it
    except ReproError as err:
        loud(f"WARNING: {err}")
    if not path.is_file():
        if model.width != 1:
            return scratch_note(model)
        loud(f"WARNING: {path} not found: FCN-8s is trained FROM SCRATCH (no ImageNet VGG16 trunk).\n"
             f"A from-scratch segmenter is weaker than the original; calibrate it before trusting its scores.\n"
             f"To use the ImageNet trunk, run `repro weights get vgg16` or place torchvision's {VGG16_FILE} there "
             f"(TORCH_HOME moves it).")
        return "scratch"
    try:
        vgg = load_torch_file(path, "VGG16 weights", "Delete it, or replace it with torchvision's file.", mmap=True)
        state = vgg16_to_fcn(vgg)
    except (KeyError, RuntimeError, OSError) as err:
        raise ReproError(f"{path} is not torchvision's vgg16 state_dict ({err}): delete it or replace it.") from err
    own = model.state_dict()
    wrong = [f"{k} {list(v.shape)} vs {list(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        if model.width != 1:
            return scratch_note(model)
        loud(f"WARNING: {path} does not fit FCN-8s at width {model.width:g} ({wrong[0]}, ...): "
             f"training FROM SCRATCH. Replace it with torchvision's {VGG16_FILE} (`repro weights get vgg16`).")
        return "scratch"
    model.load_state_dict(state, strict=False)
    return "imagenet-vgg16"


def scratch_note(model: FCN8s) -> str:
    print(f"FCN-8s at width {model.width:g} trains from scratch (the ImageNet VGG16 trunk fits width 1 only); a "
          f"reduced-width segmenter is never comparable to the paper, which is fine for smoke runs.", file=sys.stderr)
    return "scratch"


# ------------------------------------------------------------------------------ train


def check_training_args(width: float, iters: int | None, epochs: int | None, batch_size: int, lr: float | None,
                        label_size: tuple[int, int] | None, workers: int | None) -> None:
    """Refuses values that would build or save a degenerate segmenter, before anything is loaded."""
    problems = []
    if not width > 0:
        problems.append(f"--width {width:g}: the channel multiplier must be above 0 (1 = VGG16's widths)")
    if iters is not None and iters < 1:
        problems.append(f"--steps {iters}: give at least 1 optimizer step")
    if epochs is not None and epochs < 1:
        problems.append(f"--epochs {epochs}: give at least 1 pass over the train split")
    if batch_size < 1:
        problems.append(f"--batch-size {batch_size}: give at least 1")
    if lr is not None and not lr > 0:
        problems.append(f"--lr {lr:g}: the learning rate must be above 0")
    if label_size is not None and min(label_size) < 1:
        problems.append(f"--label-size {label_size[0]}x{label_size[1]}: both sides must be at least 1 pixel")
    if workers is not None and workers < 0:
        problems.append(f"--workers {workers}: give 0 or more")
    if problems:
        raise ReproError("repro segmenter train: " + "; ".join(problems) + ". Nothing was trained or written.")


def train(cityscapes: Path, out: Path, width: float = 1.0, iters: int | None = None, epochs: int | None = None,
          batch_size: int = 1, optimizer: str = "adam", lr: float | None = None, device: str = "auto",
          seed: int = 0, label_size: tuple[int, int] | None = None, workers: int | None = None,
          progress: bool = True) -> str:
    """Trains FCN-8s on the train split and writes the segmenter; returns its sha256.
    workers=None: none on CPU (loading processes would take cores from the net), 4 on CUDA."""
    check_training_args(width, iters, epochs, batch_size, lr, label_size, workers)
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = pick_device(device)
    workers = loader_workers(device, workers)
    frames = photo_frames(cityscapes, "train")
    model = fcn8s(n_classes=20, width=width)
    init_for_training(model)
    trunk = init_trunk(model)
    model.to(device, memory_format=torch.channels_last).train()  # same math, ~2x faster convolutions on CPU
    data = TrainingSet(frames, label_size)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=len(data) >= batch_size,
                                         num_workers=workers, persistent_workers=workers > 0, generator=generator)
    if iters is None:
        iters = (epochs or 1) * len(loader)
    x0, _ = data[0]
    if optimizer == "adam":
        lr = 1e-4 if lr is None else lr
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif optimizer == "sgd":
        lr = 1e-10 * x0.shape[1] * x0.shape[2] if lr is None else lr  # Caffe's 1e-10 on the unnormalised sum
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.99, weight_decay=5e-4)
    else:
        raise ReproError(f"--optimizer {optimizer}: choose adam or sgd.")
    with training_threads(device) as threads:  # the count CPU runs train at, whatever the process
        step, losses = 0, []
        with tqdm(total=iters, desc="train FCN-8s", unit="it", disable=not progress) as bar:
            while step < iters:
                for x, y in loader:
                    x = x.to(device, memory_format=torch.channels_last)
                    loss = F.cross_entropy(model(x), y.to(device), ignore_index=IGNORE)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
                    if step >= iters:
                        break
    model.eval().to(memory_format=torch.contiguous_format)
    return save_segmenter(
        model, out, source="trained",
        trained_on={"cityscapes": str(cityscapes), "split": "train", "frames": len(frames),
                    "frames_sha256": sha256_files([p for _, p, _ in frames])},
        training={"trunk": trunk, "iters": iters, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                  "seed": seed, "photo_size": 256, "label_size": list(label_size) if label_size else "full",
                  "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
                  "device": str(device), "cpu_threads": threads},
    )  # no wall time in the file: the same training gives the same file and hash


# ------------------------------------------------------------------------------ calibrate


def calibrate(segmenter: Path, cityscapes: Path, device: str = "auto", batch_size: int = 4, workers: int | None = None,
              resize_filter: str = "bicubic", jpeg_quality: int | None = None, tf32: bool = False,
              progress: bool = True) -> dict:
    """Scores the real val photos shrunk to 256x256 (pix2pix's "ground truth" row) and compares with
    the paper's 0.80 / 0.26 / 0.21 under the pix2pix protocol."""
    band = load_band()
    if resize_filter not in FILTERS:
        raise ReproError(f"--resize-filter {resize_filter}: choose one of {', '.join(FILTERS)}.")
    frames = photo_frames(cityscapes, "val")
    device = pick_device(device)
    model, info = load_segmenter(segmenter, device)
    prepare = functools.partial(shrink_photo, size=256, resample=FILTERS[resize_filter], jpeg_quality=jpeg_quality)
    tally = score_frames(frames, model, device, batch_size, workers, prepare=prepare, tf32=tf32, desc="calibrate",
                         progress=progress)
    score = scores(tally.pix2pix)
    deltas, in_band = verdict(score, band)
    scored = scored_data(cityscapes, len(frames), "256x256")
    comparable, reason = comparability(info, scored, in_band)
    protocol = protocol_description("pix2pix", model.n_classes, tf32)
    protocol.update(photos=f"real val photos resized to 256x256 ({resize_filter}), then evaluated like results",
                    resize_filter=resize_filter, jpeg_quality=jpeg_quality)
    return build_result(
        "calibration", score, tally.pix2pix, protocol,
        {"cityscapes": str(cityscapes), "frames": len(frames),
         "photos_sha256": sha256_files([p for _, p, _ in frames]),
         "labels_sha256": sha256_files([p for _, _, p in frames])},
        paper=band["paper"], band=band["band"], deltas=deltas, in_band=in_band, comparable_to_paper=comparable,
        comparability=reason, scored=scored,
        other_protocols={n: {**protocol_block(n, tally), "protocol": protocol_description(n, model.n_classes, tf32)}
                         for n in PROTOCOLS if n != "pix2pix"},
        quirk=tally.quirk(), segmenter=info, device=str(device),
    )
