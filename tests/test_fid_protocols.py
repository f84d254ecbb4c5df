"""The FID protocols (repro.eval.fid_protocols) against the public tools they claim to match, on real photos
(scikit-image's sample images), with random Inception weights (test_fid.random_inception_state_dict: the
numbers are meaningless, the equality of two computations on the same weights is not)."""

import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import skimage
import torch
from PIL import Image
from pytorch_fid import inception as fid_inception

from repro.eval import fid, fid_protocols
from test_fid import random_inception_state_dict

SAMPLES = Path(skimage.__file__).parent / "data"
# colour photos of several sizes (512x512 to 1411x1411, PNG and JPEG) and a grey one (camera, read as RGB)
FAKE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
REAL = ["camera.png", "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg", "color.png"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / fid.WEIGHTS_FILE
    torch.save(random_inception_state_dict(), path)
    return path


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name, files in (("fake", FAKE), ("real", REAL)):
        (root / name).mkdir()
        for f in files:
            shutil.copy(SAMPLES / f, root / name / f)
    return root / "fake", root / "real"


@pytest.mark.slow  # 2 x 9 Inception forwards on CPU, ours and pytorch-fid's: 10-30 s
def test_pytorch_fid_protocol_equals_pytorch_fids_own_computation(weights, photo_folders):
    """Our pytorch_fid column equals pytorch-fid's calculate_fid_given_paths (its CLI's function: its own
    InceptionV3, loader and calculate_frechet_distance) on the same folders, and our FID arithmetic equals its
    calculate_frechet_distance on the same features."""
    from pytorch_fid.fid_score import calculate_fid_given_paths, calculate_frechet_distance

    fake, real = photo_folders
    model = fid.load_inception(weights)
    ours_fake, ours_real = (fid_protocols.folder_features(model, f) for f in (fake, real))
    ours = fid_protocols.score(ours_fake, ours_real)["metrics"]["fid_pytorch_fid"]

    a, b = ours_fake["pytorch_fid"], ours_real["pytorch_fid"]
    same_features = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert ours == pytest.approx(same_features, rel=1e-5)

    state = torch.load(weights, weights_only=True)
    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: state):
        theirs = calculate_fid_given_paths([str(fake), str(real)], batch_size=1, device="cpu", dims=fid.DIMS,
                                           num_workers=0)
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert ours > 0


def test_clean_resize_equals_clean_fids_resizer_on_real_photos(photo_folders):
    """clean_resize is clean-fid's `clean` preprocessing of one file (its ResizeDataset: RGB, the clean resizer,
    the tensor it feeds its network) divided by 255, on JPEG and PNG photos of several sizes, grey included."""
    from cleanfid.utils import ResizeDataset

    files = sorted(photo_folders[0].iterdir()) + sorted(photo_folders[1].iterdir())
    theirs = ResizeDataset([str(f) for f in files], mode="clean")
    for i, f in enumerate(files):
        ours = fid_protocols.clean_resize(f)
        assert ours.shape == (3, 299, 299) and ours.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy() * 255, np.asarray(theirs[i]), rtol=0, atol=1e-4)
    # and not pytorch-fid's bilinear resize: the two protocols see different pixels
    bilinear = torch.nn.functional.interpolate(fid.load_image(files[0])[None], size=(299, 299), mode="bilinear",
                                               align_corners=False)[0]
    assert (bilinear - fid_protocols.clean_resize(files[0])).abs().max() > 0.01


@pytest.mark.slow  # 4 Inception forwards on CPU: 3-10 s
def test_clean_features_are_the_network_on_clean_fids_pixels(weights, photo_folders):
    """The network's own bilinear resize leaves a clean-resized 299x299 image unchanged, so the clean column is
    pytorch-fid's network applied to exactly clean-fid's pixels."""
    from cleanfid.utils import ResizeDataset

    files = sorted(photo_folders[0].iterdir())
    model = fid.load_inception(weights)
    pixels = torch.stack([torch.as_tensor(np.asarray(x)) for x in ResizeDataset([str(f) for f in files], mode="clean")])
    with torch.no_grad():
        direct = model.blocks(2 * (pixels / 255) - 1).flatten(1).double().numpy()
    np.testing.assert_allclose(fid_protocols.protocol_features(model, files, "clean"), direct, rtol=1e-5, atol=1e-6)


def test_kid_states_its_subset_rule_and_equals_clean_fids_on_whole_sets():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(0)
    fake = {"pytorch_fid": rng.normal(size=(12, 32)) + 0.3, "clean": rng.normal(size=(12, 32))}
    real = {"pytorch_fid": rng.normal(size=(15, 32)), "clean": rng.normal(size=(15, 32))}
    first, again = fid_protocols.score(fake, real), fid_protocols.score(fake, real)
    assert first == again  # seeded: the same number every time
    assert first["kid"] == {"kernel": "(x.y/d + 1)^3", "features": "pytorch_fid", "subsets": 100,
                            "subset_size": 12, "seed": 0}
    assert (first["n_fake"], first["n_real"]) == (12, 15)
    # subsets of the whole sets: clean-fid's kernel_distance (unseeded draws, so only then comparable) equals ours
    a, b = fake["pytorch_fid"], real["pytorch_fid"][:12]
    ours, _ = fid.kid_from_features(a, b, n_subsets=3, subset_size=12)
    assert ours == pytest.approx(kernel_distance(a, b, num_subsets=3, max_subset_size=12), rel=1e-9)


class FakeTorchScriptInception(torch.nn.Module):
    """The interface of NVIDIA's inception-2015-12-05.pt that clean-fid's InceptionV3W uses: a `layers` module
    from normalised 299x299 images to 2048 features, and forward(x, return_features)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 2048, 7, stride=8), torch.nn.ReLU(),
                                          torch.nn.AdaptiveAvgPool2d(1))

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


def test_clean_fid_protocol_is_clean_fids_own_pipeline_with_its_network_file(photo_folders, tmp_path):
    """With a local TorchScript network file, the clean_fid column's features are clean-fid's own
    get_files_features (its ResizeDataset, loader and InceptionV3W) on the same files, and nothing is fetched."""
    from cleanfid.fid import get_files_features
    from cleanfid.inception_torchscript import InceptionV3W

    from repro import ReproError

    path = tmp_path / fid_protocols.CLEAN_FID_FILE
    torch.jit.script(FakeTorchScriptInception()).save(str(path))
    network = fid_protocols.load_clean_fid_network(path)
    files = sorted(photo_folders[0].iterdir())
    ours = fid_protocols.protocol_features(None, files, "clean_fid", batch_size=3, clean_fid_network=network)
    theirs_net = InceptionV3W(str(tmp_path), download=False, resize_inside=False).eval()
    theirs = get_files_features([str(f) for f in files], model=theirs_net, num_workers=0, batch_size=3,
                                device=torch.device("cpu"), mode="clean", verbose=False)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert ours.shape == (len(files), 2048) and np.abs(ours).sum() > 0

    # folder_features adds the column only when the network is given
    fake = {"pytorch_fid": np.ones((2, 4)), "clean": np.ones((2, 4))}
    assert set(fid_protocols.score(fake, fake)["metrics"]) == {"fid_pytorch_fid", "fid_clean", "kid",
                                                              "kid_std_over_subsets"}
    wrong = tmp_path / "other.pt"
    path.rename(wrong)
    with pytest.raises(ReproError, match="inception-2015-12-05.pt"):
        fid_protocols.load_clean_fid_network(wrong)
