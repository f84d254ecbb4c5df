"""`repro translate`: a folder of images through a trained run's generator, or through an official .pth."""

from pathlib import Path

from repro import ReproError
from repro.commands.options import add_batch_size, add_device, add_quiet, positive_int
from repro.config import DROPOUT, GENERATORS, NORMS


def run_translate(args) -> None:
    from repro.checkpoint import run_config
    from repro.config import generator_size_problem, size_problem
    from repro.device import pick_device
    from repro.methods import as_direction
    from repro.translate import generator_from_file, generator_from_run, translate_folder

    device = pick_device(args.device)
    if args.checkpoint and args.run is not None:
        raise ReproError(f"give a run folder ({args.run}) or --checkpoint {args.checkpoint}, not both: the generator "
                         f"would come from one and the other would be ignored.")
    if args.checkpoint:
        net = generator_from_file(args.checkpoint, args.arch, args.norm, device, "eval" if args.eval else "train",
                                  args.dropout, args.seed, args.ngf)
        size = args.size or 256
        resize_filter = "bicubic"
        direction, source = (as_direction(args.direction) if args.direction else None), str(args.checkpoint)
        problem = generator_size_problem(args.arch, size)
    else:
        if args.run is None:
            raise ReproError("give a run folder (RUN) or --checkpoint FILE.pth with --arch")
        direction, source = as_direction(args.direction or "labels2photo"), str(args.run)
        net, crop, resize_filter = generator_from_run(args.run, direction, device)
        size = args.size or crop
        problem = size_problem(run_config(args.run), size)
    if problem:
        raise ReproError(f"--size {size} does not fit the generator: {problem}. Give another --size "
                         f"(or leave it out: the run's crop size, 256 with --checkpoint).")
    written = translate_folder(net, args.input, args.out, size, resize_filter, device, args.batch_size,
                               progress=not args.quiet, direction=direction, source=source)
    print(f"wrote {len(written)} PNGs ({size}x{size}) to {args.out}")


def add_commands(commands) -> None:
    p = commands.add("translate")
    p.add_argument("run", nargs="?", type=Path, help="a `repro train` run folder")
    p.add_argument("--direction", help="labels2photo (= x2y, G; the default for RUN) or photo2labels (= y2x, F); with "
                                        "--checkpoint, what the file translates (recorded in OUT/translation.json for "
                                        "the evaluators)")
    p.add_argument("--checkpoint", type=Path, help="instead of RUN: a generator .pth in the official port's format")
    p.add_argument("--arch", default="resnet_9blocks", choices=GENERATORS, help="with --checkpoint: the generator")
    p.add_argument("--norm", default="instance", choices=NORMS,
                   help="with --checkpoint: instance (the port's CycleGAN), batch (pix2pix U-Nets), instance_affine "
                        "(the Lua code's learned scale and shift) or none")
    p.add_argument("--ngf", type=positive_int, default=64, help="with --checkpoint: generator width (the port's --ngf, default 64)")
    p.add_argument("--eval", action="store_true",
                   help="with --checkpoint: run the net in eval mode (the port's test.py --eval: batch norm's running "
                        "statistics, no dropout). Default, as the port's test.py: train mode, one image at a time")
    p.add_argument("--dropout", default="auto", choices=DROPOUT,
                   help="with --checkpoint: dropout layers in the generator (auto: U-Nets yes, as the port's default; "
                        "ResNets no, as CycleGAN trains them); active only in train mode")
    p.add_argument("--seed", type=int, default=0, help="with --checkpoint in train mode: seed of each image's dropout masks")
    p.add_argument("--input", required=True, type=Path, help="folder of input images")
    p.add_argument("--out", required=True, type=Path, help="output folder for the PNGs")
    p.add_argument("--size", type=positive_int, help="resize inputs to SIZE x SIZE (default: the run's crop size; 256 with --checkpoint)")
    add_batch_size(p, 8)
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=run_translate)
