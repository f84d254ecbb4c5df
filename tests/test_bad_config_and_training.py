"""Bad configs and training faults (issue 12): every field's type and range checked at load with the file and
field named; no false success (0 epochs); a fresh restart starts fresh logs; a time-based checkpoint for every
config; a full disk keeps the last good checkpoint; runs from before `pairing` keep their scheme."""

import itertools
import json
from pathlib import Path

import pytest
import torch

import repro.train
from repro import ReproError
from repro.checkpoint import is_finished, run_config, write_run_info
from repro.cli import main
from repro.config import config_to_toml, load_config, parse_settings
from repro.io import DiskFull
from repro.train import train
from tests.conftest import tiny_config


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nprofile = "paper"\n' + text + "\n")
    return path


@pytest.mark.parametrize("line, words", [
    ("ngf = true", "ngf should be an integer, got true"),
    ("flip = 1", "flip should be a bool, got 1"),
    ("lr = true", "lr should be a float, got true"),
    ("lr = 0", "lr = 0.0 is out of range: it must be above 0"),
    ("lr = -0.0002", "lr = -0.0002 is out of range"),
    ("lr = nan", "lr = nan is not a finite number"),
    ("pool_size = -1", "pool_size = -1 is out of range: it must be 0 or more"),
    ("crop_size = 0", "crop_size = 0 is out of range: it must be 1 or more"),
    ("load_size = -143", "load_size = -143 is out of range"),
    ("lambda_forward = -10", "lambda_forward = -10.0 is out of range: it must be 0 or more (a negative weight"),
    ("lambda_identity = -0.5", "lambda_identity = -0.5 is out of range"),
    ("lambda_gan = -1", "lambda_gan = -1.0 is out of range"),
    ("epochs_constant = 0\nepochs_decay = 0", "epochs_constant + epochs_decay = 0: at least one epoch must run"),
    ("epochs_decay = -100", "epochs_decay = -100 is out of range"),
    ("iters_per_epoch = -3", "iters_per_epoch = -3 is out of range"),
    ("batch_size = 0", "batch_size = 0 is out of range"),
    ("beta1 = 1.0", "beta1 = 1.0 is out of range: it must be in [0, 1)"),
    ("seed = -1", "seed = -1 is out of range"),
    ("checkpoint_minutes = -5", "checkpoint_minutes = -5.0 is out of range"),
    ("log_every = 0", "log_every = 0 is out of range"),
    ('pairing = "zip"', "pairing = 'zip' is not one of"),
    ('pairing = "port"\nx_train = "labels"\ny_train = "photos"', "name neither"),
])
def test_config_field_out_of_range_names_file_and_field(tmp_path, line, words):
    path = write_config(tmp_path, line)
    with pytest.raises(ReproError) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and words in str(err.value)


def test_iters_per_epoch_error_does_not_blame_the_batch_size(tmp_path):
    with pytest.raises(ReproError) as err:
        load_config(str(write_config(tmp_path, "iters_per_epoch = -3")))
    assert "batch_size" not in str(err.value)


def test_command_line_overrides_are_named(tmp_path):
    with pytest.raises(ReproError, match=r"with lr = 0 from the command line\): lr = 0.0 is out of range"):
        load_config("smoke/cyclegan", lr=0)


def test_set_refuses_a_bool_for_a_number():
    with pytest.raises(ReproError, match="ngf takes a int, got True"):
        parse_settings(["ngf=true"])


def test_every_shipped_config_is_valid():
    from repro.config import CONFIG_DIR
    names = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.toml"))
    assert len(names) > 10
    for name in names:
        load_config(name)


@pytest.mark.parametrize("argv, flag", [(["--epochs", "0"], "--epochs"), (["--epochs", "-2"], "--epochs"),
                                        (["--iters-per-epoch", "-3"], "--iters-per-epoch"),
                                        (["--iters-per-epoch", "0"], "--iters-per-epoch"),
                                        (["--stop-after", "0"], "--stop-after")])
def test_train_cli_refuses_counts_below_one(tiny_data, tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(tmp_path / "run"), *argv])
    assert exit_.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_cli_set_out_of_range_is_one_clean_error(tiny_data, tmp_path, capsys):
    assert main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(tmp_path / "run"),
                 "--set", "pool_size=-1"]) == 1
    err = capsys.readouterr().err
    assert "pool_size = -1 is out of range" in err and "smoke/cyclegan.toml" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config, settings, words", [
    ("smoke/simgan", ["update_order=joint"], "simgan trains in the Lua step order"),
    ("smoke/cogan", ["cogan_private_layers=9"], "cogan_private_layers = 9: the generator has"),
    ("smoke/cogan", ["crop_size=24"], "crop_size 24: the DCGAN nets"),
    ("smoke/bigan", ["bigan_code=\"latent\"", "crop_size=24"], "crop_size 24: the DCGAN nets"),
    ("smoke/cyclegan", ["batch_size=64", "iters_per_epoch=0"], "batch_size 64 is larger than the"),
])
def test_a_config_the_method_refuses_leaves_no_folder(tiny_data, tmp_path, capsys, config, settings, words):
    """Method.check and every other refusal of a config run before the run folder (or its config.toml) is written."""
    argv = ["train", config, "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"]
    assert main([*argv, *(a for s in settings for a in ("--set", s))]) == 1
    assert words in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_allowed_values_in_config_are_the_owners_own():
    """config.py lists every allowed value (so it imports no other module); the lists the code acts on agree."""
    from repro import config
    from repro.data.loaders import FILTERS
    from repro.methods import METHODS

    assert tuple(METHODS) == config.METHODS
    assert tuple(FILTERS) == config.RESIZE_FILTERS
    for field, allowed in config.CHOICES.items():
        assert getattr(config.Config(), field) in allowed


# ------------------------------------------------------------------------------ no false success


def test_write_run_info_refuses_a_run_whose_epochs_did_not_run(tmp_path):
    cfg = tiny_config()
    with pytest.raises(ReproError, match="only 0 of 2 epochs ran"):
        write_run_info(tmp_path, cfg, tmp_path, torch.device("cpu"), amp=False, seconds=0.0, epochs_done=0)
    assert not (tmp_path / "run.json").exists()


def test_is_finished_means_the_configured_epochs_ran(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(), tiny_data, run, device="cpu", progress=False)
    assert is_finished(run)
    info = json.loads((run / "run.json").read_text())
    assert info["epochs_done"] == 2 and info["finished"]
    # the old false success: finished, but its config ran no epoch
    (run / "config.toml").write_text(config_to_toml(tiny_config()).replace("epochs_decay = 1", "epochs_decay = 0")
                                     .replace("epochs_constant = 1", "epochs_constant = 0"))
    assert not is_finished(run)
    # a config asking for more epochs than ran (e.g. the config was made longer): not finished
    (run / "config.toml").write_text(config_to_toml(tiny_config(epochs_decay=3)))
    assert not is_finished(run)
    (run / "config.toml").write_text(config_to_toml(tiny_config()))
    (run / "checkpoint.pt").unlink()
    assert not is_finished(run)


def test_old_false_success_run_json_is_not_finished(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(config_to_toml(tiny_config()))
    (run / "run.json").write_text(json.dumps({"finished": True, "epochs": 0}))
    (run / "checkpoint.pt").write_bytes(b"")
    assert not is_finished(run)


# ------------------------------------------------------------------------------ fresh restart, time-based checkpoint


def test_fresh_restart_after_a_kill_before_the_first_checkpoint_starts_fresh_logs(tiny_data, tmp_path):
    cfg = tiny_config()
    train(cfg, tiny_data, tmp_path / "full", device="cpu", progress=False)
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "config.toml").write_text(config_to_toml(cfg))
    (stale / "losses.jsonl").write_text("".join(json.dumps({"step": s, "epoch": 1, "G": 9.0}) + "\n" for s in (1, 2, 3)))
    (stale / "fid.jsonl").write_text('{"step": 4, "fid": 1.0}\n')
    (stale / "run.json").write_text('{"finished": true, "epochs": 2}')
    train(cfg, tiny_data, stale, device="cpu", progress=False)
    assert (stale / "losses.jsonl").read_text() == (tmp_path / "full/losses.jsonl").read_text()
    steps = [json.loads(line)["step"] for line in (stale / "losses.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps))
    assert not (stale / "fid.jsonl").exists()


def test_every_config_records_a_time_based_checkpoint():
    from repro.config import CONFIG_DIR
    for path in CONFIG_DIR.rglob("*.toml"):
        cfg = load_config(str(path))
        assert cfg.checkpoint_minutes == 10.0
        assert "checkpoint_minutes = 10.0" in config_to_toml(cfg)


class Killed(Exception):
    pass


def test_time_based_checkpoint_saves_mid_epoch_and_a_kill_after_it_resumes_bit_for_bit(tiny_data, tmp_path,
                                                                                       monkeypatch):
    cfg = tiny_config(iters_per_epoch=8, checkpoint_every=0, checkpoint_minutes=10.0)
    train(cfg, tiny_data, tmp_path / "full", device="cpu", progress=False)
    clock = itertools.count(0.0, 4 * 60.0)  # every reading of the clock: 4 more minutes
    monkeypatch.setattr(repro.train.time, "monotonic", lambda: next(clock))
    real_save, saved = repro.train.save_checkpoint, []

    def save_then_die(path, cfg, nets, opts, pools, rng, position):
        real_save(path, cfg, nets, opts, pools, rng, position)
        saved.append(dict(position))
        if 0 < position["iteration"] < 8:  # a mid-epoch save: the time-based one; then the process "dies"
            raise Killed

    monkeypatch.setattr(repro.train, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(cfg, tiny_data, tmp_path / "killed", device="cpu", progress=False)
    assert saved and saved[-1]["epoch"] == 1 and 0 < saved[-1]["iteration"] < 8  # before the first epoch ended
    monkeypatch.undo()
    train(cfg, tiny_data, tmp_path / "killed", device="cpu", progress=False, resume=True)
    full = torch.load(tmp_path / "full/checkpoint.pt", weights_only=False)["nets"]
    killed = torch.load(tmp_path / "killed/checkpoint.pt", weights_only=False)["nets"]
    for net in full:
        for key in full[net]:
            assert torch.equal(full[net][key], killed[net][key]), (net, key)
    assert (tmp_path / "full/losses.jsonl").read_text() == (tmp_path / "killed/losses.jsonl").read_text()


def test_zero_minutes_turns_the_time_based_checkpoint_off(tiny_data, tmp_path, monkeypatch):
    clock = itertools.count(0.0, 3600.0)
    monkeypatch.setattr(repro.train.time, "monotonic", lambda: next(clock))
    real_save, saved = repro.train.save_checkpoint, []
    monkeypatch.setattr(repro.train, "save_checkpoint",
                        lambda *a: (saved.append(dict(a[-1])), real_save(*a)))
    train(tiny_config(checkpoint_minutes=0.0), tiny_data, tmp_path / "run", device="cpu", progress=False)
    assert [p["iteration"] for p in saved] == [0, 0]  # the two end-of-epoch saves only


def test_a_log_line_cut_short_is_dropped_on_resume(tiny_data, tmp_path):
    cfg = tiny_config()
    train(cfg, tiny_data, tmp_path / "full", device="cpu", progress=False)
    train(cfg, tiny_data, tmp_path / "cut", device="cpu", progress=False, stop_after=3)
    with open(tmp_path / "cut/losses.jsonl", "a") as f:
        f.write('{"step": 4, "epoch": 1, "G": 0.')  # a kill (or a full disk) mid-line
    train(cfg, tiny_data, tmp_path / "cut", device="cpu", progress=False, resume=True)
    assert (tmp_path / "full/losses.jsonl").read_text() == (tmp_path / "cut/losses.jsonl").read_text()


# ------------------------------------------------------------------------------ disk full during training




def test_disk_full_at_a_checkpoint_keeps_the_last_good_one(tiny_data, tmp_path, small_disk):
    cfg = tiny_config()
    train(cfg, tiny_data, tmp_path / "sizes", device="cpu", progress=False, stop_after=4)  # one epoch: its files
    first_epoch = sum(p.stat().st_size for p in (tmp_path / "sizes").iterdir())
    ckpt = (tmp_path / "sizes/checkpoint.pt").stat().st_size
    disk = small_disk(first_epoch + ckpt // 2 + 16 * 1024)  # epoch 1 fits; a second checkpoint beside the first does not
    run = disk / "run"
    with pytest.raises(DiskFull) as err:
        train(cfg, tiny_data, run, device="cpu", progress=False)
    message = str(err.value)
    assert str(run) in message and "checkpoint.pt" in message and "needed" in message and "free" in message
    assert "last good checkpoint was kept" in message
    assert not [p for p in run.iterdir() if ".partial" in p.name]
    position = torch.load(run / "checkpoint.pt", weights_only=False)["position"]
    assert position["epoch"] == 2 and position["iteration"] == 0  # the end of epoch 1, intact and loadable
    assert not (run / "run.json").exists() and not is_finished(run)


# ------------------------------------------------------------------------------ runs from before `pairing`


def test_a_run_from_before_pairing_keeps_its_scheme(tiny_data, tmp_path):
    cfg = tiny_config(pairing="larger")
    run = tmp_path / "run"
    train(cfg, tiny_data, run, device="cpu", progress=False, stop_after=3)
    old_toml = "\n".join(line for line in (run / "config.toml").read_text().splitlines()
                         if not line.startswith("pairing"))
    (run / "config.toml").write_text(old_toml + "\n")
    assert run_config(run).pairing == "larger"
    with pytest.raises(ReproError, match=r"'pairing': \('larger', 'lua'\)"):
        train(tiny_config(), tiny_data, run, device="cpu", progress=False, resume=True)
    train(cfg, tiny_data, run, device="cpu", progress=False, resume=True)
    assert is_finished(run)
