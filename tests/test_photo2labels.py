"""`repro evaluate photo2labels` end to end on the synthetic city.

The "generated" label maps are made from the ground-truth colour files, resized to what a generator
outputs, so the expected score is known: near perfect when they match the frame, low when shuffled,
zero (and all void) when painted black.
"""

import json

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from repro import ReproError
from repro.cli import main
from repro.data.synth_city import generate
from repro.eval import palette
from repro.data.frames import frame_id
from repro.eval.groundtruth import CLASS_NAMES, load_train_ids
from repro.eval.photo2labels import evaluate, frame_confusion

SIZE = (128, 128)  # what the paper's generators output (docs/protocol.md#fcn-score, last point)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("city") / "cityscapes", n_train=1, n_val=6, size=(256, 128), progress=False)


def colour_files(city):
    return sorted((city / "gtFine" / "val").glob("*/*_gtFine_color.png"))


def write_results(out, city, make):
    """One `{frame}_leftImg8bit.png` per val frame, made by make(colour image, index) -> PIL image."""
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(colour_files(city)):
        with Image.open(path) as colour:
            make(colour.convert("RGB"), i).save(out / f"{frame_id(path.name)}_leftImg8bit.png")
    return out


def present_classes(city):
    ids = np.concatenate([load_train_ids(p).ravel() for p in sorted((city / "gtFine" / "val").glob("*/*_labelIds.png"))])
    return sorted(set(ids.tolist()) - {255})


def test_ground_truth_colours_at_generated_size_score_perfectly_when_labels_are_downsampled(city, tmp_path):
    # Nearest resizing of the colour map and of the labels picks the same pixels, so every scored
    # pixel is right: the colour table, the frame pairing and the confusion layout all line up.
    results = write_results(tmp_path / "images", city, lambda im, i: im.resize(SIZE, Image.NEAREST))
    result = evaluate(results, city, compare="generated", progress=False)
    assert result["metrics"]["pixel_acc"] == pytest.approx(1.0)
    present = present_classes(city)
    assert len(present) >= 8
    for row in result["per_class"]:
        expected = 1.0 if row["train_id"] in present else 0.0  # absent classes score 0, as in the original
        assert row["acc"] == pytest.approx(expected) and row["iou"] == pytest.approx(expected)
    assert result["metrics"]["class_acc"] == pytest.approx(len(present) / 19)
    assert result["void"]["predicted_pixels"] == 0
    assert result["protocol"]["compare"] == "generated"
    assert result["inputs"]["generated_sizes"] == ["128x128"]


@pytest.mark.parametrize("space", palette.SPACES)
def test_upsampled_class_maps_score_high_at_full_resolution(city, tmp_path, space):
    # bilinear resizing blends colours at class edges, like a generator's soft output
    results = write_results(tmp_path / "images", city, lambda im, i: im.resize(SIZE, Image.BILINEAR))
    result = evaluate(results, city, space=space, progress=False)
    assert result["protocol"]["space"] == space
    assert result["protocol"]["compare"] == "full"
    assert result["metrics"]["pixel_acc"] > 0.9
    assert result["metrics"]["iou"] > 0.6 * len(present_classes(city)) / 19
    assert np.asarray(result["confusion"]).shape == (19, 20)
    assert result["inputs"]["frames"] == 6


def test_shuffled_maps_score_low_and_black_maps_score_zero_as_void(city, tmp_path):
    matched = evaluate(write_results(tmp_path / "matched", city, lambda im, i: im.resize(SIZE)), city, progress=False)

    # each frame gets another frame's labels, flipped upside down (sky where the road is)
    colours = colour_files(city)

    def other_frame(im, i):
        with Image.open(colours[(i + 1) % len(colours)]) as other:
            return other.convert("RGB").resize(SIZE).transpose(Image.FLIP_TOP_BOTTOM)

    shuffled = evaluate(write_results(tmp_path / "shuffled", city, other_frame), city, progress=False)
    assert shuffled["metrics"]["pixel_acc"] < 0.4 < matched["metrics"]["pixel_acc"] - 0.4
    assert shuffled["metrics"]["iou"] < matched["metrics"]["iou"] / 2

    black = evaluate(write_results(tmp_path / "black", city, lambda im, i: Image.new("RGB", SIZE)), city, progress=False)
    conf = np.asarray(black["confusion"])
    assert black["metrics"]["pixel_acc"] == 0.0
    assert conf[:, :19].sum() == 0 and conf[:, 19].sum() == conf.sum() > 0  # all void, none dropped
    assert black["void"]["predicted_pixels"] == conf.sum()
    assert black["void"]["fraction_of_scored_pixels"] == pytest.approx(1.0)
    assert sum(black["void"]["per_class"].values()) == conf.sum()

    snapped = evaluate(tmp_path / "black", city, progress=False, palette_kind="train")
    assert snapped["protocol"]["palette"] == "train" and snapped["void"]["predicted_pixels"] == 0
    assert black["protocol"]["palette"] == "full"


def test_swapped_classes_show_in_the_per_class_table(city, tmp_path):
    road, sidewalk = name2label["road"].color, name2label["sidewalk"].color

    def swap(im, i):
        a = np.asarray(im.resize(SIZE, Image.NEAREST)).copy()
        is_road, is_sidewalk = (a == road).all(-1), (a == sidewalk).all(-1)
        a[is_road], a[is_sidewalk] = sidewalk, road
        return Image.fromarray(a)

    result = evaluate(write_results(tmp_path / "images", city, swap), city, progress=False)
    rows = {r["name"]: r for r in result["per_class"]}
    assert rows["road"]["acc"] < 0.05 and rows["sidewalk"]["acc"] < 0.05
    assert rows["sky"]["acc"] > 0.9
    conf = np.asarray(result["confusion"])
    road_id, sidewalk_id = CLASS_NAMES.index("road"), CLASS_NAMES.index("sidewalk")
    assert conf[road_id, sidewalk_id] > 0.9 * conf[road_id].sum()


def test_frame_confusion_upsamples_the_class_map_and_ignores_void_ground_truth():
    # 2x2 generated map against 4x4 labels: each generated pixel covers a 2x2 block
    sky, car = name2label["sky"].color, name2label["car"].color
    image = np.array([[sky, car], [(0, 0, 0), car]], dtype=np.uint8)
    gt = np.array([[10, 10, 13, 13],
                   [10, 10, 13, 13],
                   [0, 255, 13, 10],
                   [0, 0, 13, 13]], dtype=np.uint8)
    conf = frame_confusion(image, gt)
    assert conf.shape == (19, 20)
    assert conf[10, 10] == 4 and conf[13, 13] == 7 and conf[10, 13] == 1
    assert conf[0, 19] == 3  # road under a black (void) prediction: wrong, not dropped
    assert conf.sum() == 15  # the 255 pixel is not scored
    down = frame_confusion(image, gt, compare="generated")
    assert down.sum() == 4 and down[10, 10] == 1 and down[13, 13] == 2 and down[0, 19] == 1


def test_cli_writes_the_result_json_next_to_the_results(city, tmp_path, capsys):
    results = write_results(tmp_path / "run" / "images", city, lambda im, i: im.resize(SIZE, Image.NEAREST))
    assert main(["evaluate", "photo2labels", "--results", str(results), "--cityscapes", str(city)]) == 0
    out = capsys.readouterr().out
    assert "per-pixel acc" in out and "sidewalk" in out
    result = json.loads((tmp_path / "run" / "photo2labels.json").read_text())
    assert result["task"] == "photo2labels"
    assert set(result["metrics"]) == {"pixel_acc", "class_acc", "iou"}
    assert result["protocol"]["space"] == "rgb" and result["protocol"]["void_column"] == 19
    assert result["protocol"]["palette_sha256"] == palette.palette_sha256()
    assert len(result["inputs"]["results_sha256"]) == 64 and len(result["inputs"]["ground_truth_sha256"]) == 64
    assert [r["name"] for r in result["per_class"]] == CLASS_NAMES

    out_file = tmp_path / "elsewhere.json"
    assert main(["evaluate", "photo2labels", "--results", str(results), "--cityscapes", str(city),
                 "--space", "lab", "--compare", "generated", "--out", str(out_file)]) == 0
    other = json.loads(out_file.read_text())
    assert other["protocol"]["space"] == "lab" and other["protocol"]["compare"] == "generated"


def test_missing_frame_is_a_clear_error(city, tmp_path, capsys):
    results = write_results(tmp_path / "images", city, lambda im, i: im.resize(SIZE))
    next(results.iterdir()).unlink()
    with pytest.raises(ReproError, match="missing"):
        evaluate(results, city, progress=False)
    assert main(["evaluate", "photo2labels", "--results", str(results), "--cityscapes", str(city)]) == 1
    assert "missing" in capsys.readouterr().err


def test_unreadable_label_file_is_named(tmp_path):
    bad = tmp_path / "frankfurt_000000_000019_gtFine_labelIds.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(ReproError, match=r"cannot read .*frankfurt_000000_000019_gtFine_labelIds\.png.*re-extract"):
        load_train_ids(bad)
