"""`repro segmenter train` and `calibrate`: the VGG16 trunk mapping (with a fake torchvision checkpoint in a
temporary TORCH_HOME), the loud from-scratch fallback, the written segmenter, the calibration verdict."""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.nn import functional as F

from repro import ReproError
from repro.data.synth_city import generate
from repro.eval import segmenter as S
from repro.eval.fcn import fcn8s, load_segmenter, save_segmenter
from repro.eval.calibration import calibration_file, load_band, verdict
from repro.eval.calibration import status as calibration_status
from repro.eval.labels2photo import MEAN_BGR

WIDTH = 1 / 16


def fake_vgg16(width: float) -> dict:
    """torchvision's vgg16 state_dict keys, with every channel count scaled by `width`."""
    with torch.device("meta"):
        keys = torchvision.models.vgg16().state_dict()
    scale = lambda n: n if n in (3, 1000) else max(1, round(n * width))  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    fake = {}
    for key, value in keys.items():
        shape = [scale(n) for n in value.shape]
        if key == "classifier.0.weight":  # Linear over the flattened 512 x 7 x 7 pool5
            shape = [scale(4096), scale(512) * 49]
        fake[key] = torch.randn(shape, generator=generator) * 0.1
    return fake


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def put_vgg16(torch_home, state):
    path = torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


def test_vgg16_keys_land_on_the_fcn_trunk_at_full_size():
    with torch.device("meta"):
        mapped = S.vgg16_to_fcn(torchvision.models.vgg16().state_dict())
        own = fcn8s().state_dict()
    assert sorted(mapped) == sorted(k for k in own if not k.startswith(("score", "upscore")))
    assert all(mapped[k].shape == own[k].shape for k in mapped)


def test_trunk_from_the_torch_cache_computes_what_torchvision_computes(torch_home):
    vgg = fake_vgg16(WIDTH)
    put_vgg16(torch_home, vgg)
    model = fcn8s(width=WIDTH)
    assert S.init_trunk(model) == "imagenet-vgg16"
    torch.testing.assert_close(model.conv3_2.weight, vgg["features.12.weight"])
    torch.testing.assert_close(model.fc7.bias, vgg["classifier.3.bias"])

    # conv1_1 on Caffe's input (BGR 0..255 minus the Cityscapes mean) == torchvision's conv1 on RGB/255
    # normalised by the ImageNet mean/std, wherever the window lies inside the image
    rgb = torch.rand(1, 3, 12, 12) * 255
    normalised = (rgb / 255 - torch.tensor(S.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(S.IMAGENET_STD).view(1, 3, 1, 1)
    caffe = rgb.flip(1) - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
    ours = F.conv2d(caffe, model.conv1_1.weight, model.conv1_1.bias)
    theirs = F.conv2d(normalised, vgg["features.0.weight"], vgg["features.0.bias"])
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)

    # fc6 as a 7x7 convolution == the Linear layer on the flattened pool5
    pool5 = torch.randn(1, model.conv5_3.weight.shape[0], 7, 7)
    torch.testing.assert_close(model.fc6(pool5).flatten(),
                               F.linear(pool5.flatten(1), vgg["classifier.0.weight"], vgg["classifier.0.bias"]).flatten(),
                               rtol=1e-4, atol=1e-4)


def test_no_or_unfitting_vgg16_means_scratch_said_plainly_at_reduced_width(torch_home, capsys):
    """A reduced-width net cannot take the real trunk: one plain line, no banner telling the user to fetch
    weights that could not help (the full-width banner: test_weights)."""
    model = fcn8s(width=WIDTH)
    before = model.conv1_1.weight.clone()
    assert S.init_trunk(model) == "scratch"
    err = capsys.readouterr().err
    assert f"FCN-8s at width {WIDTH:g} trains from scratch" in err
    assert "!!!" not in err and "repro weights get" not in err and "FROM SCRATCH" not in err
    put_vgg16(torch_home, fake_vgg16(WIDTH))
    narrower = fcn8s(width=WIDTH / 2)
    assert S.init_trunk(narrower) == "scratch"
    err = capsys.readouterr().err
    assert "trains from scratch" in err and "!!!" not in err
    assert torch.equal(model.conv1_1.weight, before)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("city") / "cs", n_train=6, n_val=3, size=(64, 32), progress=False)


def test_training_data_is_the_photo_at_256_upsampled_to_the_labels(city):
    frames = S.photo_frames(city, "train")
    x, y = S.TrainingSet(frames)[0]
    assert x.shape == (3, 32, 64) and y.shape == (32, 64) and y.dtype == torch.int64

    photo = Image.open(frames[0][1]).convert("RGB").resize((256, 256), Image.BICUBIC).resize((64, 32), Image.BILINEAR)
    expected = np.asarray(photo, np.float32)[..., ::-1] - np.array(MEAN_BGR, np.float32)
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), expected)
    x_small, y_small = S.TrainingSet(frames, label_size=(32, 16))[0]
    assert x_small.shape == (3, 16, 32) and y_small.shape == (16, 32)


def test_train_writes_a_loadable_segmenter(city, torch_home, tmp_path):
    out = tmp_path / "seg.pt"
    digest = S.train(city, out, width=1 / 32, iters=3, batch_size=2, device="cpu", seed=1)
    model, info = load_segmenter(out)
    assert info["sha256"] == digest and model.width == 1 / 32 and model.n_classes == 20
    assert info["source"] == "trained" and info["training"]["trunk"] == "scratch"
    assert info["training"]["iters"] == 3 and info["trained_on"]["frames"] == 6
    assert info["training"]["optimizer"] == "adam" and info["training"]["lr"] == 1e-4
    again = S.train(city, tmp_path / "again" / "seg.pt", width=1 / 32, iters=3, batch_size=2, device="cpu", seed=1)
    assert again == digest  # same seed and file name (torch.save records the name), same bytes: provenance hashes name the weights
    S.train(city, tmp_path / "sgd.pt", width=1 / 32, iters=1, optimizer="sgd", device="cpu")
    _, sgd = load_segmenter(tmp_path / "sgd.pt")
    assert sgd["training"]["lr"] == pytest.approx(1e-10 * 64 * 32)  # Caffe's 1e-10 on the pixel sum


def test_train_runs_at_the_cpu_training_thread_count_whatever_the_process(city, torch_home, tmp_path, monkeypatch,
                                                                          capsys):
    """The smoke segmenter came out different in pytest (2 threads) and in the CLI: float sums split across
    threads round differently. Training now runs at repro.device.cpu_threads(), like every CPU run."""
    monkeypatch.setenv("REPRO_CPU_THREADS", "1")
    seen, loss = [], F.cross_entropy
    monkeypatch.setattr(S.F, "cross_entropy", lambda *a, **k: seen.append(torch.get_num_threads()) or loss(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        S.train(city, tmp_path / "seg.pt", width=1 / 32, iters=2, batch_size=2, device="cpu", seed=1, progress=False)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        assert "train FCN-8s" not in capsys.readouterr().err  # --quiet reproductions show no bar
    finally:
        torch.set_num_threads(before)
    assert load_segmenter(tmp_path / "seg.pt")[1]["training"]["cpu_threads"] == 1


def test_verdict_uses_the_band_of_expected_calibration_toml():
    band = load_band()
    assert band["paper"]["pixel_acc"] == 0.80 and band["paper"]["class_acc"] == 0.26 and band["paper"]["iou"] == 0.21
    inside = {"pixel_acc": 0.80 + band["band"]["pixel_acc"], "class_acc": 0.26, "iou": 0.21 - band["band"]["iou"]}
    deltas, ok = verdict(inside, band)
    assert ok and deltas["pixel_acc"] == pytest.approx(band["band"]["pixel_acc"])
    outside = dict(inside, class_acc=0.26 - band["band"]["class_acc"] - 0.001)
    assert verdict(outside, band)[1] is False


def test_calibrate_scores_real_photos_at_256_and_labels_the_segmenter(city, tmp_path):
    seg = tmp_path / "seg.pt"
    torch.manual_seed(0)
    digest = save_segmenter(fcn8s(width=1 / 32).eval(), seg, source="test")
    result = S.calibrate(seg, city, device="cpu", batch_size=2)
    assert result["paper"] == {k: v for k, v in load_band()["paper"].items()}
    assert result["protocol"]["resize_filter"] == "bicubic" and result["inputs"]["frames"] == 3
    deltas, ok = verdict(result["metrics"], load_band())
    assert result["comparable_to_paper"] is ok is False  # a random net is far from 0.80 / 0.26 / 0.21
    assert result["deltas"] == deltas and result["segmenter"]["sha256"] == digest
    # the calibration names what it actually scored: the synthetic city, never "real val photos"
    assert result["scored"] == {"images": 3, "size": "256x256", "synthetic": True,
                                "source": "the synthetic city's val photos (repro.data.synth_city), not Cityscapes"}
    assert result["comparability"].startswith("synthetic segmenter: calibrated against the synthetic city")
    assert "strict" in result["other_protocols"]
    # `repro segmenter calibrate` (run_calibrate) writes it next to the segmenter, where labels2photo looks for it
    import argparse

    from repro.commands.segmenter import run_calibrate

    run_calibrate(argparse.Namespace(segmenter=seg, cityscapes=city, device="cpu", batch_size=2, workers=1,
                                       resize_filter="nearest", jpeg_quality=100, tf32=False, out=None))
    written = json.loads(calibration_file(seg).read_text())
    assert written["protocol"]["resize_filter"] == "nearest" and written["protocol"]["jpeg_quality"] == 100
    assert calibration_status(seg, digest)["comparable_to_paper"] is False


BAND = {"paper": {"pixel_acc": 0.80, "class_acc": 0.26, "iou": 0.21}, "band": {"pixel_acc": 0.02, "class_acc": 0.02, "iou": 0.02}}
REAL = {"images": 500, "size": "256x256", "synthetic": False, "source": "real Cityscapes val photos (leftImg8bit/val)"}
SYNTHETIC = REAL | {"synthetic": True}


def test_only_the_authors_weights_or_a_full_width_cityscapes_net_can_be_comparable(tmp_path):
    """Comparable means comparable: a segmenter that lands in the band is comparable to the paper only when it
    is one the paper's numbers could have come from, calibrated on real Cityscapes."""
    from repro.eval.calibration import comparability

    caffe = {"source": "caffemodel", "width": 1.0}
    full = {"source": "trained", "width": 1.0, "trained_on": {"cityscapes": str(tmp_path), "synthetic": False},
            "training": {"trunk": "imagenet-vgg16"}}
    smoke = {"source": "trained", "width": 0.0625, "trained_on": {"cityscapes": str(tmp_path), "synthetic": True},
             "training": {"trunk": "scratch"}}
    narrow_real = smoke | {"trained_on": {"cityscapes": str(tmp_path), "synthetic": False}}
    assert comparability(caffe, REAL, True)[0] is True and comparability(full, REAL, True)[0] is True
    assert comparability(caffe, REAL, False) == (False, "outside the calibration band: labels -> photo scores are "
                                                        "not comparable to the paper's")
    for info, scored in ((smoke, SYNTHETIC), (smoke, REAL), (caffe, SYNTHETIC), (full, SYNTHETIC)):
        comparable, why = comparability(info, scored, True)  # in the band, and still not comparable
        assert comparable is False and why == "synthetic segmenter: calibrated against the synthetic city, not comparable to the paper"
    comparable, why = comparability(narrow_real, REAL, True)
    assert comparable is False and why.startswith("reduced-width segmenter (width 0.0625, scratch)")
    assert comparability({"source": "test", "width": 1.0}, REAL, True)[0] is False
    # a segmenter trained on a synthetic city before `synthetic` was recorded: its folder's marker says so
    city = generate(tmp_path / "old-city", n_train=1, n_val=1, size=(64, 32), progress=False)
    old = {"source": "trained", "width": 1.0, "trained_on": {"cityscapes": str(city)}}
    assert comparability(old, REAL, True)[0] is False


def test_a_kept_calibration_is_judged_again_by_todays_rule(city, tmp_path):
    """A calibration JSON written before this rule said "comparable: yes" for a synthetic smoke segmenter."""
    seg = tmp_path / "seg.pt"
    digest = save_segmenter(fcn8s(width=1 / 16).eval(), seg, source="trained",
                            trained_on={"cityscapes": str(city), "split": "train", "frames": 3})
    calibration_file(seg).write_text(json.dumps({
        "segmenter": {"sha256": digest, "source": "trained", "width": 0.0625, "trained_on": {"cityscapes": str(city)}},
        "inputs": {"cityscapes": str(city), "frames": 3}, "comparable_to_paper": True,
        "metrics": {"pixel_acc": 0.80, "class_acc": 0.26, "iou": 0.21}, "paper": BAND["paper"], "band": BAND["band"]}))
    status = calibration_status(seg, digest)
    assert status["comparable_to_paper"] is False and status["comparability"].startswith("synthetic segmenter")
    from repro.eval.calibration import read

    kept = read(seg, digest)  # what `repro reproduce` reuses and records in every result's provenance
    assert kept["comparable_to_paper"] is False and kept["scored"]["synthetic"] is True


def test_missing_photos_are_named(city, tmp_path):
    import shutil

    copy = tmp_path / "cs"
    shutil.copytree(city, copy)
    victim = sorted((copy / "leftImg8bit" / "val").glob("*/*.png"))[0]
    victim.unlink()
    with pytest.raises(ReproError, match=victim.name.split("_leftImg8bit")[0]):
        S.photo_frames(copy, "val")


def test_jpeg_round_trip_is_the_official_encoding():
    """--jpeg-quality 100 reproduces the prepared JPEG files: quality 100, chroma 4:4:4 (not Pillow's 4:2:0)."""
    import io

    from repro.data.cityscapes import _encode
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    resized = noise.resize((256, 256), Image.BICUBIC)
    official = Image.open(io.BytesIO(_encode(resized, "jpg"))).convert("RGB")
    np.testing.assert_array_equal(np.asarray(S.shrink_photo(noise, jpeg_quality=100)), np.asarray(official))
