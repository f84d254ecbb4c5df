"""`repro reproduce`: rows per target, prerequisites refused before any work, provenance, resume without
retraining finished rows, and (slow) a reduced smoke reproduction checked against expected/ranges_smoke.toml."""

import argparse
import json
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_city_and_segmenter
from repro import ReproError
from repro import reproduce as R
from repro import train as training
from repro.checkpoint import is_finished
from repro.cli import main
from repro.done import is_current
from repro.rows import ROWS, TABLE_ROWS

EXPECTED = Path(__file__).resolve().parents[1] / "expected"
ROW = {r.key: r for r in ROWS}


def test_targets_cover_their_tables_rows_once():
    assert [r.key for r in R.rows_for("table4")] == [r.key for r in R.rows_for("table5")]
    assert {r.key for r in R.rows_for("table4")} == {r.key for r in TABLE_ROWS[4]}
    assert {r.key for r in R.rows_for("table2")} == {r.key for r in TABLE_ROWS[2]} | {r.key for r in TABLE_ROWS[3]}
    assert [r.key for r in R.rows_for("all")] == [r.key for r in ROWS]


def test_paper_scale_stops_before_any_work_with_the_fixes_and_an_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(R, "seconds_per_iteration", lambda cfg, device, steps=2, runs=1: 0.5)
    out = tmp_path / "out"
    code = main(["reproduce", "table4", "--scale", "paper", "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    for fix in ("csDownload", "repro segmenter get", "repro segmenter import-caffe", "repro segmenter train",
                "--data datasets/cityscapes", "--allow-cpu"):
        assert fix in err
    # 0.5 s x 200 epochs x 2975 iterations x 5 rows x 5 seeds = 7,437,500 s
    assert "500 ms per training iteration" in err and "2,975,000 iterations" in err and "86.1 days" in err


def test_estimate_times_a_real_step_for_every_target():
    seconds, text = R.estimate(R.rows_for("all"), "smoke", 2, "cpu", 200)  # baselines first, timed by CycleGAN's step
    per_iter = float(text.split(" ms per training iteration")[0]) / 1000
    iters = int(text.split(" x ")[1].split(" iterations")[0].replace(",", ""))
    # the text rounds the step time to whole ms (a few % at ~20-70 ms)
    assert 0 < per_iter < 10 and seconds == pytest.approx(per_iter * iters * 2, rel=0.03)
    assert iters == sum(R.total_iterations(R.row_config(r, "smoke", 0), 200) for r in ROWS)
    cogan = R.row_config(ROW["cogan"], "smoke", 0)  # batch 8: iters_per_epoch counts iterations, as training does
    assert R.total_iterations(cogan, 200) == cogan.epochs * cogan.iters_per_epoch


def test_estimate_times_the_step_training_will_run():
    """With --pack the estimate times a packed step (per run), as the pack will train."""
    _, text = R.estimate([ROW["cyclegan"]], "smoke", 3, "cpu", 200, iters_per_epoch=2, pack=3)
    assert "3 runs packed" in text and float(text.split(" ms per")[0]) > 0
    _, text = R.estimate([ROW["cyclegan"]], "smoke", 1, "cpu", 200, iters_per_epoch=2)
    assert "one run" in text


def test_paper_scale_names_only_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "seconds_per_iteration", lambda cfg, device, steps=2, runs=1: 0.5)
    city = tmp_path / "cs"
    (city / "gtFine" / "val").mkdir(parents=True)
    seg = tmp_path / "seg.pt"
    seg.write_bytes(b"x")
    args = argparse.Namespace(cityscapes=city, data=tmp_path / "data", segmenter=seg, device="cpu", seeds=1,
                              iters_per_epoch=None, allow_cpu=True, out=tmp_path / "out")
    setup = R.paper_setup(args, R.rows_for("table4"))
    assert setup.scale == "paper" and setup.segmenter == seg
    args.allow_cpu = False
    with pytest.raises(ReproError) as err:
        R.paper_setup(args, R.rows_for("table4"))
    assert "no GPU" in str(err.value) and "Cityscapes is missing" not in str(err.value)
    assert "segmenter is missing" not in str(err.value)


@pytest.fixture
def tiny(tmp_path_factory):
    return tiny_city_and_segmenter(tmp_path_factory.mktemp("tiny"))


def smoke_args(out, city, seg):
    return argparse.Namespace(out=out, cityscapes=city, data=None, segmenter=seg, device="cpu")


@pytest.mark.slow
def test_interrupted_reproduction_resumes_without_retraining_finished_rows(tiny, tmp_path, monkeypatch):
    city, seg = tiny
    out = tmp_path / "out"
    monkeypatch.setattr(R, "rows_for", lambda target: [ROW["cyclegan"], ROW["gan_alone"]])
    setup = R.smoke_setup(smoke_args(out, city, seg), progress=False)
    real_train, calls = training.train, []

    def interrupted(cfg, data, run, **kw):  # the second row dies after 3 of its 8 iterations
        calls.append((cfg.name, kw["resume"]))
        if cfg.name == "gan_alone":
            real_train(cfg, data, run, **(kw | {"stop_after": 3}))
            raise KeyboardInterrupt
        return real_train(cfg, data, run, **kw)

    monkeypatch.setattr(training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        R.reproduce("table4", setup, seeds=1, iters_per_epoch=2, progress=False)
    first = out / "cyclegan" / "seed-0" / "result.json"
    assert first.is_file() and not (out / "gan_alone" / "seed-0" / "result.json").exists()
    assert (out / "gan_alone" / "seed-0" / "run" / "checkpoint.pt").is_file()
    stamp = first.stat().st_mtime_ns
    checkpoint_stamp = (out / "cyclegan" / "seed-0" / "run" / "checkpoint.pt").stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(training, "train", lambda cfg, data, run, **kw: calls.append((cfg.name, kw["resume"]))
                        or real_train(cfg, data, run, **kw))
    results = R.reproduce("table4", setup, seeds=1, iters_per_epoch=2, progress=False)
    assert calls == [("gan_alone", True)]  # the finished row is not trained again; the other is resumed
    assert first.stat().st_mtime_ns == stamp
    assert (out / "cyclegan" / "seed-0" / "run" / "checkpoint.pt").stat().st_mtime_ns == checkpoint_stamp
    assert [r["row"] for r in results] == ["cyclegan", "gan_alone"]
    assert is_finished(out / "gan_alone" / "seed-0" / "run")
    assert len(list((out / "gan_alone" / "seed-0" / "labels2photo").glob("*.png"))) == 2

    # a third run does nothing at all
    calls.clear()
    R.reproduce("table4", setup, seeds=1, iters_per_epoch=2, progress=False)
    assert calls == [] and first.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_result_json_holds_both_directions_and_provenance(tiny, tmp_path):
    city, seg = tiny
    setup = R.smoke_setup(smoke_args(tmp_path / "out", city, seg), progress=False)
    result = R.run_row(ROW["gan_forward"], 3, setup, iters_per_epoch=1, progress=False)
    saved = json.loads((tmp_path / "out" / "gan_forward" / "seed-3" / "result.json").read_text())
    assert saved == result
    for direction in ("labels2photo", "labels2photo_strict", "photo2labels"):
        assert set(result["metrics"][direction]) == {"pixel_acc", "class_acc", "iou"}
    p = result["provenance"]
    assert p["seed"] == 3 and p["config"]["seed"] == 3 and p["config"]["lambda_backward"] == 0.0
    assert p["config"]["iters_per_epoch"] == 1
    assert len(p["git_commit"]) in (40, 7) or p["git_commit"] == "unknown"
    assert len(p["dataset_manifest_sha256"]) == 64 and len(p["segmenter"]["sha256"]) == 64
    assert "metrics" in p["calibration"] and p["versions"]["torch"] and p["device"] == "cpu"
    assert p["train_seconds"] > 0 and result["wall_seconds"] >= 0


@pytest.mark.slow
def test_a_changed_config_is_not_taken_for_a_finished_row(tiny, tmp_path):
    city, seg = tiny
    setup = R.smoke_setup(smoke_args(tmp_path / "out", city, seg), progress=False)
    R.run_row(ROW["cycle_alone"], 0, setup, iters_per_epoch=1, progress=False)
    path = tmp_path / "out" / "cycle_alone" / "seed-0" / "result.json"
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    R.run_row(ROW["cycle_alone"], 0, setup, iters_per_epoch=1, progress=False)
    assert path.stat().st_mtime_ns == stamp
    # another iteration count: the run folder holds a different config, which training refuses to resume
    with pytest.raises(ReproError):
        R.run_row(ROW["cycle_alone"], 0, setup, iters_per_epoch=2, progress=False)


@pytest.mark.slow
def test_smoke_reproduction_lands_in_the_measured_ranges(tmp_path, capsys):
    """CI's reproduction: `make demo` itself (every row of Tables 2-5, 2 seeds, full smoke settings, CycleGAN
    and its ablations as one pack, the runs in 2 local jobs; about 6 min on 2 CPU cores), from nothing,
    checked against expected/ranges_smoke.toml (measured over 5 seeds of these settings, each run alone)."""
    out = tmp_path / "smoke"
    assert main(["reproduce", "all", "--scale", "smoke", "--seeds", "2", "--out", str(out), "--quiet",
                 "--device", "cpu", "--pack", "auto", "--launcher", "local", "--jobs", "2"]) == 0
    report = (out / "report.md").read_text()
    assert (out / "report.html").is_file()
    assert all(f"| {row.label} " in report for row in ROWS) and "not implemented" not in report
    capsys.readouterr()
    code = main(["check", str(out), "--ranges", str(EXPECTED / "ranges_smoke.toml"), "--require-all"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "66 of 66 judged cells pass the band rule" in printed  # Tables 2/3: 6 rows x 3 x 2, Tables 4/5: 5 rows x 3 x 2


@pytest.mark.slow
def test_packed_reproduction_trains_the_ablations_as_one_pack(tiny, tmp_path, monkeypatch):
    """--pack: the five rows of Table 4 (seeds 0 and 1) share one vectorised step; each run keeps its own
    folder and run.json says which pack it was in; a rerun trains nothing; the scores are those of runs alone
    within float tolerance of the packed step (here: all in [0, 1] and every cell scored)."""
    city, seg = tiny
    out = tmp_path / "out"
    setup = R.smoke_setup(smoke_args(out, city, seg), progress=False)
    packs = []
    real = training.train_runs
    monkeypatch.setattr(training, "train_runs", lambda cfgs, *a, **kw: packs.append(len(cfgs)) or real(cfgs, *a, **kw))
    results = R.reproduce("table4", setup, seeds=2, iters_per_epoch=2, progress=False, pack="auto")
    assert packs == [10]  # 5 rows x 2 seeds, one pack on the CPU (auto: up to 10)
    assert len(results) == 10 and all(0 <= r["metrics"]["labels2photo"]["pixel_acc"] <= 1 for r in results)
    for r in results:
        info = json.loads((out / r["row"] / f"seed-{r['seed']}" / "run" / "run.json").read_text())
        assert info["packed"]["runs"] == 10 and str(out / r["row"]) in info["packed"]["folders"][info["packed"]["index"]]
    packs.clear()
    R.reproduce("table4", setup, seeds=2, iters_per_epoch=2, progress=False, pack="auto")
    assert packs == []


def test_a_step_is_current_only_when_its_output_records_the_same_inputs():
    """repro.done: the one rule behind a finished row, a kept score file, the pretrained row and a kept calibration."""
    record = {"config": {"lr": 1}, "provenance": {"segmenter": {"sha256": "a"}}}
    key = {"config": {"lr": 1}, "provenance.segmenter.sha256": "a"}
    assert is_current(record, key)
    assert not is_current(record, key | {"provenance.segmenter.sha256": "b"})  # the segmenter changed
    assert not is_current(record, key | {"config": {"lr": 2}})  # the config changed
    assert not is_current({"config": {"lr": 1}}, key)  # an older output that does not record the segmenter
    assert not is_current({}, {}) and not is_current(None, {}) and is_current({"x": 1}, {})  # nothing kept: redo
