"""repro.done: one rule for whether a kept output is current, and each stage of a reproduction keyed by its inputs:
a changed segmenter, data manifest or protocol version redoes what depends on it and nothing else; an unchanged
input redoes nothing; an output of an older version without the key is redone with one line saying so."""

import argparse
import json
import os

import pytest
import torch

from tests.conftest import tiny_city_and_segmenter
from repro import ReproError
from repro import reproduce as R
from repro import train as training
from repro import translate as translating
from repro.checkpoint import is_finished
from repro.done import is_current, stale_field
from repro.eval import labels2photo, photo2labels
from repro.eval.fcn import fcn8s, save_segmenter
from repro.eval.results import PROTOCOL_VERSIONS
from repro.reproduce import launcher
from repro.rows import ROWS

ROW = {r.key: r for r in ROWS}


def test_is_current_names_the_field_a_kept_output_lacks_or_differs_in(capsys):
    record = {"config": {"lr": 1}, "provenance": {"segmenter": {"sha256": "a"}}}
    key = {"config": {"lr": 1}, "provenance.segmenter.sha256": "a"}
    assert is_current(record, key, "R.json") and capsys.readouterr().out == ""
    assert not is_current(record, key | {"provenance.segmenter.sha256": "b"}, "R.json")
    assert capsys.readouterr().out == "R.json was made with another provenance.segmenter.sha256: redoing it\n"
    assert not is_current({"config": {"lr": 1}}, key, "R.json")
    assert capsys.readouterr().out == ("R.json records no provenance.segmenter.sha256 (written by an older version): "
                                       "redoing it\n")
    assert not is_current({}, key, "R.json") and not is_current(None, key, "R.json")  # nothing kept: nothing to say
    assert capsys.readouterr().out == ""
    assert stale_field(record, key) is None and stale_field(record, key | {"config": {"lr": 2}}) == "config"


def test_a_finished_run_is_its_run_json_against_its_config(tmp_path):
    from repro.config import config_to_toml, load_config

    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config("smoke/cyclegan", iters_per_epoch=1)
    (run / "config.toml").write_text(config_to_toml(cfg))
    (run / "checkpoint.pt").write_bytes(b"")
    info = {"finished": True, "epochs_done": cfg.epochs}
    (run / "run.json").write_text(json.dumps(info))
    assert is_finished(run)
    (run / "run.json").write_text(json.dumps(info | {"epochs_done": cfg.epochs - 1}))
    assert not is_finished(run)
    (run / "run.json").write_text(json.dumps({"finished": True, "epochs": cfg.epochs}))  # before epochs_done
    assert is_finished(run)
    (run / "run.json").write_text(json.dumps({"epochs_done": cfg.epochs}))  # never marked finished
    assert not is_finished(run)


def test_a_job_json_of_another_launcher_is_no_earlier_job(tmp_path):
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps({"launcher": "slurm", "job_id": str(os.getpid())}))
    assert launcher.earlier_job(folder, "local", None) is None
    (folder / "job.json").write_text(json.dumps({"job_id": str(os.getpid())}))  # no launcher recorded
    assert launcher.earlier_job(folder, "local", None) is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_city_and_segmenter(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def row_done(tiny, tmp_path, monkeypatch):
    """cycle_alone seed 0 trained, translated and scored; then a watch on what a rerun redoes."""
    city, seg = tiny
    own_seg = tmp_path / "seg.pt"
    own_seg.write_bytes(seg.read_bytes())  # this test's copy: one test replaces it
    args = argparse.Namespace(out=tmp_path / "out", cityscapes=city, data=None, segmenter=own_seg, device="cpu")
    setup = R.smoke_setup(args, progress=False)
    R.run_row(ROW["cycle_alone"], 0, setup, iters_per_epoch=1, progress=False)
    done = []
    monkeypatch.setattr(training, "train", lambda *a, **k: done.append("train"))
    real_translate, real_l2p, real_p2l = translating.translate_folder, labels2photo.evaluate, photo2labels.evaluate
    monkeypatch.setattr(translating, "translate_folder", lambda *a, **k: done.append("translate")
                        or real_translate(*a, **k))
    monkeypatch.setattr(labels2photo, "evaluate", lambda *a, **k: done.append("labels2photo") or real_l2p(*a, **k))
    monkeypatch.setattr(photo2labels, "evaluate", lambda *a, **k: done.append("photo2labels") or real_p2l(*a, **k))
    return setup, done


def rerun(setup) -> dict:
    return R.run_row(ROW["cycle_alone"], 0, setup, iters_per_epoch=1, progress=False)


def result_path(setup):
    return setup.out / "cycle_alone" / "seed-0" / "result.json"


@pytest.mark.slow
def test_unchanged_inputs_redo_nothing(row_done):
    setup, done = row_done
    stamp = result_path(setup).stat().st_mtime_ns
    assert rerun(setup) == json.loads(result_path(setup).read_text())
    assert done == [] and result_path(setup).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_changed_data_manifest_redoes_the_result_only(row_done, capsys):
    setup, done = row_done
    manifest = setup.data / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"note": "prepared again"}))
    capsys.readouterr()
    result = rerun(setup)
    assert done == []  # the run's training images, its translations and their scores are as they were
    assert "result.json was made with another provenance.dataset_manifest_sha256: redoing it" in capsys.readouterr().out
    assert result["provenance"]["dataset_manifest_sha256"] == R.plan.manifest_sha256(setup.data)
    done.clear()
    rerun(setup)
    assert done == []


@pytest.mark.slow
def test_another_segmenter_rescores_labels_to_photo_without_retraining(row_done):
    setup, done = row_done
    torch.manual_seed(1)
    sha = save_segmenter(fcn8s(width=1 / 32).eval(), setup.segmenter, source="test")  # same path, other weights
    result = rerun(setup)
    assert done == ["labels2photo"]  # photo -> labels uses no model: its score is kept
    assert result["provenance"]["segmenter"]["sha256"] == sha


@pytest.mark.slow
def test_a_new_protocol_version_rescores_its_direction(row_done, monkeypatch):
    setup, done = row_done
    monkeypatch.setitem(PROTOCOL_VERSIONS, "photo2labels", PROTOCOL_VERSIONS["photo2labels"] + 1)
    result = rerun(setup)
    assert done == ["photo2labels"]
    assert result["protocol_versions"]["photo2labels"] == PROTOCOL_VERSIONS["photo2labels"]
    score = json.loads((setup.out / "cycle_alone" / "seed-0" / "photo2labels.json").read_text())
    assert score["protocol_version"] == PROTOCOL_VERSIONS["photo2labels"]


@pytest.mark.slow
def test_outputs_of_an_older_version_are_redone_saying_so_but_never_retrained(row_done, capsys):
    setup, done = row_done
    folder = setup.out / "cycle_alone" / "seed-0"
    result = json.loads(result_path(setup).read_text())
    del result["protocol_versions"]
    result_path(setup).write_text(json.dumps(result))
    record = folder / "labels2photo" / "translation.json"
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "made_from"}))
    capsys.readouterr()
    rerun(setup)
    out = capsys.readouterr().out
    assert "result.json records no protocol_versions (written by an older version): redoing it" in out
    assert "translation.json records no made_from.checkpoint_sha256 (written by an older version)" in out
    assert done == ["translate", "labels2photo"]
    assert "made_from" in json.loads(record.read_text())


@pytest.mark.slow
def test_a_finished_run_of_other_training_images_is_refused_not_reused(row_done):
    setup, done = row_done
    image = next((setup.data / "trainA").iterdir())  # the dataset prepared again, with other training images
    image.rename(image.with_name("renamed-" + image.name))
    manifest = setup.data / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"note": "prepared again"}))
    with pytest.raises(ReproError, match="was trained on"):
        rerun(setup)
    assert done == []
