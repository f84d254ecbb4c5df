"""FID/KID (repro.eval.fid) with random Inception weights that the test writes into a temporary TORCH_HOME.

Random weights give meaningless absolute numbers, but everything this module adds to pytorch-fid is
exercised: finding and loading the local weights (downloads are tested in test_weights.py), reading folders
and tensors, the FID/KID arithmetic, the fixed-subset scorer for training and its reference cache, the CLI
and its JSON.
"""

import json
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from pytorch_fid import inception as fid_inception

from repro import ReproError
from repro.cli import main
from repro.eval import fid


real_load_state_dict_from_url = torch.hub.load_state_dict_from_url


def forbid_download(*args, **kwargs):
    raise AssertionError("repro tried to download the Inception weights")


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    monkeypatch.setattr(fid_inception, "load_state_dict_from_url", forbid_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", forbid_download)


def random_inception_state_dict(seed=0) -> dict:
    """pytorch-fid's FID Inception with He-initialised random weights (so features do not vanish)."""
    torch.manual_seed(seed)
    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None):
        model = fid_inception.fid_inception_v3()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch_home = tmp_path_factory.mktemp("torch_home")
    path = torch_home / "hub" / "checkpoints" / fid.WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_inception_state_dict(), path)
    return path


@pytest.fixture
def torch_home(weights_file, monkeypatch):
    """TORCH_HOME pointing at the folder holding the random weights, as a user's cache would."""
    monkeypatch.setenv("TORCH_HOME", str(weights_file.parents[2]))
    assert torch.hub.get_dir() == str(weights_file.parents[1])
    return weights_file.parents[2]


def write_images(folder, kind, n=2, size=(40, 32), seed=0):
    """Smooth colour gradients ("a") or uniform noise ("b"), mixed sizes allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = size
        if kind == "a":
            x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
            image = np.stack([x, y, np.full_like(x, rng.random())], -1) * 255
        else:
            image = rng.random((h, w, 3)) * 255
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    a = write_images(root / "a", "a")
    b = write_images(root / "b", "b")
    same = root / "a_copy"
    same.mkdir()
    for p in sorted(a.iterdir()):
        (same / f"copy_{p.name}").write_bytes(p.read_bytes())
    return a, b, same


@pytest.mark.slow  # 8 Inception forwards on CPU: 4-15 s
def test_scorer_identical_folders_give_zero_different_ones_more(torch_home, folders):
    a, b, same = folders
    scorer = fid.FIDScorer(a, device="cpu")
    assert scorer.reference.shape == (2, 2048) and np.abs(scorer.reference).sum() > 0

    identical = scorer.score(same)
    different = scorer.score(b)
    assert abs(identical["fid"]) < 1e-3 * different["fid"]
    assert different["fid"] > 0
    assert different["kid"] > identical["kid"] and different["kid"] > 0
    assert identical["n_images"] == identical["n_reference"] == 2

    # generator outputs in [-1, 1] give the same features as the same images read from disk
    tensor = torch.stack([fid.load_image(p) for p in sorted(a.iterdir())]) * 2 - 1
    np.testing.assert_allclose(scorer.features(tensor), scorer.reference, rtol=1e-4, atol=1e-5)


def test_fid_and_kid_arithmetic_on_known_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 3))
    b = rng.normal(size=(400, 3)) + np.array([2.0, 0.0, 0.0])
    # FID between N(0, I) and N(m, I) is |m|^2; sampled estimates land close to 4
    assert fid.fid_from_features(a, b) == pytest.approx(4.0, abs=0.6)
    assert abs(fid.fid_from_features(a, a)) < 1e-9
    kid_same, _ = fid.kid_from_features(a, a.copy(), n_subsets=10, subset_size=100)
    kid_diff, kid_std = fid.kid_from_features(a, b, n_subsets=10, subset_size=100)
    assert kid_diff > 10 * abs(kid_same) and kid_std >= 0


@pytest.mark.parametrize("n_a, n_b", [(12, 9), (30, 40)])
def test_fid_equals_pytorch_fid_formula_below_and_above_the_feature_dimension(n_a, n_b):
    # 12/9 images of 16-d features use the nuclear-norm identity, 30/40 pytorch-fid's sqrtm path
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(n_a)
    a, b = rng.normal(size=(n_a, 16)), rng.normal(size=(n_b, 16)) * 1.5 + 0.3
    reference = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid.fid_from_features(a, b) == pytest.approx(reference, rel=1e-6)


def test_kid_matches_a_direct_unbiased_mmd():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.5
    k = lambda u, v: (u @ v / 4 + 1) ** 3
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    # one subset of all 6 images is the whole set, whatever the permutation
    assert fid.kid_from_features(x, y, n_subsets=1, subset_size=6)[0] == pytest.approx(xx + yy - 2 * xy)


@pytest.mark.slow  # 4 Inception forwards on CPU: 3-8 s
def test_cli_writes_json_and_accepts_explicit_weights(weights_file, folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # only --weights can supply them
    a, b = write_images(tmp_path / "a", "a", n=2), write_images(tmp_path / "b", "b", n=2)
    out = tmp_path / "fid.json"
    assert main(["fid", str(a), str(b), "--weights", str(weights_file), "--device", "cpu",
                 "--batch-size", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "FID" in captured.out
    result = json.loads(out.read_text())
    assert result["metrics"]["fid"] > 0 and "kid" in result["metrics"]
    assert result["inputs"]["a_images"] == result["inputs"]["b_images"] == 2
    assert result["weights"]["path"] == str(weights_file) and len(result["weights"]["sha256"]) == 64
    # random weights of the right shapes: accepted, but said loudly and recorded (issue 22)
    assert result["weights"]["published"] is False
    assert "are NOT pytorch-fid's published" in captured.err and "NOT THE PUBLISHED WEIGHTS" in captured.out
    from repro import weights
    prefix = result["weights"]["sha256"][:8]  # as if this file were the published one
    monkeypatch.setattr(weights, "INCEPTION", weights.HubFile("inception", f"https://x.invalid/pt-{prefix}.pth",
                                                              "REPRO_INCEPTION_URL", "FID"))
    assert main(["fid", str(a), str(b), "--weights", str(weights_file), "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert json.loads(out.read_text())["weights"]["published"] is True and "NOT" not in captured.err + captured.out


def test_missing_weights_offline_name_the_file_to_place(tmp_path, monkeypatch, folders, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", real_load_state_dict_from_url)  # the fetch is tried
    monkeypatch.setenv("REPRO_INCEPTION_URL", "http://127.0.0.1:9/pt_inception.pth")  # and fails: offline
    expected = tmp_path / "torch_home" / "hub" / "checkpoints" / fid.WEIGHTS_FILE
    with pytest.raises(ReproError) as err:
        fid.FIDScorer(folders[0])
    assert fid.WEIGHTS_FILE in str(err.value) and str(expected) in str(err.value)
    assert "could not download" in str(err.value) and fid_inception.FID_WEIGHTS_URL in str(err.value)
    assert "repro weights get inception" in str(err.value) and "--weights PATH" in str(err.value)
    assert not expected.exists()

    assert main(["fid", str(folders[0]), str(folders[1]), "--device", "cpu"]) == 1  # a ReproError (exit 2 is a usage error)
    assert str(expected) in capsys.readouterr().err

    with pytest.raises(ReproError, match="no such file"):
        fid.load_inception(tmp_path / "nowhere.pth")


def test_wrong_weights_file_is_refused(tmp_path):
    bad = tmp_path / fid.WEIGHTS_FILE
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ReproError, match="not pytorch-fid"):
        fid.load_inception(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(ReproError, match="is not a torch file"):
        fid.load_inception(bad)


def test_folder_with_too_few_images_is_refused(tmp_path):
    write_images(tmp_path / "one", "a", n=1)
    with pytest.raises(ReproError, match="at least 2"):
        fid.image_files(tmp_path / "one")
    with pytest.raises(ReproError, match="not a folder"):
        fid.image_files(tmp_path / "missing")


@pytest.mark.slow  # 3 x 2 Inception forwards on CPU: 3-10 s
def test_reference_statistics_are_cached_by_content_and_weights(weights_file, folders, tmp_path, monkeypatch):
    from pytorch_fid.fid_score import compute_statistics_of_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # the cache goes here; weights passed explicitly
    a, b, same = folders
    first = fid.FIDScorer(a, weights=weights_file)
    assert not first.cache_hit and first.cache_file.parent == tmp_path / "torch_home" / "hub" / "repro-fid-stats"
    with np.load(first.cache_file) as cached:
        np.testing.assert_array_equal(cached["features"], first.reference)
        np.testing.assert_allclose(cached["mu"], first.reference.mean(0))
        np.testing.assert_allclose(cached["sigma"], np.cov(first.reference, rowvar=False))
    mu, sigma = compute_statistics_of_path(str(first.cache_file), None, 50, 2048, "cpu")  # pytorch-fid reads it
    np.testing.assert_array_equal(mu, first.reference.mean(0))

    real_features = fid.features
    monkeypatch.setattr(fid, "features", lambda *a, **k: pytest.fail("the cached reference was recomputed"))
    second = fid.FIDScorer(a, weights=weights_file)
    assert second.cache_hit and second.cache_file == first.cache_file
    np.testing.assert_array_equal(second.reference, first.reference)

    monkeypatch.setattr(fid, "features", real_features)
    other_names = fid.FIDScorer(same, weights=weights_file)  # same pixels, other names: another key
    assert not other_names.cache_hit and other_names.cache_file != first.cache_file
    other_weights = tmp_path / "other.pth"
    state = torch.load(weights_file, weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1  # another weights file (fc is not used by the pool features)
    torch.save(state, other_weights)
    assert not fid.FIDScorer(a, weights=other_weights).cache_hit

    # `repro fid`: DIR_B is the reference, read from the cache; the scores do not change
    fresh = fid.fid_between_folders(b, a, weights_file, progress=False, cache=False)
    cached = fid.fid_between_folders(b, a, weights_file, progress=False)
    assert cached["reference_cache"] == {"file": str(first.cache_file), "hit": True}
    assert fresh["reference_cache"]["hit"] is False and cached["metrics"] == fresh["metrics"]


def test_our_fid_network_equals_pytorch_fids_inceptionv3(weights_file):
    """repro builds pytorch-fid's FID network from a local file (pytorch-fid's builder always fetches); the
    features must be pytorch-fid's own: its InceptionV3([pool3]) with the same weights, handed in by a patch
    (fine in a test), on the same inputs."""
    from pytorch_fid.inception import InceptionV3

    state = torch.load(weights_file, weights_only=True)
    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: state):
        theirs = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[fid.DIMS]]).eval()
    ours = fid.load_inception(weights_file)
    x = torch.rand(2, 3, fid.SIZE, fid.SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(x)[0], theirs(x)[0])
