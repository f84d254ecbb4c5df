"""`repro data synth-city`: official Cityscapes layout and names, real ids and colours, varied scenes,
photos that carry the labels (a learnable translation), determinism and speed."""

import argparse
import hashlib
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from repro import ReproError
from repro.data import synth_city
from repro.data.synth_city import generate
from repro.eval.groundtruth import id_to_train_id

SIZE = (128, 64)


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "city", n_train=9, n_val=6, size=SIZE, seed=3, zips=True,
                    progress=False)


def expected_members(n_train: int, n_val: int) -> set[str]:
    members = set()
    for split, n in (("train", n_train), ("val", n_val)):
        for city, frame in synth_city.frame_names(split, n):
            members |= {
                f"leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png",
                f"gtFine/{split}/{city}/{frame}_gtFine_labelIds.png",
                f"gtFine/{split}/{city}/{frame}_gtFine_color.png",
                f"gtFine/{split}/{city}/{frame}_gtFine_instanceIds.png",
            }
    return members


def frames(city: Path):
    """(labelIds, colour RGBA, photo RGB, instanceIds) arrays of every frame, train then val."""
    for label_path in sorted(city.glob("gtFine/*/*/*_gtFine_labelIds.png")):
        stem = str(label_path).removesuffix("_gtFine_labelIds.png")
        photo = Path(stem.replace("/gtFine/", "/leftImg8bit/") + "_leftImg8bit.png")
        yield (
            np.asarray(Image.open(label_path)),
            np.asarray(Image.open(stem + "_gtFine_color.png")),
            np.asarray(Image.open(photo)),
            np.asarray(Image.open(stem + "_gtFine_instanceIds.png")),
        )


def test_official_layout_and_names(city):
    files = {p.relative_to(city).as_posix() for p in city.rglob("*") if p.is_file()}
    assert files - {"README", "license.txt", "synth-city.json", "gtFine_trainvaltest.zip",
                    "leftImg8bit_trainvaltest.zip"} == expected_members(9, 6)
    names = sorted(p.name for p in city.glob("leftImg8bit/val/frankfurt/*"))
    assert names[0] == "frankfurt_000000_000019_leftImg8bit.png"
    assert {p.name for p in city.glob("gtFine/train/*")} == {"aachen", "bochum", "bremen"}
    assert {p.name for p in city.glob("gtFine/val/*")} == {"frankfurt", "lindau", "munster"}


def test_zips_hold_the_same_files_as_the_official_packages(city):
    expected = expected_members(9, 6)
    for package, prefix in (("gtFine_trainvaltest.zip", "gtFine/"), ("leftImg8bit_trainvaltest.zip", "leftImg8bit/")):
        with zipfile.ZipFile(city / package) as zf:
            names = set(zf.namelist())
            assert names == {m for m in expected if m.startswith(prefix)} | {"README", "license.txt"}
            some = sorted(names - {"README", "license.txt"})[0]
            assert zf.read(some) == (city / some).read_bytes()


def test_image_modes_ids_and_colours_are_the_official_ones(city):
    for label_path in city.glob("gtFine/*/*/*_gtFine_labelIds.png"):
        stem = str(label_path).removesuffix("_gtFine_labelIds.png")
        assert Image.open(label_path).mode == "L"
        assert Image.open(stem + "_gtFine_color.png").mode == "RGBA"
        assert Image.open(stem + "_gtFine_instanceIds.png").mode == "I;16"
        photo = Image.open(stem.replace("/gtFine/", "/leftImg8bit/") + "_leftImg8bit.png")
        assert photo.mode == "RGB" and photo.size == SIZE
    for labels, colour, _, instances in frames(city):
        table = np.array([id2label[i].color if i in id2label else (0, 0, 0) for i in range(256)], np.uint8)
        assert np.array_equal(colour[..., :3], table[labels]) and (colour[..., 3] == 255).all()
        things = instances >= 1000
        assert np.array_equal(np.where(things, instances // 1000, instances), labels)
        assert all(id2label[int(i)].hasInstances for i in np.unique(labels[things]))


def test_scenes_cover_the_classes_and_vary_per_frame(city):
    to_train = id_to_train_id()
    present, per_frame, voids, maps = set(), [], 0, []
    for labels, *_ in frames(city):
        train_ids = to_train[labels]
        classes = set(np.unique(train_ids[train_ids < 255]).tolist())
        present |= classes
        per_frame.append(len(classes))
        voids += int(np.isin(labels, [1, 4]).sum())  # ego vehicle, static: ignored by the evaluator
        maps.append(labels)
        h, w = labels.shape
        assert (labels[: h // 8] == 23).mean() > 0.3 or (labels[: h // 8] == 11).mean() > 0.3  # sky/buildings on top
        assert labels[int(h * 0.85), w // 2] in (1, 7, 26, 28)  # road (or a vehicle on it) at the bottom
    assert len(present) >= 10
    assert min(per_frame) >= 6
    assert voids > 0
    agreement = [(a == b).mean() for i, a in enumerate(maps) for b in maps[i + 1:]]
    assert max(agreement) < 0.9  # no two layouts alike


def test_photo_colours_predict_the_labels(city):
    """A learnable translation: a colour-histogram classifier fitted on some frames labels the pixels of
    other frames far above the majority-class rate (a CNN with context does better still)."""
    to_train = id_to_train_id()
    rgb, cls = [], []
    for labels, _, photo, _ in frames(city):
        keep = to_train[labels] < 255
        rgb.append(photo[keep] // 16)
        cls.append(to_train[labels][keep])
    half = len(rgb) // 2
    key = [q[:, 0].astype(int) * 256 + q[:, 1] * 16 + q[:, 2] for q in rgb]
    counts = np.zeros((4096, 19))
    np.add.at(counts, (np.concatenate(key[:half]), np.concatenate(cls[:half])), 1)
    test_key, test_cls = np.concatenate(key[half:]), np.concatenate(cls[half:])
    accuracy = (counts[test_key].argmax(1) == test_cls).mean()
    majority = np.bincount(test_cls).max() / len(test_cls)
    assert accuracy > majority + 0.2, (accuracy, majority)


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        digest.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return digest.hexdigest()


def test_deterministic_per_seed_and_stable_under_more_frames(tmp_path):
    a = generate(tmp_path / "a", n_train=3, n_val=1, size=SIZE, seed=7, progress=False)
    b = generate(tmp_path / "b", n_train=3, n_val=1, size=SIZE, seed=7, progress=False)
    c = generate(tmp_path / "c", n_train=3, n_val=1, size=SIZE, seed=8, progress=False)
    more = generate(tmp_path / "more", n_train=5, n_val=1, size=SIZE, seed=7, progress=False)
    assert tree_digest(a) == tree_digest(b) != tree_digest(c)
    for p in a.rglob("*.png"):
        assert p.read_bytes() == (more / p.relative_to(a)).read_bytes()


def test_default_size_is_fast(tmp_path):
    start = time.perf_counter()
    generate(tmp_path / "city", n_train=40, n_val=10, seed=1, progress=False)
    elapsed = time.perf_counter() - start
    assert Image.open(next((tmp_path / "city").glob("leftImg8bit/*/*/*.png"))).size == synth_city.DEFAULT_SIZE
    assert elapsed < 12, f"50 frames took {elapsed:.1f} s: the default set of 250 would not be well under a minute"


def test_existing_output_is_reused_or_refused(tmp_path, city):
    assert generate(city, n_train=9, n_val=6, size=SIZE, seed=3, zips=True, progress=False) == city
    with pytest.raises(ReproError, match="already exists"):
        generate(city, n_train=9, n_val=6, size=SIZE, seed=4, zips=True, progress=False)
    assert not list(city.parent.glob("*.partial"))


def test_size_parsing():
    from repro.commands.options import size_pair

    assert size_pair("320x160") == (320, 160)
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
        size_pair("320")
    with pytest.raises(ReproError, match="64x32"):
        generate(Path("unused"), size=(32, 16), progress=False)


def test_cli_synth_city(tmp_path, capsys):
    from repro.cli import build_parser

    parser = build_parser(["data", "synth-city"])
    args = parser.parse_args(["data", "synth-city", "--out", str(tmp_path / "c"), "--train", "2", "--val", "1",
                              "--size", "96x48", "--seed", "5", "--zips"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    assert len(list((tmp_path / "c").glob("leftImg8bit/*/*/*.png"))) == 3
    assert (tmp_path / "c" / "gtFine_trainvaltest.zip").is_file()
    assert Image.open(next((tmp_path / "c").glob("leftImg8bit/val/*/*.png"))).size == (96, 48)
