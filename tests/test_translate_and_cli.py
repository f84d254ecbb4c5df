"""translate (from a run and from an official-format .pth), configs, and the CLI's error handling."""

import numpy as np
import pytest
import torch
from PIL import Image

from repro import ReproError
from repro.cli import main
from repro.config import config_to_toml, load_config, make_config
from repro.networks import build_generator, init_weights
from repro.translate import output_name
from tests.conftest import tiny_config


def test_output_names_keep_cityscapes_frames():
    assert output_name("frankfurt_000000_000294_gtFine_color.png") == "frankfurt_000000_000294_leftImg8bit.png"
    assert output_name("frankfurt_000000_000294_leftImg8bit.jpg") == "frankfurt_000000_000294_leftImg8bit.png"
    assert output_name("n02381460_1000.jpg") == "n02381460_1000.png"


def test_train_and_translate_from_the_command_line(tiny_data, tmp_path, capsys):
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text(config_to_toml(tiny_config()))
    run = tmp_path / "run"
    assert main(["train", str(cfg_file), "--data", str(tiny_data), "--out", str(run), "--device", "cpu"]) == 0
    assert main(["train", str(cfg_file), "--data", str(tiny_data), "--out", str(run), "--device", "cpu"]) == 1
    assert "--resume" in capsys.readouterr().err
    out = tmp_path / "fake_photos"
    assert main(["translate", str(run), "--direction", "labels2photo", "--input", str(tiny_data / "testB"),
                 "--out", str(out), "--device", "cpu"]) == 0
    files = sorted(p.name for p in out.iterdir() if p.name != "translation.json")  # the direction, for the evaluators
    assert files == [f"aachen_000000_{i:06d}_leftImg8bit.png" for i in range(3)]
    image = Image.open(out / files[0])
    assert image.mode == "RGB" and image.size == (16, 16)


def test_translate_with_an_official_format_generator(tmp_path):
    net = init_weights(build_generator("resnet_6blocks", norm="instance"))
    state = net.state_dict() | {"model.2.running_mean": torch.zeros(64), "model.2.running_var": torch.ones(64)}
    torch.save(state, tmp_path / "latest_net_G.pth")
    (tmp_path / "in").mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in/a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "in/b.png")  # grayscale input is converted
    assert main(["translate", "--checkpoint", str(tmp_path / "latest_net_G.pth"), "--arch", "resnet_6blocks",
                 "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--size", "32", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "translation.json"]
    with torch.no_grad():
        x = torch.from_numpy(np.array(Image.fromarray(rgb).resize((32, 32), Image.BICUBIC))).permute(2, 0, 1)[None]
        expected = ((net.eval()(x.float() / 127.5 - 1).clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)[0].permute(1, 2, 0)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out/a.png")), expected.numpy())
    # A file of another architecture is refused with the file named.
    assert main(["translate", "--checkpoint", str(tmp_path / "latest_net_G.pth"), "--arch", "resnet_9blocks",
                 "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out2"), "--device", "cpu"]) == 1


def test_unreadable_and_16_bit_images_are_refused_with_the_file_named(tmp_path):
    from repro.data.loaders import load_image
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ReproError, match="broken.png"):
        load_image(tmp_path / "broken.png")
    Image.fromarray(np.full((4, 4), 4000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ReproError, match="deep.png.*16-bit"):
        load_image(tmp_path / "deep.png")
    Image.fromarray(np.full((4, 4, 4), 200, dtype=np.uint8)).save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "rgba.png").shape == (3, 4, 4)


def test_profiles_choose_only_defaults():
    paper, port = make_config("paper"), make_config("pytorch")
    assert (paper.load_size, paper.crop_size, paper.generator, paper.norm, paper.d_padding, paper.lambda_identity,
            paper.lr_rule, paper.update_order, paper.zero_conv_bias) == (
        143, 128, "resnet_6blocks", "instance_affine", 2, 0.0, "lua", "sequential", True)
    assert (port.load_size, port.crop_size, port.generator, port.norm, port.d_padding, port.lambda_identity,
            port.lr_rule, port.update_order, port.zero_conv_bias) == (
        286, 256, "resnet_9blocks", "instance", 1, 0.5, "pytorch", "joint", False)
    assert make_config("pytorch", lambda_identity=0.0).lambda_identity == 0.0
    for cfg in (paper, port):  # shared paper facts
        assert (cfg.lr, cfg.beta1, cfg.pool_size, cfg.lambda_forward, cfg.lambda_backward, cfg.epochs_constant,
                cfg.epochs_decay, cfg.batch_size, cfg.gan_loss) == (0.0002, 0.5, 50, 10.0, 10.0, 100, 100, 1, "lsgan")


def test_shipped_configs_load_and_bad_ones_are_explained(tmp_path):
    assert load_config("cityscapes/cyclegan").name == "cyclegan"
    assert load_config("horse2zebra").generator == "resnet_9blocks"
    (tmp_path / "bad.toml").write_text('profile = "paper"\nlamda_gan = 1.0\n')
    with pytest.raises(ReproError, match="bad.toml.*lamda_gan"):
        load_config(str(tmp_path / "bad.toml"))
    (tmp_path / "bad2.toml").write_text('norm = "group"\n')
    with pytest.raises(ReproError, match="norm"):
        load_config(str(tmp_path / "bad2.toml"))
    with pytest.raises(ReproError, match="cityscapes/cyclegan"):
        load_config("no_such_config")
    # A config written out reads back to the same values.
    (tmp_path / "round.toml").write_text(config_to_toml(tiny_config()))
    assert load_config(str(tmp_path / "round.toml")) == tiny_config()


def test_exit_status_separates_usage_errors_from_problems(tmp_path, capsys):
    """2: the command line itself is wrong (argparse); 1: a ReproError (a file, a prerequisite)."""
    with pytest.raises(SystemExit) as usage:
        main(["train", "smoke/cyclegan", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--device", "gpu"])
    assert usage.value.code == 2 and "choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert main(["train", "no/such/config", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "no config file" in capsys.readouterr().err


def test_set_overrides_any_field_type_checked_and_recorded(tiny_data, tmp_path, capsys):
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text("name = 'tiny'\nload_size = 20\ncrop_size = 16\nngf = 4\nndf = 4\nepochs_constant = 1\n"
                        "epochs_decay = 0\niters_per_epoch = 2\npool_size = 2\n")
    run = tmp_path / "run"
    assert main(["train", str(cfg_file), "--data", str(tiny_data), "--out", str(run), "--device", "cpu", "--quiet",
                 "--set", "lambda_identity=0.5", "--set", "update_order=joint", "--set", "flip=false"]) == 0
    saved = load_config(str(run / "config.toml"))
    assert (saved.lambda_identity, saved.update_order, saved.flip) == (0.5, "joint", False)
    for bad, message in (("ngf=true", "ngf takes a int"), ("no_such_field=1", "FIELD=VALUE"),
                         ("update_order=diagonal", "update_order")):
        assert main(["train", str(cfg_file), "--data", str(tiny_data), "--out", str(tmp_path / "other"),
                     "--set", bad]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "other" / "checkpoint.pt").exists()


def test_a_closed_pipe_ends_quietly_as_unix_tools_do(tmp_path):
    """`repro data get --list | head`: the reader leaves before the listing is written; no traceback, and
    the status of a process stopped by SIGPIPE (128 + 13), as `yes | head` gives."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "repro.cli", "data", "get", "--list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp_path)
    child.stdout.close()  # before the child has imported anything, let alone printed
    err = child.stderr.read().decode()
    assert child.wait() == 141 and "Traceback" not in err and "BrokenPipeError" not in err


def test_help_imports_no_command_module():
    """`repro --help` builds the command tree without importing torch or any command's module."""
    import subprocess
    import sys

    code = ("import sys; from repro import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('repro.', 'pandas', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['repro.cli']"


def test_every_command_has_a_description_and_every_flag_a_help():
    """Each command's parser (its module imported as when it runs) documents every argument."""
    import argparse

    from repro.cli import COMMANDS, build_parser

    for path in COMMANDS:
        parser = build_parser(path.split())
        for word in path.split():
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[word]
        assert parser.description, path
        undocumented = [a.dest for a in parser._actions if not a.help and a.dest != "help"]
        assert undocumented == [], (path, undocumented)
