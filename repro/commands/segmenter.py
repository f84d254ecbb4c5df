"""`repro segmenter get|import-caffe|train|calibrate`: the FCN-8s evaluator (repro.eval.segmenter)."""

from pathlib import Path

from repro.commands.options import (add_batch_size, add_device, add_quiet, add_source, add_workers, docstring,
                                    positive_int, size_pair)
from repro.config import RESIZE_FILTERS
from repro.weights import FCN8S_ENV, FCN8S_OUT, FCN8S_URL


def run_get(args):
    from repro.eval.segmenter import get

    digest = get(args.out, args.url, args.caffemodel, sha256=args.sha256, progress=not args.quiet)
    print(f"wrote {args.out} (sha256 {digest}). Next: repro segmenter calibrate --segmenter {args.out} --cityscapes DIR")


def run_import(args):
    from repro.eval.segmenter import import_caffe

    digest = import_caffe(args.caffemodel, args.out)
    print(f"wrote {args.out} (sha256 {digest}). Next: repro segmenter calibrate --segmenter {args.out} --cityscapes DIR")


def run_train(args):
    from repro.eval.segmenter import train

    digest = train(args.cityscapes, args.out, args.width, args.steps, args.epochs, args.batch_size, args.optimizer,
                   args.lr, args.device, args.seed, args.label_size, args.workers)
    print(f"wrote {args.out} (sha256 {digest}). Next: repro segmenter calibrate --segmenter {args.out} --cityscapes DIR")


def run_calibrate(args):
    from repro.eval.calibration import calibration_file
    from repro.eval.segmenter import calibrate
    from repro.io import write_json

    result = calibrate(args.segmenter, args.cityscapes, args.device, args.batch_size, args.workers,
                       args.resize_filter, args.jpeg_quality, args.tf32)
    out = args.out or calibration_file(args.segmenter)
    write_json(out, result)
    m, p = result["metrics"], result["paper"]
    for key, label in (("pixel_acc", "per-pixel acc"), ("class_acc", "per-class acc"), ("iou", "class IoU")):
        print(f"{label:14s} {m[key]:.4f}   paper {p[key]:.2f}   delta {m[key] - p[key]:+.4f}   (band +-{result['band'][key]})")
    print(f"scored: {result['scored']['images']} images at {result['scored']['size']}, {result['scored']['source']}")
    print(f"comparable to the paper: {'yes' if result['comparable_to_paper'] else 'NO'} ({result['comparability']})\nwrote {out}")


def add_commands(commands) -> None:
    group = commands.group("segmenter")
    p = group.add_parser("get")
    p.add_argument("--out", type=Path, default=FCN8S_OUT, help="segmenter .pt to write")
    add_source(p, url=f"where to download the .caffemodel from (default ${FCN8S_ENV}, else {FCN8S_URL})",
               sha256="the caffemodel's expected sha256 (default: the one the first download recorded)")
    p.add_argument("--caffemodel", type=Path, help="where to keep the .caffemodel (default: next to --out)")
    add_quiet(p)
    p.set_defaults(func=run_get)

    p = group.add_parser("import-caffe")
    p.add_argument("caffemodel", type=Path, help="fcn-8s-cityscapes.caffemodel (current or legacy V1 layout)")
    p.add_argument("out", type=Path, help="segmenter .pt to write")
    p.set_defaults(func=run_import)

    p = group.add_parser("train", description=docstring("repro.eval.segmenter"))
    p.add_argument("--cityscapes", type=Path, required=True, help="Cityscapes root (gtFine/ and leftImg8bit/)")
    p.add_argument("--out", type=Path, required=True, help="segmenter .pt to write")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = VGG16; the trunk needs 1)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=positive_int, help="optimizer steps")
    steps.add_argument("--epochs", type=positive_int, help="passes over the train split (default 1)")
    add_batch_size(p, 1, "images per optimizer step")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="adam, or FCN's SGD")
    p.add_argument("--lr", type=float, help="learning rate (default: adam 1e-4, sgd 1e-10 x pixels per image)")
    p.add_argument("--label-size", type=size_pair, help="train at WxH instead of the full label resolution")
    add_device(p)
    p.add_argument("--seed", type=int, default=0, help="seed for init and data order")
    add_workers(p)
    p.set_defaults(func=run_train)

    p = group.add_parser("calibrate")
    p.add_argument("--segmenter", type=Path, required=True, help="FCN-8s .pt to calibrate")
    p.add_argument("--cityscapes", type=Path, required=True, help="Cityscapes root (gtFine/ and leftImg8bit/)")
    add_device(p)
    add_batch_size(p, 4, "frames per forward pass")
    add_workers(p)
    p.add_argument("--resize-filter", choices=sorted(RESIZE_FILTERS), default="bicubic",
                   help="filter shrinking the photos to 256 (bicubic: Pillow's default, as the dataset preparation)")
    p.add_argument("--jpeg-quality", type=int, help="pass the 256x256 photos through JPEG (prepared datasets: 100)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 convolutions on CUDA")
    p.add_argument("--out", type=Path, help="result JSON (default: SEGMENTER-stem.calibration.json next to the segmenter)")
    p.set_defaults(func=run_calibrate)
