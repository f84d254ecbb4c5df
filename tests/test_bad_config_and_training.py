"""Bad configs and training faults (issue 12): every field's type and range checked at load with the file and
field named; no false success (0 epochs); a fresh restart starts fresh logs; a time-based checkpoint for every
config; a full disk keeps the last good checkpoint; runs from before `pairing` keep their scheme."""

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import repro.train
from repro import ReproError
from repro.checkpoint import is_finished, prepare_run_folder, run_config, write_run_info
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


# ------------------------------------------------------------------------------ issue 22: config-level tracebacks

def test_a_base_chain_that_loops_names_the_chain(tmp_path):
    (tmp_path / "self.toml").write_text('base = "self.toml"\nngf = 8\n')
    with pytest.raises(ReproError, match=r"base = 'self.toml' makes a loop \(.*self.toml -> .*self.toml\)"):
        load_config(str(tmp_path / "self.toml"))
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ReproError) as err:
        load_config(str(tmp_path / "a.toml"))
    assert re.search(r"a\.toml -> .*b\.toml -> .*a\.toml", str(err.value)) and "without `base`" in str(err.value)


def test_a_user_config_may_name_a_shipped_config_as_its_base(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "smoke/cyclegan"\nlambda_identity = 0.5\n')
    cfg = load_config(str(path))
    shipped = load_config("smoke/cyclegan")
    inherited = (cfg.crop_size, cfg.ngf, cfg.iters_per_epoch)
    assert cfg.lambda_identity == 0.5 and inherited == (32, 16, shipped.iters_per_epoch) != (128, 64, 0)  # not the defaults
    assert {k: v for k, v in vars(cfg).items() if k != "lambda_identity"} == \
        {k: v for k, v in vars(shipped).items() if k != "lambda_identity"}
    (tmp_path / "smoke").mkdir()  # a file beside the config wins over the shipped name
    (tmp_path / "smoke" / "cyclegan.toml").write_text("ngf = 4\n")
    path.write_text('base = "smoke/cyclegan.toml"\n')
    assert load_config(str(path)).ngf == 4
    path.write_text('base = "smoke/nothing"\n')
    with pytest.raises(ReproError, match="does not exist .*and for a shipped config of that name"):
        load_config(str(path))


@pytest.mark.parametrize("line, words", [
    ("crop_size = 30", "crop_size = 30 does not fit the nets: generator resnet_6blocks: a ResNet generator halves "
                       "twice and reflection-pads its residual blocks, so it needs a multiple of 4, at least 8"),
    ("crop_size = 31", "crop_size = 31 does not fit the nets"),
    ("crop_size = 2\nload_size = 2", "crop_size = 2 does not fit the nets: generator resnet_6blocks"),
    ("crop_size = 4\nload_size = 4", "needs a multiple of 4, at least 8"),
    ("crop_size = 8\nload_size = 8\nd_padding = 1", "the PatchGAN discriminator (d_layers = 3, d_padding = 1) would "
                                                     "shrink 8x8 below one patch"),
    ('method = "pix2pix"\ngenerator = "unet_128"\nnorm = "batch"\ncrop_size = 32\nload_size = 36\nunet_num_downs = 50',
     "crop_size = 32 does not fit the nets: generator U-Net (unet_num_downs = 50): a U-Net with 50 halvings needs a "
     "multiple of 2^50 = 1125899906842624 (the U-Net halvings that fit 32: up to 5)"),
    ('method = "pix2pix"\ngenerator = "unet_128"\nnorm = "batch"\ncrop_size = 32\nload_size = 36',
     "a U-Net with 7 halvings needs a multiple of 2^7 = 128"),
    ('method = "pix2pix"\nunet_num_downs = 3', "unet_num_downs = 3 is out of range: it must be 0 (the generator's "
                                               "own) or 5 or more"),
    ('method = "cogan"\ncrop_size = 48\nload_size = 48', "the DCGAN nets of cogan need a power of two, at least 8"),
])
def test_sizes_the_nets_cannot_take_are_refused_at_load(tmp_path, line, words):
    path = write_config(tmp_path, line)
    with pytest.raises(ReproError) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and words in str(err.value), str(err.value)


def test_every_size_the_rule_allows_trains_and_every_other_fails_in_the_nets():
    """The load-time rule agrees with the nets themselves: one forward of G and D at each size."""
    from repro.config import make_config, size_problem
    from repro.methods import cyclegan, pix2pix

    def works(cfg, size):
        nets = (pix2pix if cfg.method == "pix2pix" else cyclegan).build_nets(cfg)
        x = torch.rand(1, 3, size, size)
        try:
            y = nets["G"](x)
            return y.shape == x.shape and nets["D_Y"](torch.cat([x, y], 1) if cfg.method == "pix2pix" else y).numel() > 0
        except (RuntimeError, ValueError):
            return False

    cases = [(make_config("paper", ngf=2, ndf=2, load_size=80, crop_size=32, d_padding=padding), range(1, 41)) for padding in (1, 2)]
    cases.append((make_config("paper", method="pix2pix", generator="unet_128", norm="batch", ngf=1, ndf=2,
                              unet_num_downs=5, load_size=80, crop_size=32), range(1, 70)))
    for cfg, sizes in cases:
        assert [size_problem(cfg, s) is None for s in sizes] == [works(cfg, s) for s in sizes]


def test_train_out_that_is_a_file_is_one_clean_error(tiny_data, tmp_path, capsys):
    (tmp_path / "taken").write_text("notes")
    for extra in ([], ["--seeds", "0", "1"]):
        assert main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(tmp_path / "taken"),
                     "--device", "cpu", "--quiet", *extra]) == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / 'taken'} is a file, not a folder; choose another --out folder" in err, err
        assert "Traceback" not in err and (tmp_path / "taken").read_text() == "notes"
@pytest.mark.parametrize("config, settings, words", [
    ("smoke/simgan", ["update_order=joint"], "simgan trains in the Lua step order"),
    ("smoke/cogan", ["cogan_private_layers=9"], "cogan_private_layers = 9: the generator has"),
    ("smoke/cogan", ["crop_size=24"], "crop_size = 24 does not fit the nets: the DCGAN nets of cogan"),
    ("smoke/bigan", ["bigan_code=\"latent\"", "crop_size=24"], "crop_size = 24 does not fit the nets: the DCGAN nets of bigan"),
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


def test_a_fresh_run_removes_the_partials_of_dead_writers_and_keeps_a_live_ones(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        stale = run / f".checkpoint.pt.partial-{int(dead.stdout)}"
        live = run / f".checkpoint.pt.partial-{sleeper.pid}"
        other = run / ".notes.partial-x"
        for path in (stale, live, other):
            path.write_bytes(b"16 MB of a checkpoint")
        prepare_run_folder(tiny_config(), run, resume=False)
        assert not stale.exists() and live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


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
    real_save, saved = repro.train.save_checkpoints, []

    def save_then_die(runs, cfgs, views, rngs, positions):
        real_save(runs, cfgs, views, rngs, positions)
        saved.append(dict(positions[0]))
        if 0 < positions[0]["iteration"] < 8:  # a mid-epoch save: the time-based one; then the process "dies"
            raise Killed

    monkeypatch.setattr(repro.train, "save_checkpoints", save_then_die)
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
    real_save, saved = repro.train.save_checkpoints, []
    monkeypatch.setattr(repro.train, "save_checkpoints",
                        lambda *a: (saved.append(dict(a[-1][0])), real_save(*a)))
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


# ------------------------------------------------------------------------------ issue 22: silent training inputs


@pytest.mark.parametrize("line, words", [
    ('x_train = "/abs/labels"', "x_train = '/abs/labels' must name a folder inside the dataset folder"),
    ('y_train = "../elsewhere/trainA"', "y_train = '../elsewhere/trainA' must name a folder inside"),
    ('x_test = "."', "x_test = '.' must name a folder inside"),
    ('x_train = "trainA"', "x_train and y_train both name 'trainA'"),
    ('y_test = "testB/"', "x_test and y_test both name 'testB'"),
])
def test_domain_folders_outside_data_or_equal_are_refused(tmp_path, line, words):
    path = write_config(tmp_path, line)
    with pytest.raises(ReproError) as err:
        load_config(str(path))
    assert str(path) in str(err.value) and words in str(err.value)


def test_duplicate_seeds_of_a_pack_are_refused_before_any_folder(tiny_data, tmp_path, capsys):
    out = tmp_path / "pack"
    assert main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(out), "--seeds", "0", "0",
                 "--device", "cpu"]) == 1
    assert "names seed(s) [0] more than once" in capsys.readouterr().err and not out.exists()
    with pytest.raises(ReproError, match="name one folder twice"):
        repro.train.train_runs([tiny_config(), tiny_config()], tiny_data, [out / "a", out / "a"], device="cpu")
    assert not out.exists()


def test_amp_on_the_cpu_is_refused_like_graphs_before_any_folder(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(out), "--amp", "--device", "cpu"]) == 1
    assert "--amp (bf16 autocast) needs a CUDA device, not cpu" in capsys.readouterr().err and not out.exists()


def test_resume_with_other_data_is_refused_naming_both(tiny_data, tmp_path):
    from tests.conftest import write_tiny_dataset

    run = tmp_path / "run"
    train(tiny_config(), tiny_data, run, device="cpu", progress=False, stop_after=1)
    recorded = json.loads((run / "data.json").read_text())
    assert recorded["data"] == str(tiny_data.resolve()) and recorded["folders"]["trainB"]["images"] == 5
    other = write_tiny_dataset(tmp_path / "other", n_x=4)
    with pytest.raises(ReproError) as err:
        train(tiny_config(), other, run, device="cpu", progress=False, resume=True)
    message = str(err.value)
    assert f"trained on {tiny_data.resolve()}" in message and f"--data {other}" in message
    assert "trainB: 5 images" in message and "trainB: 4 images" in message
    moved = tmp_path / "moved"  # the same images in another place: the same data
    import shutil
    shutil.copytree(tiny_data, moved)
    train(tiny_config(), moved, run, device="cpu", progress=False, resume=True, stop_after=2)
    assert json.loads((run / "data.json").read_text())["data"] == str(moved.resolve())


def test_a_loss_that_goes_bad_before_the_first_checkpoint_does_not_advise_resume(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "smoke/cyclegan", "--data", str(tiny_data), "--out", str(run), "--set", "lr=1e30",
                 "--set", "load_size=20", "--set", "crop_size=16", "--set", "ngf=4", "--set", "ndf=4",
                 "--iters-per-epoch", "2", "--device", "cpu", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "No checkpoint had been written yet, so there is nothing to resume" in err and "without --resume" in err
    assert "was not overwritten" not in err and not (run / "checkpoint.pt").exists()
