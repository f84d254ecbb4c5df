"""Translating a folder of images with a trained generator, writing lossless PNGs.

Outputs keep the inputs' names; a Cityscapes frame (`frankfurt_000000_000294_*`) is written as
`frankfurt_000000_000294_leftImg8bit.png`, the name pix2pix's evaluator looks for. Inputs are resized
to the run's crop size (the paper's test setting loads and crops at 128), as the original test code does.
"""

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from repro import ReproError, translations
from repro.checkpoint import run_config
from repro.data.loaders import list_images, load_image, to_model_range, to_uint8
from repro.data.frames import frame_id
from repro.config import DROPOUT, GENERATORS, NORMS
from repro.networks import TestTimeGenerator, build_generator, load_official_state_dict
from repro.io import DiskFull, atomic_path, load_torch_file
from repro.methods import METHODS, as_direction


def output_name(input_name: str) -> str:
    frame = frame_id(input_name)
    return f"{frame}_leftImg8bit.png" if frame else f"{Path(input_name).stem}.png"


def generator_from_run(run: Path, direction: str, device) -> tuple[torch.nn.Module, int, str]:
    """The translation net of a `repro train` run folder (any method), with its crop size and resize filter."""
    run = Path(run)
    if not (run / "config.toml").exists() or not (run / "checkpoint.pt").exists():
        raise ReproError(f"{run} is not a training run (config.toml and checkpoint.pt expected); train with `repro train`")
    cfg = run_config(run)
    net = METHODS[cfg.method].translator(run, cfg, as_direction(direction), device)
    return net, cfg.crop_size, cfg.resize_filter


def generator_from_file(path: Path, arch: str, norm: str, device, mode: str = "train", dropout: str = "auto",
                        seed: int = 0, ngf: int = 64) -> torch.nn.Module:
    """A generator saved by the official port (e.g. its pretrained cityscapes_label2photo.pth), loaded strictly and
    run as the port's test.py runs it: `mode` "train" is its default, "eval" its --eval (see TestTimeGenerator).
    `dropout` "auto" gives U-Nets dropout (the port's default, pix2pix trains with it) and ResNets none (CycleGAN
    trains without; the port needs --no_dropout to load them)."""
    if arch not in GENERATORS:
        raise ReproError(f"unknown --arch {arch!r}; choose one of {', '.join(GENERATORS)}")
    if norm not in NORMS:
        raise ReproError(f"unknown --norm {norm!r}; choose one of {', '.join(NORMS)}")
    if dropout not in DROPOUT:
        raise ReproError(f"unknown --dropout {dropout!r}; choose one of {', '.join(DROPOUT)}")
    if ngf < 1:
        raise ReproError(f"--ngf {ngf}: give the generator's width the file was trained with (the port's default: 64)")
    if mode not in TestTimeGenerator.MODES:
        raise ReproError(f"unknown test mode {mode!r}; choose one of {', '.join(TestTimeGenerator.MODES)}")
    with_dropout = dropout == "on" or (dropout == "auto" and arch.startswith("unet_"))
    state = load_torch_file(path, "generator", "Give a generator .pth saved by the official port (or a run's G_x2y.pth).")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReproError(f"{path} is a torch file but not a state_dict (a dict of tensors); give a generator .pth "
                         f"saved by the official port (or a run's G_x2y.pth / F_y2x.pth).")
    net = build_generator(arch, ngf=ngf, norm=norm, dropout=with_dropout)
    try:
        load_official_state_dict(net, state)
    except RuntimeError as err:  # torch lists the missing / unexpected keys and wrong shapes after its first line
        detail = "; ".join(line.strip()[:200] for line in str(err).splitlines()[1:3] if line.strip())
        raise ReproError(f"{path} does not match --arch {arch} --ngf {ngf} --norm {norm} --dropout "
                         f"{'on' if with_dropout else 'off'} ({detail}). Give the architecture, width, norm and dropout "
                         f"the file was trained with.") from None
    return TestTimeGenerator(net, mode, seed).to(device)


@torch.no_grad()
def translate_folder(net: torch.nn.Module, inputs: Path, out: Path, size: int, resize_filter: str = "bicubic",
                     device="cpu", batch_size: int = 8, progress: bool = True, direction: str | None = None,
                     source: str = "", made_from: dict | None = None) -> list[Path]:
    """Every image of `inputs` through `net` into `out` as PNGs, then OUT/translation.json recording `direction`
    (labels2photo / photo2labels / x2y / y2x, or None when not known) and `source` for the evaluators, and
    `made_from` (the key of the inputs, repro.done)."""
    out, target, source_dir = Path(out), Path(out).resolve(), Path(inputs).resolve()
    if target == source_dir or source_dir in target.parents or target in source_dir.parents:
        where = "the input folder" if target == source_dir else "inside the input folder" if source_dir in target.parents \
            else "a folder holding the input folder"
        raise ReproError(f"--out {out} is {where} {inputs}: the translations would overwrite or mix with the inputs. "
                         f"Choose an --out folder apart from --input.")
    files = list_images(inputs)
    out.mkdir(parents=True, exist_ok=True)
    names = [output_name(f.name) for f in files]
    if len(set(names)) != len(names):
        raise ReproError(f"two inputs in {inputs} map to the same output name; rename them")
    net.eval()
    written = []
    for start in tqdm(range(0, len(files), batch_size), desc="translate", unit="batch", disable=not progress):
        chunk = files[start:start + batch_size]
        batch = torch.stack([load_image(f, size, resize_filter) for f in chunk]).to(device)
        result = to_uint8(net(to_model_range(batch))).permute(0, 2, 3, 1).cpu().numpy()
        for image, name in zip(result, names[start:start + batch_size]):
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
            try:
                with atomic_path(out / name, needed=buffer.tell()) as tmp:
                    tmp.write_bytes(buffer.getvalue())
            except DiskFull as err:  # say what the whole folder still needs: this PNG's size per image left
                done = len(written)
                raise DiskFull(err.folder, f"writing {name} (image {done + 1} of {len(files)})",
                               buffer.tell() * (len(files) - done), err.free,
                               fix=f"The {done} PNGs already in {out} are complete. Free some space there (or choose "
                                   f"another --out) and run the same command again.") from err
            written.append(out / name)
    translations.record(out, direction, source, made_from)
    return written
