"""Translating a folder of images with a trained generator, writing lossless PNGs.

Outputs keep the inputs' names; a Cityscapes frame (`frankfurt_000000_000294_*`) is written as
`frankfurt_000000_000294_leftImg8bit.png`, the name pix2pix's evaluator looks for. Inputs are resized
to the run's crop size (the paper's test setting loads and crops at 128), as the original test code does.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from repro import ReproError
from repro.config import load_config
from repro.data.loaders import list_images, load_image, to_model_range, to_uint8
from repro.data.frames import frame_id
from repro.networks import GENERATORS, build_generator, load_official_state_dict
from repro.device import pick_device
from repro.io import atomic_path
from repro.methods import METHODS, as_direction


def output_name(input_name: str) -> str:
    frame = frame_id(input_name)
    return f"{frame}_leftImg8bit.png" if frame else f"{Path(input_name).stem}.png"


def generator_from_run(run: Path, direction: str, device) -> tuple[torch.nn.Module, int, str]:
    """The translation net of a `repro train` run folder (any method), with its crop size and resize filter."""
    run = Path(run)
    if not (run / "config.toml").exists() or not (run / "checkpoint.pt").exists():
        raise ReproError(f"{run} is not a training run (config.toml and checkpoint.pt expected); train with `repro train`")
    cfg = load_config(str(run / "config.toml"))
    net = METHODS[cfg.method].translator(run, cfg, as_direction(direction), device)
    return net, cfg.crop_size, cfg.resize_filter


def generator_from_file(path: Path, arch: str, norm: str, device) -> torch.nn.Module:
    """A generator saved by the official port (e.g. its pretrained cityscapes_label2photo.pth), loaded strictly."""
    if arch not in GENERATORS:
        raise ReproError(f"unknown --arch {arch!r}; choose one of {GENERATORS}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ReproError(f"cannot read {path}: {err}") from None
    net = build_generator(arch, norm=norm, dropout=False)
    try:
        load_official_state_dict(net, state)
    except RuntimeError as err:
        raise ReproError(f"{path} does not match --arch {arch} (norm {norm}): {str(err).splitlines()[0]} ... "
                         f"check the architecture the file was trained with") from None
    return net.to(device)


@torch.no_grad()
def translate_folder(net: torch.nn.Module, inputs: Path, out: Path, size: int, resize_filter: str = "bicubic",
                     device="cpu", batch_size: int = 8, progress: bool = True) -> list[Path]:
    files = list_images(inputs)
    out = Path(out)
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
            path = out / name
            with atomic_path(path) as tmp:
                Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")
            written.append(path)
    return written


def run_translate(args) -> None:
    device = pick_device(args.device)
    if args.checkpoint:
        net = generator_from_file(args.checkpoint, args.arch, args.norm, device)
        size = args.size or 256
        resize_filter = "bicubic"
    else:
        if args.run is None:
            raise ReproError("give a run folder (RUN) or --checkpoint FILE.pth with --arch")
        net, crop, resize_filter = generator_from_run(args.run, args.direction, device)
        size = args.size or crop
    written = translate_folder(net, args.input, args.out, size, resize_filter, device, args.batch_size,
                               progress=not args.quiet)
    print(f"wrote {len(written)} PNGs ({size}x{size}) to {args.out}")


def add_commands(commands) -> None:
    from repro.cli import add_batch_size, add_device, add_quiet

    p = commands.add("translate")
    p.add_argument("run", nargs="?", type=Path, help="a `repro train` run folder")
    p.add_argument("--direction", default="labels2photo", help="labels2photo (= x2y, G) or photo2labels (= y2x, F)")
    p.add_argument("--checkpoint", type=Path, help="instead of RUN: a generator .pth in the official port's format")
    p.add_argument("--arch", default="resnet_9blocks", help=f"with --checkpoint: one of {', '.join(GENERATORS)}")
    p.add_argument("--norm", default="instance", help="with --checkpoint: instance (the port) or batch (pix2pix U-Nets)")
    p.add_argument("--input", required=True, type=Path, help="folder of input images")
    p.add_argument("--out", required=True, type=Path, help="output folder for the PNGs")
    p.add_argument("--size", type=int, help="resize inputs to SIZE x SIZE (default: the run's crop size; 256 with --checkpoint)")
    add_batch_size(p, 8)
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=run_translate)
