"""`repro reproduce horse2zebra|fid` (repro.reproduce_fid, repro.fidtable).

The smoke run is the whole path on the CPU: the synthetic horse2zebra archive served by a local HTTP server
and fetched through `repro data get`'s code, training two seeds, translating both test folders, both FID
protocols and KID with random Inception weights (test_fid.random_inception_state_dict, saved under pytorch-fid's
file name so its bytes, and so its sha256, are those the smoke ranges were measured with), the report, and the
numbers against expected/ranges_fid_smoke.toml.
"""

import json

import pytest
import torch

from http_fixtures import ArchiveServer, closed_port_url
from repro import ReproError, fidtable
from repro.cli import main
from repro.data import synth_pairs
from repro.eval import fid
from test_fid import random_inception_state_dict


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / fid.WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_inception_state_dict(0), path)
    return home


@pytest.mark.slow  # two smoke seeds and 4 x 44 Inception forwards on CPU: 2-5 min
def test_smoke_reproduction_end_to_end_within_measured_ranges(torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    archive = synth_pairs.archive(tmp_path / "served" / "horse2zebra.zip")
    out = tmp_path / "out"
    with ArchiveServer() as server:
        server.files["/horse2zebra.zip"] = archive.read_bytes()
        assert main(["reproduce", "horse2zebra", "--scale", "smoke", "--seeds", "2", "--out", str(out),
                     "--url", server.url("/horse2zebra.zip"), "--device", "cpu", "--quiet"]) == 0
        assert [path for path, _ in server.requests] == ["/horse2zebra.zip"]  # the real download code fetched it
    assert json.loads((out / "datasets" / "horse2zebra" / ".repro-download.json").read_text())["verified"]

    for seed in (0, 1):
        result = json.loads((out / f"seed-{seed}" / "result.json").read_text())
        assert result["config"]["crop_size"] == 32 and result["seed"] == seed
        for key, n_fake, n_real in (("A2B", 24, 20), ("B2A", 20, 24)):
            scored = result["directions"][key]
            assert (scored["n_fake"], scored["n_real"]) == (n_fake, n_real)
            assert len(list((out / f"seed-{seed}" / key).glob("*.png"))) == n_fake
            assert scored["kid"]["subset_size"] == 20 and scored["kid"]["seed"] == 0
            assert set(scored["metrics"]) == {"fid_pytorch_fid", "fid_clean", "kid", "kid_std_over_subsets"}

    found = fidtable.collect(out)
    ranges = fidtable.load_ranges("smoke")
    assert found["plan"]["weights"]["sha256"] == ranges["rule"]["weights_sha256"], \
        "the test's random Inception weights are not those the smoke ranges were measured with: re-measure them"
    cells = fidtable.band_cells(found, ranges)
    assert len(cells) == 6 and all(c["band"] is not None for c in cells)
    far = [c for c in cells if c["band_verdict"] != "close"]
    assert not far, f"outside the smoke ranges: {far}"

    report = (out / "report.md").read_text()
    assert "## horse -> zebra (A2B)" in report and "## zebra -> horse (B2A)" in report
    assert "ours (n=2)" in report and "77.20" in report and "clean-fid README" in report
    table = json.loads((out / "fid-table.json").read_text())
    assert table["kid"]["subsets"] == 100 and len(table["directions"]["A2B"]["ours"]["fid_clean"]) == 2

    # a second call trains and translates nothing and gives the same numbers
    monkeypatch.setattr("repro.train.train", lambda *a, **k: pytest.fail("a finished seed was retrained"))
    assert main(["reproduce", "horse2zebra", "--scale", "smoke", "--seeds", "2", "--out", str(out),
                 "--device", "cpu", "--quiet", "--data", str(out / "datasets" / "horse2zebra")]) == 0
    assert json.loads((out / "fid-table.json").read_text())["directions"] == table["directions"]


@pytest.mark.slow  # one 256x256 CycleGAN step on CPU for the estimate: 10-60 s
def test_paper_scale_without_data_stops_before_any_work_naming_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setenv("REPRO_INCEPTION_URL", closed_port_url("/pt_inception.pth"))
    out = tmp_path / "out"
    assert main(["reproduce", "horse2zebra", "--scale", "paper", "--out", str(out), "--data",
                 str(tmp_path / "datasets" / "horse2zebra"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "repro data get horse2zebra" in err and "trainA, trainB, testA, testB" in err
    assert fid.WEIGHTS_FILE in err
    assert "no GPU" in err and "Estimated duration on cpu:" in err
    assert "iterations x 5 seed(s)" in err  # horse2zebra's 200 epochs x 1334 iterations, known without the data
    assert not out.exists()


def test_fid_target_needs_a_cyclegan_dataset(tmp_path, capsys):
    args = ["reproduce", "fid", "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert main(args) == 1
    assert "--dataset NAME" in capsys.readouterr().err
    assert main(args + ["--dataset", "pix2pix_facades"]) == 1
    assert "pix2pix archive" in capsys.readouterr().err
    assert main(args + ["--dataset", "hourse2zebra"]) == 1
    assert "Did you mean horse2zebra" in capsys.readouterr().err
    assert main(["reproduce", "horse2zebra", "--pack", "auto", "--out", str(tmp_path / "out")]) == 1
    assert "--launcher, --pack" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_verdicts_against_published_figures():
    assert fidtable.verdict([70.0, 74.0, 78.0], 77.2) == "consistent"
    assert fidtable.verdict([70.0, 71.0, 72.0], 77.2) == "differs (6.2 sd)"  # (77.2 - 71) / std 1
    assert fidtable.verdict([70.0], 77.2) == "too few seeds"
    lo, hi = fidtable.prediction_interval([70.0, 74.0, 78.0])
    assert lo < 60 and hi > 88  # t(2) = 4.30 x 4 x sqrt(4/3): not clipped to [0, 1] as the FCN-score fractions are


def test_published_figures_carry_source_protocol_and_direction():
    refs = fidtable.published("horse2zebra")
    assert {(r["direction"], r["value"]) for r in refs} >= {("A2B", 77.2), ("A2B", 75.17), ("A2B", 64.5225),
                                                           ("A2B", 62.111), ("B2A", 141.1517), ("B2A", 138.646)}
    for r in refs:
        assert r["column"] in ("pytorch_fid", "clean") and r["source"] and r["note"] and isinstance(r["exact"], bool)
    assert fidtable.published("apple2orange") == []


@pytest.mark.slow  # 2 x 6 Inception forwards and 6 translations at 32x32 on CPU: 10-40 s
def test_pretrained_row_fetched_translated_and_scored_by_the_same_code(torch_home, tmp_path, monkeypatch):
    """`--pretrained-only`: the port's horse2zebra/zebra2horse (port-format random weights served locally)
    fetched by repro.pretrained, run as the port's test.py (at 32 here instead of 256, to stay quick), scored
    by the same protocols as our seeds and shown as its own row; nothing is trained."""
    from repro import pretrained
    from repro.data import download
    from repro.io import sha256_file
    from test_pretrained import port_generator

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(pretrained, "SIZE", 32)
    monkeypatch.setattr("repro.train.train", lambda *a, **k: pytest.fail("--pretrained-only trained a model"))
    counts = {"trainA": 1, "trainB": 1, "testA": 3, "testB": 3}
    archive = synth_pairs.archive(tmp_path / "h2z.zip", counts=counts)
    data = download.get("horse2zebra", tmp_path / "datasets", from_file=archive, sha256=sha256_file(archive),
                        progress=False)
    out = tmp_path / "out"
    with ArchiveServer() as server:
        for i, name in enumerate(("horse2zebra", "zebra2horse")):
            server.files[f"/models/{name}.pth"] = port_generator(i)
        monkeypatch.setenv(pretrained.ENV, server.url("/models"))
        assert main(["reproduce", "horse2zebra", "--scale", "smoke", "--pretrained-only", "--data", str(data),
                     "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    result = json.loads((out / "port_pretrained" / "result.json").read_text())
    assert {d: m["name"] for d, m in result["models"].items()} == {"A2B": "horse2zebra", "B2A": "zebra2horse"}
    for key in ("A2B", "B2A"):
        assert len(list((out / "port_pretrained" / key).glob("*.png"))) == 3
        assert result["directions"][key]["metrics"]["fid_pytorch_fid"] > 0
    assert not list(out.glob("seed-*"))
    report = (out / "report.md").read_text()
    assert "| port pretrained horse2zebra |" in report and "| port pretrained zebra2horse |" in report
    assert "ours (n=0)" in report


def test_paper_report_judges_published_figures_and_bands(tmp_path):
    """At paper scale each published CycleGAN figure gets the prediction-interval verdict in its protocol's
    column (with a note when the protocol is not matched exactly), others none, and our mean the band of
    expected/ranges_fid_paper.toml."""
    from repro.io import write_json

    write_json(tmp_path / "fid-reproduce.json", {"target": "horse2zebra", "dataset": "horse2zebra", "scale": "paper",
                                                 "seeds": 3, "weights": {"path": "w.pth", "sha256": "ab" * 32}})
    a2b = [(76.0, 74.0), (78.0, 75.5), (80.0, 77.0)]  # (pytorch-fid, clean) per seed
    for seed, (legacy, clean) in enumerate(a2b):
        metrics = {"A2B": {"fid_pytorch_fid": legacy, "fid_clean": clean, "kid": 0.02, "kid_std_over_subsets": 0.001},
                   "B2A": {"fid_pytorch_fid": 200.0 + seed, "fid_clean": 199.0, "kid": 0.05, "kid_std_over_subsets": 0.002}}
        write_json(tmp_path / f"seed-{seed}" / "result.json", {"seed": seed, "directions": {
            d: {"metrics": m, "kid": {"subsets": 100, "subset_size": 120, "seed": 0}} for d, m in metrics.items()}})
    report = fidtable.write_report(tmp_path).read_text()
    a2b_text, b2a = report.split("## zebra -> horse (B2A)")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in a2b_text.splitlines() if line.startswith("| ")}
    assert "78.00 +- 2.00" in rows["ours (n=3)"] and "FID pytorch-fid: close" in rows["ours (n=3)"]
    assert "| consistent |" in rows["CycleGAN, as evaluated by CUT (reported)"]
    assert "consistent (protocol not matched exactly)" in rows["CycleGAN, CUT's images rescored by clean-fid (clean)"]
    assert "| - |" in rows["CUT (another method, for scale), reported"]  # not CycleGAN: no verdict
    assert "FID pytorch-fid: far" in b2a and "differs (" in b2a  # 200 is far from mmagic's 134-137

    # with clean-fid's own network (--clean-fid-network), clean-fid's 75.17 is compared in that column, exactly
    for seed, clean_fid in enumerate((73.0, 75.0, 77.0)):
        path = tmp_path / f"seed-{seed}" / "result.json"
        result = json.loads(path.read_text())
        for d in ("A2B", "B2A"):
            result["directions"][d]["metrics"]["fid_clean_fid"] = clean_fid
        write_json(path, result)
    report = fidtable.write_report(tmp_path).read_text()
    assert "| FID clean-fid |" in report
    row = next(line for line in report.splitlines() if line.startswith("| CycleGAN, CUT's images rescored by clean-fid (clean)"))
    assert row.split(" | ")[1:4] == ["", "", "75.17"] and "| consistent |" in row


def test_other_datasets_take_the_same_config_and_name_their_directions(tmp_path, capsys):
    from repro.fidtable import direction_label
    from repro.reproduce_fid import FIDSetup, config_for

    setup = FIDSetup("apple2orange", "paper", tmp_path, tmp_path, "cpu", tmp_path / "w.pth", {"lambda_identity": 0.5})
    cfg = config_for(setup, 3)
    assert (cfg.name, cfg.seed, cfg.crop_size, cfg.generator, cfg.lambda_identity) == \
        ("apple2orange", 3, 256, "resnet_9blocks", 0.5)
    assert (direction_label("apple2orange", "A2B"), direction_label("apple2orange", "B2A")) == \
        ("apple -> orange", "orange -> apple")
    assert direction_label("maps", "B2A") == "B -> A"
    # checked before any work: no port generators for monet2photo, a wrongly named clean-fid network
    assert main(["reproduce", "fid", "--dataset", "monet2photo", "--pretrained", "--out", str(tmp_path / "o")]) == 1
    assert "no generators for monet2photo" in capsys.readouterr().err
    (tmp_path / "net.pt").write_bytes(b"x")
    assert main(["reproduce", "horse2zebra", "--clean-fid-network", str(tmp_path / "net.pt"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "inception-2015-12-05.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
