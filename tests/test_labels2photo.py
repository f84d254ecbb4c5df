"""labels -> photo scoring: the original's fast_hist quirk reproduced exactly, the per-frame input the net
sees, hand-set nets with hand-computed scores, batching invariance, and the whole command end to end on
the synthetic city with a segmenter trained there."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from repro.cli import main
from repro.data.synth_city import generate
from repro.eval import calibration
from repro.eval import labels2photo as L
from repro.eval.fcn import fcn8s, save_segmenter
from repro.eval.groundtruth import ground_truth_files, load_train_ids
from repro.eval.metrics import confusion_matrix


def original_fast_hist(a, b, n):
    """pix2pix scripts/eval_cityscapes/util.py, as the paper's numbers were computed."""
    k = np.where((a >= 0) & (a < n))[0]
    bc = np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2)
    if len(bc) != n ** 2:
        return 0
    return bc.reshape(n, n)


@pytest.mark.parametrize("seed", range(6))
def test_pix2pix_frame_hist_is_the_original_fast_hist(seed):
    rng = np.random.default_rng(seed)
    gt = rng.choice(np.r_[np.arange(19), 255], size=(5, 40)).astype(np.uint8)
    pred = rng.integers(0, 20, size=(5, 40)).astype(np.uint8)
    if seed % 2:  # no bicycle predicted as channel 19: the frame is kept, with displaced pixels
        pred[(gt == 18) & (pred == 19)] = 18
    else:  # one bicycle pixel predicted as channel 19: the original drops the frame
        gt[0, 0], pred[0, 0] = 18, 19
    strict = confusion_matrix(gt, pred, 19, n_pred=20)
    hist, displaced = L.pix2pix_frame_hist(strict)
    reference = original_fast_hist(gt.flatten(), pred.flatten(), 19)
    if seed % 2:
        np.testing.assert_array_equal(hist, reference)
        assert displaced == int(((gt < 18) & (pred == 19)).sum()) > 0
    else:
        assert reference == 0 and hist is None


def test_frame_confusions_on_the_device_match_bincount_per_frame():
    rng = np.random.default_rng(0)
    gt = rng.choice(np.r_[np.arange(19), 255], size=(3, 17, 9)).astype(np.uint8)
    pred = rng.integers(0, 20, size=(3, 17, 9))
    got = L.frame_confusions(torch.from_numpy(gt), torch.from_numpy(pred), 20).numpy()
    for i in range(3):
        np.testing.assert_array_equal(got[i], confusion_matrix(gt[i], pred[i], 19, n_pred=20))


def test_tally_counts_what_the_quirk_touched():
    tally = L.Tally(n_pred=20)
    kept = np.zeros((19, 20), np.int64)
    kept[0, 0], kept[0, 19], kept[5, 19], kept[18, 18] = 10, 3, 2, 4
    dropped = np.zeros((19, 20), np.int64)
    dropped[2, 2], dropped[18, 19] = 7, 1
    tally.add("a_000000_000000", kept, channel_19_all=9)
    tally.add("b_000000_000000", dropped, channel_19_all=1)
    q = tally.quirk()
    assert q["pixels_predicted_channel_19"] == 6 and q["pixels_predicted_channel_19_incl_ignored"] == 10
    assert q["pixels_displaced_to_wrong_cell"] == 5
    assert q["frames_dropped"] == 1 and q["frames_dropped_ids"] == ["b_000000_000000"]
    assert q["pixels_in_dropped_frames"] == 8 and q["frames"] == 2
    assert tally.pix2pix[1, 0] == 3 and tally.pix2pix[6, 0] == 2 and tally.pix2pix[0, 0] == 10
    assert tally.pix2pix.sum() == 19 and tally.strict.sum() == 27


def test_caffe_input_is_bgr_minus_mean_unscaled():
    image = torch.tensor([[[[10, 20, 30], [255, 0, 128]]]], dtype=torch.uint8)
    x = L.caffe_input(image)
    assert x.shape == (1, 3, 1, 2) and x.dtype == torch.float32
    mean_b, mean_g, mean_r = L.MEAN_BGR
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([30 - mean_b, 20 - mean_g, 10 - mean_r]))
    torch.testing.assert_close(x[0, :, 0, 1], torch.tensor([128 - mean_b, 0 - mean_g, 255 - mean_r]))


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("city") / "cs", n_train=6, n_val=4, size=(64, 32), progress=False)


def write_results(city, out, size=(32, 16), shuffle=False):
    """Val photos shrunk to `size`, saved under the generated-image names (shuffled: photo of another frame)."""
    out.mkdir(parents=True, exist_ok=True)
    photos = sorted((city / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    sources = photos[1:] + photos[:1] if shuffle else photos
    for target, source in zip(photos, sources):
        Image.open(source).convert("RGB").resize(size, Image.BICUBIC).save(out / target.name)
    return out


class Spy(torch.nn.Module):
    """Records what the net is given; predicts class 0 everywhere."""

    n_classes = 20

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return torch.zeros(x.shape[0], 20, *x.shape[2:])


def test_net_sees_the_generated_image_bilinearly_upsampled_to_the_full_labels(city, tmp_path):
    results = write_results(city, tmp_path / "results", size=(24, 10))
    truth = ground_truth_files(city)
    frames = [(fid, results / (fid + "_leftImg8bit.png"), truth[fid]) for fid in sorted(truth)]
    spy = Spy()
    L.score_frames(frames, spy, "cpu", batch_size=3)
    seen = torch.cat(spy.inputs)
    assert seen.shape == (4, 3, 32, 64)  # the labels' size, not the image's
    for i, (_, image, _) in enumerate(frames):
        upsampled = np.asarray(Image.open(image).convert("RGB").resize((64, 32), Image.BILINEAR), np.float32)
        expected = upsampled[..., ::-1] - np.array(L.MEAN_BGR, np.float32)
        np.testing.assert_array_equal(seen[i].permute(1, 2, 0).numpy(), expected)


def constant_net(channel):
    """A hand-set FCN-8s: all weights 0, score_pool3's bias votes for `channel`, upscore8 passes it on."""
    model = fcn8s(width=1 / 32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.score_pool3.bias[channel] = 1
        model.upscore8.weight[range(20), range(20)] = 1
    return model


@pytest.mark.parametrize("channel", [13, 19])
def test_hand_set_nets_give_the_hand_computed_scores(city, tmp_path, channel):
    results = write_results(city, tmp_path / "results")
    segmenter = tmp_path / "constant.pt"
    save_segmenter(constant_net(channel), segmenter, source="hand-set")
    result = L.evaluate(results, city, segmenter, protocol="pix2pix", device="cpu", batch_size=2)
    labels = {fid: load_train_ids(p) for fid, p in ground_truth_files(city).items()}
    valid = sum(int((lb < 19).sum()) for lb in labels.values())
    strict = result["other_protocols"]["strict"]["metrics"]
    q = result["quirk"]
    if channel == 13:  # every scored pixel predicted "car"
        cars = sum(int((lb == 13).sum()) for lb in labels.values())
        assert cars > 0
        expected = {"pixel_acc": cars / valid, "class_acc": 1 / 19, "iou": cars / valid / 19}
        for name in expected:
            assert result["metrics"][name] == pytest.approx(expected[name], rel=1e-9)
            assert strict[name] == pytest.approx(expected[name], rel=1e-9)
        assert q["pixels_predicted_channel_19"] == 0 and q["frames_dropped"] == 0
    else:  # channel 19 everywhere: strict scores 0; pix2pix shifts rows and drops frames holding a bicycle
        assert strict == {"pixel_acc": 0.0, "class_acc": 0.0, "iou": 0.0}
        dropped = sorted(fid for fid, lb in labels.items() if (lb == 18).any())
        kept = [lb for fid, lb in labels.items() if fid not in dropped]
        assert q["frames_dropped_ids"] == dropped
        assert q["pixels_predicted_channel_19"] == valid
        assert q["pixels_displaced_to_wrong_cell"] == sum(int((lb < 18).sum()) for lb in kept)
        confusion = np.asarray(result["confusion"])
        for a in range(18):
            assert confusion[a + 1, 0] == sum(int((lb == a).sum()) for lb in kept)
        assert result["metrics"]["pixel_acc"] == 0.0


def test_batch_size_and_mixed_frame_sizes_do_not_change_the_counts(city, tmp_path):
    results = write_results(city, tmp_path / "results")
    truth = ground_truth_files(city)
    frames = [(fid, results / (fid + "_leftImg8bit.png"), truth[fid]) for fid in sorted(truth)]
    odd = tmp_path / "odd_labelIds.png"  # one frame with another label size
    Image.open(frames[1][2]).resize((40, 24), Image.NEAREST).save(odd)
    frames[1] = (frames[1][0], frames[1][1], odd)
    torch.manual_seed(0)
    model = fcn8s(width=1 / 32).eval()
    with torch.no_grad():  # make channel 19 win somewhere, so both protocols differ
        model.score_pool3.bias[19] = 0.05
    one = L.score_frames(frames, model, "cpu", batch_size=1)
    many = L.score_frames(frames, model, "cpu", batch_size=3, workers=1)  # a loading process, too
    np.testing.assert_array_equal(one.strict, many.strict)
    np.testing.assert_array_equal(one.pix2pix, many.pix2pix)
    assert one.quirk() == many.quirk()
    assert one.quirk()["pixels_predicted_channel_19"] > 0 and not np.array_equal(one.strict[:, :19], one.pix2pix)


def test_calibration_status_follows_the_segmenter_file(city, tmp_path):
    segmenter = tmp_path / "seg.pt"
    digest = save_segmenter(constant_net(0), segmenter, source="hand-set")
    assert calibration.status(segmenter, digest)["comparable_to_paper"] is None
    calibration.calibration_file(segmenter).write_text(json.dumps({
        "segmenter": {"sha256": digest}, "comparable_to_paper": False,
        "metrics": {}, "paper": {}, "band": {}}))
    assert calibration.calibration_file(segmenter).name == "seg.calibration.json"
    assert calibration.status(segmenter, digest)["comparable_to_paper"] is False
    assert calibration.status(segmenter, "0" * 64)["comparable_to_paper"] is None


@pytest.mark.slow
def test_end_to_end_on_the_synthetic_city(tmp_path, capsys, monkeypatch):
    """Train a small segmenter on the synthetic city, calibrate it, then score real photos (high) and
    photos of the wrong frames (low) with `repro evaluate labels2photo`."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no VGG16 here: from scratch, said plainly
    city = generate(tmp_path / "cs", n_train=40, n_val=6, size=(128, 64), progress=False)
    seg = tmp_path / "seg" / "fcn.pt"
    assert main(["segmenter", "train", "--cityscapes", str(city), "--out", str(seg), "--width", "0.0625",
                 "--steps", "80", "--batch-size", "4", "--lr", "1e-3", "--device", "cpu", "--workers", "0"]) == 0
    assert "trains from scratch" in capsys.readouterr().err
    assert main(["segmenter", "calibrate", "--segmenter", str(seg), "--cityscapes", str(city),
                 "--device", "cpu", "--workers", "0"]) == 0
    calibration = json.loads((tmp_path / "seg" / "fcn.calibration.json").read_text())
    scored = {}
    for name, shuffle in (("good", False), ("shuffled", True)):
        results = write_results(city, tmp_path / name / "images", size=(64, 64), shuffle=shuffle)
        assert main(["evaluate", "labels2photo", "--results", str(results), "--cityscapes", str(city),
                     "--segmenter", str(seg), "--device", "cpu", "--workers", "0"]) == 0
        scored[name] = json.loads((tmp_path / name / "labels2photo.json").read_text())
    good, shuffled = scored["good"], scored["shuffled"]
    assert good["protocol"]["name"] == "pix2pix" and set(good["other_protocols"]) == {"strict"}
    assert good["comparable_to_paper"] is calibration["comparable_to_paper"] is False  # synthetic: never comparable
    assert calibration["comparability"].startswith("synthetic segmenter")
    assert good["calibration"]["metrics"] == calibration["metrics"]
    assert good["metrics"]["pixel_acc"] > 0.6
    assert good["metrics"]["pixel_acc"] > shuffled["metrics"]["pixel_acc"] + 0.1
    assert good["metrics"]["iou"] > shuffled["metrics"]["iou"]
    assert good["segmenter"]["sha256"] == calibration["segmenter"]["sha256"]
    assert len(good["per_class"]) == 19 and good["inputs"]["frames"] == 6
    assert good["inputs"]["generated_sizes"] == {"64x64": 6}
    out = capsys.readouterr().out
    assert "per-pixel acc" in out and "comparable to the paper: NO (synthetic segmenter" in out
    assert "scored: 6 images at 256x256, the synthetic city's val photos" in out
