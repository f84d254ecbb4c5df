"""`repro reproduce`: rows per target, prerequisites refused before any work, provenance, resume without
retraining finished rows, and (slow) a reduced smoke reproduction checked against expected/ranges_smoke.toml."""

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_city_and_segmenter
from repro import ReproError
from repro.config import load_config
from repro import estimate as E
from repro import reproduce as R
from repro.reproduce import plan as P
from repro import setup_time as S
from repro import train as training
from repro.checkpoint import is_finished
from repro.cli import main
from repro.done import is_current
from repro.rows import ROWS, TABLE_ROWS, row_config

EXPECTED = Path(__file__).resolve().parents[1] / "expected"
ROW = {r.key: r for r in ROWS}


def test_targets_cover_their_tables_rows_once():
    assert [r.key for r in R.rows_for("table4")] == [r.key for r in R.rows_for("table5")]
    assert {r.key for r in R.rows_for("table4")} == {r.key for r in TABLE_ROWS[4]}
    assert {r.key for r in R.rows_for("table2")} == {r.key for r in TABLE_ROWS[2]} | {r.key for r in TABLE_ROWS[3]}
    assert [r.key for r in R.rows_for("all")] == [r.key for r in ROWS]


def fixed_step_time(monkeypatch, seconds=0.5):
    """Every step timed by the estimate takes `seconds` per iteration; returns the list of what was timed."""
    timed = []
    monkeypatch.setattr(E, "time_step", lambda cfgs, *a, **k: timed.append(cfgs) or seconds)
    return timed


def test_paper_scale_stops_before_any_work_with_the_fixes_and_an_estimate(tmp_path, monkeypatch, capsys):
    fixed_step_time(monkeypatch)
    out = tmp_path / "out"
    code = main(["reproduce", "table4", "--scale", "paper", "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    for fix in ("csDownload", "repro segmenter get", "repro segmenter import-caffe", "repro segmenter train",
                "--data datasets/cityscapes", "--allow-cpu"):
        assert fix in err
    # 0.5 s x 200 epochs x 2975 iterations x 5 rows x 5 seeds = 7,437,500 s
    assert "500 ms per iteration x 595,000 iterations" in err and "25 run(s) in 25 job(s), 1 at a time" in err
    assert "86.1 days" in err


def test_estimate_times_a_real_step_for_every_target():
    """Every kind of step once (the seeds of a row share it), each a real step timed after a warm-up."""
    seconds, text = R.estimate(R.rows_for("all"), "smoke", 2, "cpu", 200)
    lines = text.splitlines()[1:]
    assert len(lines) == len(ROWS) + 1 and "20 run(s) in 20 job(s), 1 at a time" in lines[-1]
    total = 0.0
    for row, line in zip(ROWS, lines):
        cfg = row_config(row, "smoke", 0)
        per_iter = float(line.split(": ")[1].split(" ms per")[0].replace(",", "")) / 1000
        iters = int(line.split(" x ")[1].split(" iterations")[0].replace(",", ""))
        assert line.strip().startswith(f"{cfg.name} ({cfg.method}, one run)") and 0 < per_iter < 10
        assert iters == E.total_iterations(cfg, 200)
        total += per_iter * iters * 2
    assert seconds == pytest.approx(total, rel=0.05)  # the text rounds each step time to whole ms
    cogan = row_config(ROW["cogan"], "smoke", 0)  # batch 8: iters_per_epoch counts iterations, as training does
    assert E.total_iterations(cogan, 200) == cogan.epochs * cogan.iters_per_epoch


def test_set_iters_per_epoch_is_kept_unless_the_flag_overrides_it():
    """`--set iters_per_epoch=N` reaches the row's config (it was once dropped silently: the flag's None won)."""
    assert row_config(ROW["cyclegan"], "smoke", 0, settings={"iters_per_epoch": 7}).iters_per_epoch == 7
    assert row_config(ROW["cyclegan"], "smoke", 0, 3, {"iters_per_epoch": 7}).iters_per_epoch == 3
    shipped = row_config(ROW["cyclegan"], "smoke", 0)
    assert shipped.iters_per_epoch == load_config("smoke/cyclegan").iters_per_epoch > 0


def test_estimate_times_the_step_training_will_run():
    """With --pack the estimate times the packed step training will run (the staged step, graphs auto)."""
    _, text = R.estimate([ROW["cyclegan"]], "smoke", 3, "cpu", 200, iters_per_epoch=2, pack=3)
    assert "a pack of 3 runs" in text and "3 run(s) in 1 job(s)" in text
    _, text = R.estimate([ROW["cyclegan"]], "smoke", 1, "cpu", 200, iters_per_epoch=2)
    assert "one run" in text


def test_estimate_applies_epoch_overrides_packs_and_jobs(monkeypatch):
    """The planning with a fake step timer: --set epoch counts and --iters-per-epoch set every run's
    iterations; --pack groups the CycleGAN family (runs of other methods alone); jobs run side by side."""
    timed = fixed_step_time(monkeypatch, 2.0)
    rows = [ROW[k] for k in ("cyclegan", "cycle_alone", "gan_alone", "cogan")]
    settings = {"epochs_constant": 1, "epochs_decay": 1}
    seconds, text = R.estimate(rows, "paper", 2, "cpu", 2975, iters_per_epoch=5, settings=settings)
    assert seconds == 8 * 2.0 * 10  # 8 runs alone, one at a time, 2 epochs x 5 iterations each
    assert all(len(c) == 1 and c[0].epochs == 2 and c[0].iters_per_epoch == 5 for c in timed)
    assert len(timed) == 4  # one timing per kind of step: the seeds share it
    timed.clear()
    seconds, text = R.estimate(rows, "paper", 2, "cpu", 2975, settings=settings, pack=4)
    # cyclegan, cycle_alone, gan_alone x 2 seeds = 6 CycleGAN runs: packs of 4 and 2; cogan's 2 runs alone
    assert sorted(len(c) for c in timed) == [1, 2, 4] and "8 run(s) in 4 job(s)" in text
    cogan = E.total_iterations(row_config(ROW["cogan"], "paper", 0, settings=settings), 2975)
    pack = 2 * 2975
    assert seconds == 2.0 * (pack + pack + cogan + cogan)  # one job after the other
    monkeypatch.setattr(P.os, "cpu_count", lambda: 8)
    seconds, _ = R.estimate(rows, "paper", 2, "cpu", 2975, settings=settings, pack=4, jobs=2, threads=1)
    assert seconds == 2.0 * (pack + cogan)  # the packs side by side, then the two cogan runs
    seconds, text = R.estimate(rows, "paper", 2, "cpu", 2975, settings=settings, pack=4, jobs=2, threads=8)
    assert seconds == 2 * 2.0 * (pack + cogan) and "x2 for cores shared" in text  # 16 threads, 8 cores


def test_pack_auto_with_jobs_spreads_each_pack_group_over_the_slots(tmp_path, monkeypatch):
    """`--pack auto` packs up to 10 runs on the CPU; with a launcher's --jobs N each group of runs that may share a
    step is cut into near-equal packs that fill the N slots (10 runs, 2 jobs: 2 packs of 5), in the estimate
    exactly as in the launcher's pack_groups, same packs in the same order. A number given with --pack, or no
    --jobs, cuts as before: packs of N in order."""
    sizes = lambda n, pack, slots: [len(c) for c in E.pack_chunks(list(range(n)), pack, slots)]  # noqa: E731
    assert sizes(12, 10, 1) == [10, 2] and sizes(10, 10, 2) == [5, 5] and sizes(9, 10, 4) == [3, 2, 2, 2]
    assert sizes(25, 10, 2) == [9, 8, 8] and sizes(3, 10, 8) == [1, 1, 1] and sizes(7, 3, 2) == [3, 2, 2]
    assert E.pack_chunks(list(range(5)), 10, 2) == [[0, 1, 2], [3, 4]]  # in order
    assert R.pack_slots("auto", argparse.Namespace(jobs=2)) == 2 and R.pack_slots("4", argparse.Namespace(jobs=2)) == 1
    assert R.pack_slots("auto", argparse.Namespace(jobs=None)) == 1 and R.pack_slots("auto", None) == 1

    fixed_step_time(monkeypatch, 1.0)
    seg = tmp_path / "seg.pt"
    seg.write_bytes(b"x")
    setup = R.Setup("smoke", tmp_path / "out", tmp_path / "data", tmp_path / "city", seg, "cpu")
    rows = [ROW[k] for k in ("pix2pix", "cyclegan", "cycle_alone", "gan_alone", "gan_forward", "gan_backward")]
    runs = [(row, seed) for row in rows for seed in range(3)]
    for pack, jobs in (("auto", 2), ("auto", 4), ("auto", None), ("4", 3), ("auto", 40)):
        args = argparse.Namespace(pack=pack, set=None, iters_per_epoch=1,
                                  launch_options=argparse.Namespace(jobs=jobs, threads=1))
        plans = []
        R.estimate_for(args, rows, "smoke", 3, "cpu", 200, plans)
        launched = R.pack_groups(runs, setup, 1, pack, R.pack_slots(pack, args.launch_options))
        singles = [[run] for run in runs if not any(run in group for group in launched)]
        expected = [len(group) for group in launched + singles]
        assert plans[0].runs == expected, (pack, jobs)
    assert sorted(len(g) for g in R.pack_groups(runs, setup, 1, "auto", 2)) == [7, 8]  # 15 CycleGAN-family runs
    assert sorted(len(g) for g in R.pack_groups(runs, setup, 1, "auto", 1)) == [5, 10]  # as before: packs of 10


def test_the_work_estimate_counts_the_floor_and_ceiling_scorings():
    """After training: each job's runs translated and scored, and the floor and ceiling rows (repro.bounds:
    ground truth and constant once, the untrained generator per seed) and --pretrained's row scored like a run,
    before or after the jobs."""
    assert [(row.key, seed) for row, seed in R.bound_runs(2)] == \
        [("ground_truth", 0), ("untrained", 0), ("untrained", 1), ("constant", 0)]
    assert R.scorings_without_training(2, None) == 4 and R.scorings_without_training(1, "add") == 4
    assert R.scorings_without_training(1, "only") == 3  # --pretrained-only: no "estimated from here" (nothing trained)
    plan = E.Estimate(seconds=100, lines=[], durations=[100, 40], runs=[5, 1], slots=2)
    assert plan.with_evaluation(10) == 150  # the pack of 5: 100 s of training, 50 s of scoring
    assert plan.with_evaluation(10, len(R.bound_runs(1))) == 150 + 30


def test_makespan_lays_jobs_on_free_slots():
    assert E.makespan([3, 1, 1, 1], slots=2) == 3
    assert E.makespan([2, 2, 2], slots=2) == 4
    assert E.makespan([1, 1], slots=1, busy=[5]) == 7
    assert E.makespan([4], slots=2, busy=[1, 3]) == 5
    assert E.makespan([], slots=3) == 0


def test_paper_scale_names_only_what_is_missing(tmp_path, monkeypatch):
    fixed_step_time(monkeypatch)
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


def test_setup_time_fits_a_fixed_part_and_a_part_per_item():
    assert S.fit((1, 2.0), (4, 5.0)) == (1.0, 1.0)
    assert S.fit((1, 2.0), (4, 1.0)) == (2.0, 0.0)  # a busy machine made the larger sample the faster
    # cold 3 s at 1 item; warm 2 s at 1 and 5 s at 4: 1 s per item; the cold run's extra is paid once
    assert S.extrapolate([3.0, 2.0, 5.0], 1, 4, 201) == 3.0 + 200 * 1.0
    sizes = []
    run = lambda n: sizes.append(n) or {1: 3.0, 4: 5.0}[n] - (len(sizes) > 1)  # noqa: E731  cold 3 s, then 2 s, 4 s
    assert S.sampled(run, 1, 4, 201) == pytest.approx(3.0 + 200 * (4.0 - 2.0) / 3) and sizes == [1, 1, 4]
    sizes.clear()
    slow = lambda n: sizes.append(n) or 60.0 * n  # noqa: E731  a minute a frame: the cold run alone, scaled
    assert S.sampled(slow, 1, 3, 500) == 60.0 * 500 and sizes == [1]


def test_setup_and_measured_lines_name_each_part():
    steps = [S.Step("synthetic city", 6), S.Step("segmenter", 34), S.Step("calibration", 3, later=True)]
    assert S.setup_line(steps).startswith(
        "set-up: synthetic city 6 s, segmenter 34 s, calibration 3 s (with the first run's scoring); 43 s in all")
    assert S.before(steps) == 40 and S.later(steps) == 3
    assert S.total_line(steps, 76).startswith("estimated set-up and training: 119 s")
    assert S.setup_line([]) is None
    line = E.measured_line([("set-up", 40, 50), ("training, translation and scoring", 70, 130)], 200)
    assert line.startswith("estimated 110 s, measured 3 min (set-up: estimated 40 s, measured 50 s; training, "
                           "translation and scoring: estimated 70 s, measured 2 min; the whole command, the "
                           "estimates' own timing included: 3 min;")


TINY_CITY = dict(n_train=20, n_val=10, size=(64, 32), seed=0)
TINY_SEGMENTER = dict(workers=0, width=1 / 32, iters=10, batch_size=2, optimizer="adam", lr=1e-3, seed=0,
                      label_size=(32, 16))


def fake_setup_timer(monkeypatch) -> list[str]:
    """setup_time's timer with fake seconds: each step's own code still runs on the miniature, but takes 2 s
    more on its first (cold) call and otherwise: generate 0.1 s a frame, prepare 0.05 s a frame, the segmenter
    2 s + 0.5 s an iteration, the calibration 1 s + 0.2 s a val frame. Returns the functions called, in order."""
    from repro.eval.segmenter import photo_frames

    real, calls = S.timed, []
    frames = lambda city, split: len(photo_frames(city, split))  # noqa: E731

    def timed(fn, *args, **kwargs):
        real(fn, *args, **kwargs)
        cold = 0.0 if fn.__name__ in calls else 2.0
        calls.append(fn.__name__)
        return cold + {"generate": lambda: 0.1 * (kwargs["n_train"] + kwargs["n_val"]),
                       "prepare": lambda: 0.05 * (frames(args[0], "train") + frames(args[0], "val")),
                       "train": lambda: 2 + 0.5 * kwargs["iters"],
                       "calibrate": lambda: 1 + 0.2 * frames(args[1], "val")}[fn.__name__]()

    monkeypatch.setattr(S, "timed", timed)
    monkeypatch.setattr(S.os, "cpu_count", lambda: 2)
    return calls


def test_setup_estimate_times_each_step_that_will_run_and_skips_what_is_done(tmp_path, monkeypatch):
    """Each set-up step's own code timed on a miniature (fake seconds here) and scaled to the full size; a step
    whose output is there and current drops out; nothing is written outside a temporary folder, and the global
    random state is left as it was."""
    from repro.data import cityscapes as prep
    from repro.data import synth_city
    from repro.eval import segmenter as seg
    from repro.eval.calibration import calibration_file

    calls = fake_setup_timer(monkeypatch)
    city, data, segmenter = tmp_path / "synth-city", tmp_path / "data", tmp_path / "segmenter.pt"
    steps_now = lambda: S.setup_steps(city, data, segmenter, "cpu", 32, TINY_CITY, TINY_SEGMENTER)  # noqa: E731
    torch.manual_seed(5), np.random.seed(5)
    expected = torch.rand(1), np.random.rand()
    torch.manual_seed(5), np.random.seed(5)
    steps = steps_now()
    assert (torch.rand(1), np.random.rand()) == expected
    assert not any(tmp_path.iterdir())
    assert calls == ["generate"] * 2 + ["prepare"] * 2 + ["train"] * 3 + ["calibrate"] * 3
    assert [(s.name, round(s.seconds, 6), s.later) for s in steps] == [
        ("synthetic city", 0.1 * 30, False),            # the warm-up's 2 s are not scaled
        ("preparing the data", 0.05 * 30 / 2, False),   # one process per core
        ("segmenter", 2 + 2 + 0.5 * 10, False),          # cold once, fixed part, per iteration
        ("calibration", 2 + 1 + 0.2 * 10, False)]
    synth_city.generate(city, progress=False, **TINY_CITY)
    assert [s.name for s in steps_now()] == ["preparing the data", "segmenter", "calibration"]
    prep.prepare(city, city, data, size=32, workers=1, progress=False)
    assert [s.name for s in steps_now()] == ["segmenter", "calibration"]
    seg.train(city, segmenter, device="cpu", progress=False, **TINY_SEGMENTER)
    assert [s.name for s in steps_now()] == ["calibration"]
    P.calibrate(segmenter, city, "cpu", progress=False)
    assert steps_now() == []
    # paper scale: the city and the segmenter given; the calibration comes with the first run's scoring
    calibration_file(segmenter).unlink()
    steps = S.setup_steps(city, tmp_path / "data-256", segmenter, "cpu", 32, calibration_later=True)
    assert [(s.name, s.later) for s in steps] == [("preparing the data", False), ("calibration", True)]


def test_reproduce_prints_the_setup_line_only_while_there_is_set_up_to_do(tmp_path, monkeypatch, capsys):
    """End to end (the floor and ceiling rows: nothing trained): the first command prints the set-up line and
    ends with the set-up's estimate beside its measured time; a second, with everything made, has no set-up."""
    monkeypatch.setattr(P, "SMOKE_CITY", dict(TINY_CITY, n_train=4, n_val=2))
    segmenter = {k: v for k, v in TINY_SEGMENTER.items() if k != "workers"}  # smoke_setup passes workers=0
    monkeypatch.setattr(P, "SMOKE_SEGMENTER", segmenter | {"iters": 2})
    argv = ["reproduce", "table2", "--scale", "smoke", "--out", str(tmp_path / "out"), "--bounds-only", "--seeds",
            "1", "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert re.search(r"^set-up: synthetic city .+, preparing the data .+, segmenter .+, calibration .+ in all", first,
                     re.M), first
    assert re.search(r"^estimated .+, measured .+ \(set-up: estimated .+, measured .+; the whole command", first, re.M)
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "set-up" not in second and "estimated set-up" not in second


@pytest.fixture
def tiny(tmp_path_factory):
    return tiny_city_and_segmenter(tmp_path_factory.mktemp("tiny"))


def smoke_args(out, city, seg):
    return argparse.Namespace(out=out, cityscapes=city, data=None, segmenter=seg, device="cpu")


@pytest.mark.slow
def test_interrupted_reproduction_resumes_without_retraining_finished_rows(tiny, tmp_path, monkeypatch):
    city, seg = tiny
    out = tmp_path / "out"
    monkeypatch.setattr(P, "rows_for", lambda target: [ROW["cyclegan"], ROW["gan_alone"]])
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
    assert [r["row"] for r in results] == ["cyclegan", "gan_alone", "ground_truth", "untrained", "constant"]
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
def test_floor_and_ceiling_rows_are_result_files_with_provenance(tiny, tmp_path):
    """repro.bounds: ground truth, the untrained generator (per seed) and the constant output, scored as a row is."""
    from repro import results_table

    city, seg = tiny
    setup = R.smoke_setup(smoke_args(tmp_path / "out", city, seg), progress=False)
    made = R.run_bounds(setup, seeds=2, progress=False)
    assert [(r["row"], r["seed"]) for r in made] == [("ground_truth", 0), ("untrained", 0), ("untrained", 1),
                                                     ("constant", 0)]
    for result in made:
        path = tmp_path / "out" / result["row"] / f"seed-{result['seed']}" / "result.json"
        assert json.loads(path.read_text()) == result and result["tables"] == [2, 3, 4, 5]
        for direction in ("labels2photo", "photo2labels"):
            assert set(result["metrics"][direction]) == {"pixel_acc", "class_acc", "iou"}
            assert len(list(path.parent.joinpath(direction).glob("*.png"))) == 2
        p = result["provenance"]
        assert len(p["segmenter"]["sha256"]) == 64 and "metrics" in p["calibration"] and p["scale"] == "smoke"
        assert result["made_by"]["what"]
    truth, untrained0, untrained1, constant = made
    # the ceiling: the true label maps come back as (nearly) themselves; a constant class scores one class
    assert truth["metrics"]["photo2labels"]["pixel_acc"] > 0.8 > constant["metrics"]["photo2labels"]["pixel_acc"]
    assert untrained0["made_by"]["config"]["seed"] == 0 and untrained1["made_by"]["config"]["seed"] == 1
    assert constant["made_by"]["most_frequent_train_id"] in range(19)
    stamp = (tmp_path / "out" / "constant" / "seed-0" / "result.json").stat().st_mtime_ns
    R.run_bounds(setup, seeds=2, progress=False)  # made the same way: reused
    assert (tmp_path / "out" / "constant" / "seed-0" / "result.json").stat().st_mtime_ns == stamp
    frame = results_table.tidy(results_table.load_results(tmp_path / "out"))
    assert set(frame["kind"]) == {"ceiling", "floor"} and len(frame) == 4 * 4 * 3  # 4 results x 4 tables x 3 metrics


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
    and its ablations as two packs of five, the runs in 2 local jobs), from nothing, checked against
    expected/ranges_smoke.toml (measured over 5 seeds of the same command)."""
    out = tmp_path / "smoke"
    assert main(["reproduce", "all", "--scale", "smoke", "--seeds", "2", "--out", str(out), "--quiet",
                 "--device", "cpu", "--pack", "5", "--launcher", "local", "--jobs", "2"]) == 0
    report = (out / "report.md").read_text()
    assert (out / "report.html").is_file()
    assert all(f"| {row.label} " in report for row in ROWS) and "not implemented" not in report
    capsys.readouterr()
    code = main(["check", str(out), "--ranges", str(EXPECTED / "ranges_smoke.toml"), "--require-all"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    # Tables 2/3: 6 rows x 3 x 2, Tables 4/5: 5 rows x 3 x 2, and the 3 floor/ceiling rows x 3 x 4 tables
    assert "102 of 102 judged cells pass the band rule" in printed
    # The demo shows learning (issue 23): every seed of CycleGAN and pix2pix scores above the best floor row
    # (untrained generator, constant output) in per-pixel accuracy, in both directions.
    import pandas as pd
    pixel = pd.read_csv(out / "results.csv").query("metric == 'pixel_acc' and table in (2, 3)")
    floors = pixel[pixel.kind == "floor"].groupby(["direction", "row"]).value.mean().groupby("direction").max()
    for row in ("cyclegan", "pix2pix"):
        for direction, best_floor in floors.items():
            seeds = pixel[(pixel.row == row) & (pixel.direction == direction)].value
            assert len(seeds) == 2 and (seeds > best_floor).all(), (row, direction, list(seeds), best_floor)


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
    bounds = [r for r in results if r["row"] in ("ground_truth", "untrained", "constant")]
    assert len(bounds) == 4 and not any((out / r["row"] / f"seed-{r['seed']}" / "run").exists() for r in bounds)
    results = [r for r in results if r not in bounds]  # the floor and ceiling rows: scored, never trained or packed
    assert len(results) == 10 and all(0 <= r["metrics"]["labels2photo"]["pixel_acc"] <= 1 for r in results)
    for r in results:
        info = json.loads((out / r["row"] / f"seed-{r['seed']}" / "run" / "run.json").read_text())
        assert info["packed"]["runs"] == 10 and str(out / r["row"]) in info["packed"]["folders"][info["packed"]["index"]]
    packs.clear()
    R.reproduce("table4", setup, seeds=2, iters_per_epoch=2, progress=False, pack="auto")
    assert packs == []


def test_evaluation_is_timed_on_a_few_val_frames_and_scaled_to_the_val_set(tiny, tmp_path):
    """The estimate's translation and scoring per run: both directions on 3 val frames (here the tiny city's 2),
    scaled to the val set, the segmenter's load once; nothing written in the reproduction's folder."""
    city, seg = tiny
    setup = R.smoke_setup(smoke_args(tmp_path / "out", city, seg), progress=False)
    before = sorted(p.relative_to(setup.out) for p in setup.out.rglob("*"))
    cfg = row_config(ROW["cyclegan"], "smoke", 0)
    seconds = R.evaluation_seconds(setup, cfg)
    assert 0 < seconds < 600
    assert sorted(p.relative_to(setup.out) for p in setup.out.rglob("*")) == before


class Killed(BaseException):
    """A simulated kill at a rename (caught by nothing in repro)."""


def test_a_reproduction_pack_killed_among_its_commit_renames_is_regrouped_as_one_pack(tiny, tmp_path, monkeypatch):
    """A kill between the per-run renames of a pack's checkpoint left run 0 at step 1 and run 1 without a checkpoint;
    the rerun's grouping finishes the commit, so both runs resume together as the pack they were."""
    city, seg = tiny
    setup = R.smoke_setup(smoke_args(tmp_path / "out", city, seg), progress=False)
    runs = [(ROW["cyclegan"], 0), (ROW["cyclegan"], 1)]
    cfgs = [row_config(row, "smoke", seed, 1, setup.settings) for row, seed in runs]
    folders = [setup.out / row.key / f"seed-{seed}" / "run" for row, seed in runs]
    real, renamed = os.replace, []

    def replace(src, dst):
        if Path(dst).name == "checkpoint.pt":
            renamed.append(dst)
            if len(renamed) == 2:
                raise Killed
        return real(src, dst)

    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with pytest.raises(Killed):
            training.train_runs(cfgs, setup.data, folders, device="cpu", progress=False)
    assert (folders[0] / "checkpoint.pt").is_file() and not (folders[1] / "checkpoint.pt").exists()
    assert R.pack_groups(runs, setup, 1, "auto") == [runs]
    assert all((folder / "checkpoint.pt").is_file() for folder in folders)
def test_a_step_is_current_only_when_its_output_records_the_same_inputs():
    """repro.done: the one rule behind a finished row, a kept score file, the pretrained row and a kept calibration."""
    record = {"config": {"lr": 1}, "provenance": {"segmenter": {"sha256": "a"}}}
    key = {"config": {"lr": 1}, "provenance.segmenter.sha256": "a"}
    assert is_current(record, key)
    assert not is_current(record, key | {"provenance.segmenter.sha256": "b"})  # the segmenter changed
    assert not is_current(record, key | {"config": {"lr": 2}})  # the config changed
    assert not is_current({"config": {"lr": 1}}, key)  # an older output that does not record the segmenter
    assert not is_current({}, {}) and not is_current(None, {}) and is_current({"x": 1}, {})  # nothing kept: redo
