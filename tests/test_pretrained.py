"""`repro pretrained get` and the pretrained row of Tables 2/3: a generator written here in the official
port's format (its key list, tests/data/resnet_9blocks.txt, plus the stale instance-norm statistics old
checkpoints carry), served by a 127.0.0.1 server; fetched, recorded, verified, translated as the port's
test.py does, scored end to end on the synthetic city and reported as its own row."""

import html
import hashlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from http_fixtures import ArchiveServer, closed_port_url
from repro import ReproError, pretrained
from repro import reproduce as R
from repro.cli import main
from repro.data.synth_city import generate
from repro.eval.fcn import fcn8s, save_segmenter
from repro.rows import PRETRAINED, PRETRAINED_NOTE
from tests.test_baselines_pix2pix import one_torch_thread  # noqa: F401 (autouse fixture)
from tests.test_networks import official_layout


def port_generator(seed: int) -> bytes:
    """A resnet_9blocks state_dict with the port's key names and shapes, as torch.save writes it."""
    entries, _ = official_layout("resnet_9blocks")
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) * 0.05 for key, shape in entries.items()}
    state |= {"model.2.running_mean": torch.zeros(64), "model.2.running_var": torch.ones(64),
              "model.2.num_batches_tracked": torch.tensor(0)}  # what old port checkpoints still carry
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def generators():
    return {name: port_generator(i) for i, name in enumerate(pretrained.CITYSCAPES.values())}


@pytest.fixture
def server(generators, monkeypatch):
    with ArchiveServer() as s:
        for name, body in generators.items():
            s.files[f"/models/{name}.pth"] = body
        monkeypatch.setenv(pretrained.ENV, s.url("/models"))
        yield s


def test_published_names_and_url_pattern():
    assert pretrained.url_for("cityscapes_label2photo", pretrained.BASE_URL) == \
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/cityscapes_label2photo.pth"
    assert {"cityscapes_label2photo", "cityscapes_photo2label", "horse2zebra", "zebra2horse"} <= set(pretrained.NAMES)
    assert len(pretrained.NAMES) == 18
    with pytest.raises(ReproError, match="horse2zebra"):
        pretrained.get("horse2cat")


def test_first_download_is_recorded_loudly_then_verified(tmp_path, server, generators, capsys):
    name = "cityscapes_label2photo"
    assert main(["pretrained", "get", name, "--dir", str(tmp_path), "--quiet"]) == 0
    path = tmp_path / f"{name}.pth"
    digest = hashlib.sha256(generators[name]).hexdigest()
    assert path.read_bytes() == generators[name]
    assert (tmp_path / f"{name}.pth.sha256").read_text() == f"{digest}  {name}.pth\n"
    captured = capsys.readouterr()
    assert "CANNOT BE VERIFIED" in captured.err and digest in captured.err
    assert f"repro translate --checkpoint {path}" in captured.out

    assert pretrained.get(name, tmp_path, progress=False) == path  # a second call: no download
    assert len(server.requests) == 1

    path.unlink()  # the host now serves another file: refused, set aside, never in place
    server.files[f"/models/{name}.pth"] = port_generator(99)
    assert main(["pretrained", "get", name, "--dir", str(tmp_path), "--quiet"]) == 1
    assert "refused" in capsys.readouterr().err
    assert not path.exists() and (tmp_path / f"{name}.pth.sha256-mismatch").is_file()


def test_a_file_that_is_no_port_generator_is_refused(tmp_path, server):
    buffer = io.BytesIO()
    torch.save({"model.1.weight": torch.zeros(3)}, buffer)
    server.files["/models/horse2zebra.pth"] = buffer.getvalue()
    with pytest.raises(ReproError, match="not a resnet_9blocks generator"):
        pretrained.get("horse2zebra", tmp_path, progress=False)
    assert not (tmp_path / "horse2zebra.pth").exists() and not (tmp_path / "horse2zebra.pth.sha256").exists()


def test_an_html_page_is_never_trusted_nor_announced(tmp_path, server, generators, capsys):
    server.files["/models/horse2zebra.pth"] = b"<html><body>Service unavailable</body></html>"
    assert main(["pretrained", "get", "horse2zebra", "--dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "is not a usable file" in err and "CANNOT BE VERIFIED" not in err and "recorded in" not in err
    assert not (tmp_path / "horse2zebra.pth.sha256").exists()
    assert (tmp_path / "horse2zebra.pth.unusable").is_file()


def test_offline_says_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setattr("repro.data.download.time.sleep", lambda s: None)
    with pytest.raises(ReproError) as err:
        pretrained.get("zebra2horse", tmp_path, url=closed_port_url("/zebra2horse.pth"), progress=False)
    message = str(err.value)
    assert str(tmp_path / "zebra2horse.pth") in message and pretrained.BASE_URL + "zebra2horse.pth" in message
    assert "repro pretrained get zebra2horse" in message and pretrained.ENV in message


def test_translation_is_the_port_test_py_pipeline_bit_for_bit(tmp_path, server):
    """The port's test.py by hand: Resize 256 bicubic, ToTensor, Normalize(0.5, 0.5), the net as loaded
    (train mode: test.py calls eval() only with --eval), tensor2im's truncation; PNG."""
    path = pretrained.get("cityscapes_label2photo", tmp_path / "models", progress=False)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (40, 72, 3), dtype=np.uint8))
    image.save(inputs / "frankfurt_000000_000294_gtFine_color.png")
    written = pretrained.translate_as_port(path, inputs, tmp_path / "out", progress=False)
    assert [p.name for p in written] == ["frankfurt_000000_000294_leftImg8bit.png"]

    port_transform = transforms.Compose([transforms.Resize([256, 256], transforms.InterpolationMode.BICUBIC),
                                         transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    net = pretrained.load_generator(path).train()
    with torch.no_grad():
        fake = net(port_transform(image)[None])
        assert torch.equal(fake, pretrained.load_generator(path).eval()(port_transform(image)[None]))  # no stats
    expected = ((np.transpose(fake[0].float().numpy(), (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)
    ours = np.asarray(Image.open(written[0]))
    assert ours.shape == (256, 256, 3) and np.array_equal(ours, expected)
    assert expected.std() > 1  # not a constant image

    # `repro translate --checkpoint` loads the fetched file strictly and writes the same image
    assert main(["translate", "--checkpoint", str(path), "--input", str(inputs), "--out", str(tmp_path / "cli"),
                 "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli" / written[0].name)), expected)


@pytest.mark.slow  # 2 x 2 resnet_9blocks forwards at 256 on one CPU thread, plus the smoke setup: ~20 s
def test_pretrained_row_fetched_translated_scored_and_reported(tmp_path, server, capsys):
    city = generate(tmp_path / "cs", n_train=4, n_val=2, size=(64, 32), progress=False)
    seg = tmp_path / "seg.pt"
    save_segmenter(fcn8s(width=1 / 32).eval(), seg, source="test")
    out = tmp_path / "out"
    argv = ["reproduce", "table2", "--pretrained-only", "--out", str(out), "--cityscapes", str(city),
            "--segmenter", str(seg), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    folder = out / PRETRAINED.key / "seed-0"
    result = json.loads((folder / "result.json").read_text())
    assert result["row"] == PRETRAINED.key and result["label"] == PRETRAINED.label and result["config"] is None
    assert {d: m["name"] for d, m in result["models"].items()} == pretrained.CITYSCAPES
    assert result["models"]["labels2photo"]["url"] == server.url("/models/cityscapes_label2photo.pth")
    assert result["translation"] | {"as": ""} == {"arch": "resnet_9blocks", "norm": "instance", "size": 256,
                                                   "resize_filter": "bicubic", "as": ""}
    for direction in ("labels2photo", "photo2labels"):
        assert {Image.open(p).size for p in (folder / direction).glob("*.png")} == {(256, 256)}
        assert len(list((folder / direction).glob("*.png"))) == 2
        assert set(result["metrics"][direction]) == {"pixel_acc", "class_acc", "iou"}
    # the same protocol as every other row: the evaluators' own score files, their headline metrics
    l2p = json.loads((folder / "labels2photo.json").read_text())
    assert result["metrics"]["labels2photo"] == l2p["metrics"] and l2p["protocol"]["name"] == "pix2pix"
    assert result["metrics"]["photo2labels"] == json.loads((folder / "photo2labels.json").read_text())["metrics"]
    assert not list(out.glob("cyclegan*"))  # --pretrained-only trains nothing

    report = (out / "report.md").read_text()
    for title in ("Table 2", "Table 3"):
        table = report.split(f"## {title}")[1].split("## ")[0]
        lines = [line for line in table.splitlines() if line.startswith("|")]
        labels = [line.split("|")[1].strip() for line in lines[2:]]
        cyclegan = max(i for i, label in enumerate(labels) if label == "CycleGAN")
        assert labels[cyclegan + 1] == PRETRAINED.label  # one line, right after the paper's CycleGAN row
        assert PRETRAINED_NOTE in table and "not run" not in lines[2 + cyclegan + 1]
        assert "| CycleGAN " in table and "not run" in lines[2 + cyclegan]  # ours, untrained here
    assert PRETRAINED.label in html.unescape((out / "report.html").read_text())

    # a second run reuses the verified files and the finished row
    stamp = (folder / "result.json").stat().st_mtime_ns
    requests = len(server.requests)
    assert main(argv) == 0
    assert (folder / "result.json").stat().st_mtime_ns == stamp and len(server.requests) == requests
    capsys.readouterr()


def test_pretrained_flag_needs_tables_2_or_3(tmp_path, capsys):
    assert main(["reproduce", "table4", "--pretrained", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 1
    assert "Tables 2 and 3" in capsys.readouterr().err and not (tmp_path / "o").exists()
