"""Colour -> trainId mapping of generated label maps (repro.eval.palette)."""

import itertools

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS

from repro.eval import palette
from repro.eval.metrics import confusion_matrix, scores

SPACES = palette.SPACES


def expected_train_id(label) -> int:
    """The documented rule, written independently: a trainable class owns its colour, a colour shared
    with a trainable class goes to it, every other ignored colour is void."""
    if 0 <= label.trainId < 19:
        return label.trainId
    owners = [l.trainId for l in CITYSCAPES_LABELS if l.color == label.color and 0 <= l.trainId < 19]
    return owners[0] if owners else palette.VOID


def test_palette_covers_every_cityscapes_colour_once():
    colours, train_ids = palette.palette()
    assert len({tuple(c) for c in colours}) == len(colours)
    assert {tuple(c) for c in colours} == {tuple(l.color) for l in CITYSCAPES_LABELS}
    assert sorted(set(train_ids.tolist())) == list(range(20))  # all 19 classes and void


@pytest.mark.parametrize("space", SPACES)
def test_every_palette_colour_maps_to_its_own_id(space):
    image = np.array([[label.color for label in CITYSCAPES_LABELS]], dtype=np.uint8)
    expected = np.array([[expected_train_id(label) for label in CITYSCAPES_LABELS]])
    np.testing.assert_array_equal(palette.classify(image, space), expected)
    np.testing.assert_array_equal(palette.classify_brute_force(image, space), expected)


@pytest.mark.parametrize("space", SPACES)
def test_shared_colours_follow_the_documented_rule(space):
    shared = np.array([[(153, 153, 153), (0, 0, 142), (0, 0, 0)]], dtype=np.uint8)
    names = {l.trainId: l.name for l in CITYSCAPES_LABELS if 0 <= l.trainId < 19}
    result = palette.classify(shared, space)[0]
    assert [names.get(int(t), "void") for t in result] == ["pole", "car", "void"]


@pytest.mark.parametrize("space", SPACES)
def test_lookup_table_equals_brute_force_on_random_colours(space):
    rng = np.random.default_rng(1234)
    image = rng.integers(0, 256, (200, 250, 3), dtype=np.uint8)
    table = palette.classify(image, space)
    assert table.dtype == np.uint8 and table.shape == (200, 250)
    np.testing.assert_array_equal(table, palette.classify_brute_force(image, space))
    # random colours reach many classes and void, so the comparison is not trivially all-one-value
    assert len(np.unique(table)) == 20


@pytest.mark.parametrize("space", SPACES)
def test_lookup_table_equals_brute_force_near_palette_colours(space):
    # what generators actually paint: palette colours plus small noise, and midpoints between two
    # palette colours, where exact RGB ties must resolve the same way in both paths
    colours, _ = palette.palette()
    rng = np.random.default_rng(7)
    noisy = np.clip(colours[rng.integers(0, len(colours), 20000)].astype(int) + rng.integers(-40, 41, (20000, 3)), 0, 255)
    midpoints = [(a.astype(int) + b.astype(int)) // 2 for a, b in itertools.combinations(colours, 2)]
    image = np.concatenate([noisy, midpoints]).astype(np.uint8)[None]
    np.testing.assert_array_equal(palette.classify(image, space), palette.classify_brute_force(image, space))


def test_exact_rgb_tie_goes_to_the_lower_label_id():
    # (0,0,80) is exactly between truck (0,0,70, id 27) and caravan (0,0,90, id 29, void): truck wins
    image = np.array([[(0, 0, 80)]], dtype=np.uint8)
    assert palette.classify(image, "rgb")[0, 0] == 14  # truck
    assert palette.classify_brute_force(image, "rgb")[0, 0] == 14


def test_lookup_table_values_and_index_round_trip():
    table = palette.lookup_table("rgb")
    assert table.shape == (1 << 24,) and table.dtype == np.uint8 and table.max() == palette.VOID
    rng = np.random.default_rng(3)
    index = rng.integers(0, 1 << 24, 1000, dtype=np.uint32)
    np.testing.assert_array_equal(palette.rgb_to_index(palette.index_to_rgb(index)), index)


def test_void_colours_count_as_wrong():
    # ground truth: road everywhere; the generated map paints half of it in void colours
    void_colours = [l.color for l in CITYSCAPES_LABELS if expected_train_id(l) == palette.VOID]
    road = next(l.color for l in CITYSCAPES_LABELS if l.name == "road")
    image = np.array([void_colours + [road] * len(void_colours)], dtype=np.uint8)
    gt = np.zeros(image.shape[:2], dtype=np.uint8)
    pred = palette.classify(image)
    conf = confusion_matrix(gt, pred, 19, n_pred=20)
    assert conf[0, palette.VOID] == len(void_colours)
    assert conf[0, 0] == len(void_colours)
    s = scores(conf)
    assert s["pixel_acc"] == pytest.approx(0.5)
    assert s["per_class_acc"][0] == pytest.approx(0.5)


def test_disk_cache_is_written_reused_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    table = palette.lookup_table("rgb", cache_dir=tmp_path)  # from memory, written to disk
    (path,) = tmp_path.glob("cityscapes_palette_rgb_*.npy")
    monkeypatch.setattr(palette, "_TABLES", {})

    def no_build(space, kind="full"):
        raise AssertionError("the table should have been read from the cache")

    monkeypatch.setattr(palette, "build_table", no_build)
    np.testing.assert_array_equal(palette.lookup_table("rgb", cache_dir=tmp_path), table)

    path.write_bytes(b"not a table")
    monkeypatch.setattr(palette, "_TABLES", {})
    monkeypatch.setattr(palette, "build_table", lambda space, kind="full": table)
    np.testing.assert_array_equal(palette.lookup_table("rgb", cache_dir=tmp_path), table)
    np.testing.assert_array_equal(np.load(path), table)  # damaged file replaced by a good one
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8 RGB"):
        palette.classify(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        palette.classify(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="colour space"):
        palette.classify(np.zeros((4, 4, 3), dtype=np.uint8), space="hsv")


def test_train_palette_snaps_every_colour_to_a_class():
    """The switch for the other reading of the open void point: the 19 class colours only."""
    colours, train_ids = palette.palette("train")
    assert sorted(train_ids.tolist()) == list(range(19))
    np.testing.assert_array_equal(palette.classify(colours[None], "rgb", kind="train")[0], train_ids)
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
    table = palette.classify(image, "rgb", kind="train")
    np.testing.assert_array_equal(table, palette.classify_brute_force(image, "rgb", kind="train"))
    assert palette.VOID not in table and palette.classify(np.zeros((1, 1, 3), np.uint8), kind="train")[0, 0] != palette.VOID
    assert palette.palette_sha256("train") != palette.palette_sha256("full")
