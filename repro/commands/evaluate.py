"""`repro evaluate labels2photo|photo2labels|fid` (repro.eval): score translated images."""

import argparse
from pathlib import Path

from repro.commands.options import add_batch_size, add_device, add_quiet, add_workers, docstring, positive_int
from repro.layout import scores_file
from repro.config import COLOUR_SPACES, COMPARE, PALETTES, PROTOCOLS
from repro.weights import INCEPTION


def run_fid(args: argparse.Namespace) -> int:
    from repro.device import pick_device
    from repro.eval.fid import fid_between_folders
    from repro.io import write_json

    result = fid_between_folders(args.dir_a, args.dir_b, args.weights, str(pick_device(args.device)),
                                 args.batch_size, args.kid_subsets, args.kid_subset_size, progress=not args.quiet,
                                 cache=not args.no_cache)
    m = result["metrics"]
    if not result["weights"]["published"]:
        print(f"NOT THE PUBLISHED WEIGHTS: FID and KID computed with {result['weights']['path']}, not pytorch-fid's "
              f"{INCEPTION.file_name}; not comparable with published FIDs.")
    print(f"FID {m['fid']:.3f}   KID {m['kid']:.5f} +- {m['kid_std']:.5f}   "
          f"({result['inputs']['a_images']} vs {result['inputs']['b_images']} images)")
    if args.out:
        print(f"wrote {write_json(args.out, result)}")
    return 0


def run_labels2photo(args: argparse.Namespace) -> None:
    from repro.eval.labels2photo import evaluate, print_summary
    from repro.io import write_json

    result = evaluate(args.results, args.cityscapes, args.segmenter, args.protocol, args.device,
                      args.batch_size, args.workers, args.tf32, progress=not args.quiet)
    out = args.out or scores_file(Path(args.results).resolve().parent, "labels2photo")
    write_json(out, result)
    print_summary(result)
    print(f"\nwrote {out}")


def run_photo2labels(args: argparse.Namespace) -> int:
    from repro.eval.photo2labels import evaluate, summary
    from repro.io import write_json

    result = evaluate(args.results, args.cityscapes, args.space, args.compare, args.split, args.cache_dir,
                      progress=not args.quiet, palette_kind=args.palette)
    out = Path(args.out) if args.out else scores_file(Path(args.results).resolve().parent, "photo2labels")
    write_json(out, result)
    print(summary(result))
    print(f"\nwrote {out}")
    return 0


def add_commands(commands) -> None:
    p = commands.group("evaluate").add_parser("fid", description=docstring("repro.eval.fid"))
    p.add_argument("dir_a", type=Path, metavar="DIR_A", help="a folder of images (e.g. translations)")
    p.add_argument("dir_b", type=Path, metavar="DIR_B", help="a folder of images (e.g. real photos)")
    p.add_argument("--weights", type=Path, default=None,
                   help=f"{INCEPTION.file_name} (default: the torch hub cache, TORCH_HOME/hub/checkpoints/, "
                        f"fetched there once from pytorch-fid's URL or $REPRO_INCEPTION_URL)")
    add_device(p)
    add_batch_size(p, 50)
    p.add_argument("--kid-subsets", type=positive_int, default=100, help="random subsets KID averages over")
    p.add_argument("--kid-subset-size", type=positive_int, default=1000, help="images per KID subset (at most the set size)")
    p.add_argument("--no-cache", action="store_true", help="recompute DIR_B's statistics instead of reading "
                                                           "TORCH_HOME/hub/repro-fid-stats/")
    p.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    add_quiet(p)
    p.set_defaults(func=run_fid)

    p = commands.group("evaluate").add_parser("labels2photo", description=docstring("repro.eval.labels2photo"))
    p.add_argument("--results", type=Path, required=True, help="folder of generated {city}_{seq}_{frame}_leftImg8bit.png")
    p.add_argument("--cityscapes", type=Path, required=True, help="Cityscapes root holding gtFine/val")
    p.add_argument("--segmenter", type=Path, required=True, help="FCN-8s .pt from `repro segmenter get|import-caffe|train`")
    p.add_argument("--protocol", choices=PROTOCOLS, default="pix2pix", help="headline protocol (both are written)")
    add_device(p)
    add_batch_size(p, 4, "frames per forward pass (same-size frames only)")
    add_workers(p)
    add_quiet(p)
    p.add_argument("--tf32", action="store_true", help="allow TF32 convolutions on CUDA (faster, not Caffe's float32)")
    p.add_argument("--out", type=Path, help="result JSON (default: RESULTS/../labels2photo.json)")
    p.set_defaults(func=run_labels2photo)

    p = commands.group("evaluate").add_parser("photo2labels", description=docstring("repro.eval.photo2labels"))
    p.add_argument("--results", type=Path, required=True, help="folder of generated label maps named {city}_{seq}_{frame}_*.png")
    p.add_argument("--cityscapes", type=Path, required=True, help="extracted Cityscapes root (holding gtFine/)")
    p.add_argument("--space", choices=COLOUR_SPACES, default="rgb", help="colour distance (rgb: the authors' advice)")
    p.add_argument("--compare", choices=COMPARE, default="full",
                   help="full: upsample the class map to the full-resolution labels; "
                        "generated: downsample the labels to the generated size")
    p.add_argument("--palette", choices=PALETTES, default="full",
                   help="full: every Cityscapes colour, void colours predict void (counted as wrong); "
                        "train: the 19 class colours only, every pixel snaps to a class")
    p.add_argument("--split", default="val", help="ground-truth split")
    p.add_argument("--cache-dir", type=Path, default=None, help="keep the 16 MiB colour lookup table here between runs")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default: RESULTS/../photo2labels.json)")
    add_quiet(p)
    p.set_defaults(func=run_photo2labels)
