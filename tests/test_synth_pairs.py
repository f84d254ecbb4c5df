"""The synthetic horse2zebra archive (repro.data.synth_pairs): the real archive's layout, deterministic bytes,
two domains that differ in coat (plain vs striped) and not in layout."""

import io
import zipfile

import numpy as np
from PIL import Image

from repro.data import synth_pairs


def images(zf, folder):
    return [np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in zf.namelist()
            if n.startswith(f"horse2zebra/{folder}/") and n.endswith(".jpg")]


def test_archive_has_the_berkeley_layout_and_is_deterministic(tmp_path):
    counts = {"trainA": 5, "trainB": 4, "testA": 3, "testB": 2}
    first = synth_pairs.archive(tmp_path / "a.zip", counts=counts, size=48)
    second = synth_pairs.archive(tmp_path / "b.zip", counts=counts, size=48)
    assert first.read_bytes() == second.read_bytes()
    assert synth_pairs.archive(tmp_path / "c.zip", counts=counts, size=48, seed=1).read_bytes() != first.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert {n.split("/")[0] for n in zf.namelist()} == {"horse2zebra"}
        for folder, n in counts.items():
            found = images(zf, folder)
            assert len(found) == n
            assert all(im.shape == (48, 48, 3) and im.dtype == np.uint8 for im in found)


def test_domains_differ_in_coat_plain_horses_striped_zebras(tmp_path):
    path = synth_pairs.archive(tmp_path / "h2z.zip", counts={"trainA": 12, "trainB": 12, "testA": 0, "testB": 0})
    with zipfile.ZipFile(path) as zf:
        horses, zebras = images(zf, "trainA"), images(zf, "trainB")

    def near(image, rgb, tol=45):
        return (np.abs(image.astype(int) - rgb).max(-1) < tol).mean()

    # zebras have white and near-black coat pixels, horses (brown on grass and sky) have almost none
    for zebra in zebras:
        assert near(zebra, (235, 232, 225)) > 0.02 and near(zebra, (25, 22, 20)) > 0.02
    for horse in horses:
        assert near(horse, (235, 232, 225)) < 0.005 and near(horse, (25, 22, 20)) < 0.005
    # both on grass under sky: the green of the lower half and the blue of the top rows are shared
    for im in horses + zebras:
        assert im[-8:, :, 1].mean() > im[-8:, :, 2].mean() and im[:4, :, 2].mean() > im[:4, :, 0].mean()
    # every image differs (random place, size, facing)
    assert len({im.tobytes() for im in horses + zebras}) == 24
