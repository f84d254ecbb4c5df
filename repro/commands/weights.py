"""`repro weights get vgg16|inception|fcn8s-caffe` (repro.weights)."""

import argparse
from pathlib import Path

from repro import ReproError
from repro.commands.options import add_quiet, add_source, docstring
from repro.weights import FCN8S_OUT, KINDS, inception, vgg16


def run_get(args: argparse.Namespace) -> int:
    if args.kind == "fcn8s-caffe":  # the caffemodel is imported as a segmenter .pt, as `repro segmenter get` does
        from repro.eval import segmenter

        out = args.out or FCN8S_OUT
        segmenter.get(out, args.url, sha256=args.sha256, progress=not args.quiet)  # url default: $REPRO_FCN8S_URL, else the last known host
        print(f"wrote {out}. Next: repro segmenter calibrate --segmenter {out} --cityscapes DIR")
        return 0
    if args.out or args.sha256:
        raise ReproError(f"--out and --sha256 are for fcn8s-caffe; {args.kind} goes to the torch hub cache under its "
                         f"publisher's name and hash.")
    path = (vgg16 if args.kind == "vgg16" else inception)(args.url, progress=not args.quiet)
    print(f"{args.kind}: {path}")
    return 0


def add_commands(commands) -> None:
    group = commands.group("weights")
    p = group.add_parser("get", description=docstring("repro.weights"))
    p.add_argument("kind", choices=KINDS, help="which file: " + ", ".join(KINDS))
    p.add_argument("--out", type=Path, help="fcn8s-caffe: the segmenter .pt to write (default segmenters/fcn8s-cityscapes.pt)")
    add_source(p, url="a mirror instead of the publisher's URL (also REPRO_VGG16_URL, REPRO_INCEPTION_URL, REPRO_FCN8S_URL)",
               sha256="fcn8s-caffe: the caffemodel's expected sha256 (default: the one recorded by the first download)")
    add_quiet(p)
    p.set_defaults(func=run_get)
