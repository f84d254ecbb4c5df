"""The floor and ceiling rows of Tables 2-5: what every method's score lies between, scored by exactly the
protocol of a method's outputs (translate_folder's loading, resizing and PNGs, then repro.reproduce's scoring).

    ground_truth  the ceiling: the real val photos (labels -> photo) and the true label maps (photo -> labels),
                  passed through an identity "generator" at the CycleGAN config's crop size
    untrained     a floor: the CycleGAN generators G and F at the seed's initial weights (nothing trained)
    constant      a floor: one output for every input, the mean training photo (labels -> photo) and the
                  most frequent training class painted everywhere (photo -> labels)

Without them a reader cannot tell learning from chance: a constant "road" image already gets a third of the
pixels right. Each writes OUT/ROW/seed-K/result.json like a method's row (metrics of both directions and
provenance, with `made_by` saying how its outputs were made); only `untrained` depends on the seed.
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from repro.rows import CEILING, FLOORS, Row

UNTRAINED, CONSTANT = FLOORS
CONFIG_ROW = "cyclegan"  # the config whose crop size, filter and generator the bound rows use


class Identity(nn.Module):
    """The ceiling's "generator": returns its input (the other domain's val images go in)."""

    def forward(self, x):
        return x


class Constant(nn.Module):
    """One image, [-1, 1], whatever the input."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)

    def forward(self, x):
        return self.image.to(x.device).expand(x.shape[0], -1, -1, -1)


def mean_photo(folder: Path, size: int, resize_filter: str) -> torch.Tensor:
    """The mean training photo at the crop size, in [-1, 1] (1, 3, size, size)."""
    from repro.data.loaders import list_images, load_image, to_model_range

    total = sum(load_image(f, size, resize_filter).double() for f in list_images(folder))
    return to_model_range((total / len(list_images(folder))).round().to(torch.uint8)[None])


def most_frequent_class(cityscapes: Path) -> tuple[int, tuple[int, int, int]]:
    """(trainId, palette colour) of the class covering the most labelled pixels of the train split."""
    from cityscapesscripts.helpers.labels import trainId2label

    from repro.eval.groundtruth import ground_truth_files, load_train_ids

    counts = np.zeros(256, dtype=np.int64)
    for path in ground_truth_files(cityscapes, "train").values():
        counts += np.bincount(load_train_ids(path).ravel(), minlength=256)
    counts[255] = 0  # ignored pixels
    train_id = int(counts.argmax())
    return train_id, tuple(int(c) for c in trainId2label[train_id].color)


def class_image(colour: tuple[int, int, int], size: int) -> torch.Tensor:
    from repro.data.loaders import to_model_range

    return to_model_range(torch.tensor(colour, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, size, size))


def translators(row: Row, cfg, setup) -> tuple[dict, dict]:
    """(direction -> (net, input folder)), made_by: how this bound row's outputs are made."""
    inputs = {"labels2photo": setup.data / cfg.x_test, "photo2labels": setup.data / cfg.y_test}
    if row.key == CEILING.key:  # the other domain's val images of the same frames
        return ({"labels2photo": (Identity(), setup.data / cfg.y_test),
                 "photo2labels": (Identity(), setup.data / cfg.x_test)},
                {"what": "ground truth: the real val photos and the true label maps, at the crop size",
                 "crop_size": cfg.crop_size, "resize_filter": cfg.resize_filter})
    if row.key == UNTRAINED.key:
        from repro.methods.cyclegan import build_nets

        nets = build_nets(cfg, "cpu")
        return ({"labels2photo": (nets["G"], inputs["labels2photo"]), "photo2labels": (nets["F"], inputs["photo2labels"])},
                {"what": "CycleGAN generators G and F at the seed's initial weights", "config": asdict(cfg)})
    if row.key == CONSTANT.key:
        photo = mean_photo(setup.data / cfg.y_train, cfg.crop_size, cfg.resize_filter)
        train_id, colour = most_frequent_class(setup.cityscapes)
        return ({"labels2photo": (Constant(photo), inputs["labels2photo"]),
                 "photo2labels": (Constant(class_image(colour, cfg.crop_size)), inputs["photo2labels"])},
                {"what": "the mean training photo; the most frequent training class everywhere",
                 "train_photos": cfg.y_train, "most_frequent_train_id": train_id, "colour": list(colour),
                 "crop_size": cfg.crop_size, "resize_filter": cfg.resize_filter})
    raise ValueError(f"{row.key} is not a floor or ceiling row")


def position(mean: float, floor: float, ceiling: float) -> float | None:
    """Where a mean lies between the best floor (0) and the ceiling (1); None when they do not bracket anything."""
    return None if ceiling <= floor else (mean - floor) / (ceiling - floor)
