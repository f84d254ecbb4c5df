"""The `repro data` commands: `get` (Berkeley archives), `cityscapes` (prepare the official packages),
`synth-city` (a small synthetic Cityscapes for tests and smoke runs)."""

import argparse
from pathlib import Path

from tabulate import tabulate

from repro import ReproError
from repro.commands.options import add_quiet, add_source, size_pair


def add_commands(commands) -> None:
    data = commands.group("data")

    p = data.add_parser("get")
    p.add_argument("name", nargs="?", help="dataset name, e.g. horse2zebra or pix2pix_facades (--list shows all)")
    p.add_argument("--root", type=Path, default=Path("datasets"), help="folder that receives ROOT/NAME")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="import an archive obtained elsewhere (e.g. the retired cityscapes.zip); its hash is verified")
    add_source(p, url="download from this URL instead of the registry's hosts (a mirror)",
               sha256="verify against this hash instead of the published one (only for a file you trust)")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive in ROOT/.downloads")
    p.add_argument("--list", action="store_true", help="list the registry and exit")
    add_quiet(p)
    p.set_defaults(func=run_get)

    p = data.add_parser("cityscapes")
    p.add_argument("--gtfine", type=Path, help="gtFine_trainvaltest.zip, or its extracted folder")
    p.add_argument("--leftimg", type=Path, help="leftImg8bit_trainvaltest.zip, or its extracted folder")
    p.add_argument("--out", type=Path, required=True, help="output folder: trainA, trainB, testA, testB, manifest.json")
    p.add_argument("--size", type=int, choices=(128, 256), default=256,
                   help="square output size (256 as the official script; the paper trained at 128)")
    p.add_argument("--format", dest="fmt", choices=("png", "jpg"), default="png",
                   help="png (lossless) or jpg (JPEG quality 100, 4:4:4: the official files)")
    p.add_argument("--resize-filter", default="bicubic", metavar="FILTER",
                   help="resize filter: nearest, box, bilinear, hamming, bicubic, lanczos (bicubic is "
                        "Pillow's Image.resize default that the official script relied on)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--download", action="store_true",
                   help="first download the two official zips with cityscapesscripts' csDownload (needs an account)")
    p.add_argument("--packages", type=Path, default=Path("datasets/cityscapes_packages"),
                   help="where --download puts the zips")
    add_quiet(p)
    p.set_defaults(func=run_cityscapes)

    p = data.add_parser("synth-city")
    p.add_argument("--out", type=Path, required=True, help="output folder (gtFine/, leftImg8bit/)")
    p.add_argument("--train", type=int, default=None, help="number of train frames (default 200)")
    p.add_argument("--val", type=int, default=None, help="number of val frames (default 50)")
    p.add_argument("--size", type=size_pair, default=None, metavar="WxH",
                   help="frame size (default 256x128; the real one is 2048x1024)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--zips", action="store_true", help="also write gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip")
    add_quiet(p)
    p.set_defaults(func=run_synth_city)


def run_get(args: argparse.Namespace) -> int:
    from repro.data import download, registry

    if args.list:
        rows = [
            (e.name, e.kind, f"{e.size_bytes / 2**20:,.0f} MiB" if e.size_bytes else "?",
             "yes" if e.sha256 else "no", e.url or "not served (licence): --from only")
            for e in registry.load().values()
        ]
        print(tabulate(rows, headers=["name", "kind", "size", "sha256", "url"]))
        return 0
    if not args.name:
        raise ReproError("give a dataset NAME (`repro data get --list` shows them).")
    folder = download.get(args.name, args.root, url=args.url, from_file=args.from_file,
                          sha256=args.sha256, keep_archive=args.keep_archive, progress=not args.quiet)
    print(folder)
    return 0


def run_cityscapes(args: argparse.Namespace) -> int:
    from repro.data import cityscapes

    gtfine, leftimg = args.gtfine, args.leftimg
    if args.download:
        gtfine_zip, leftimg_zip = cityscapes.download_packages(args.packages)
        gtfine, leftimg = gtfine or gtfine_zip, leftimg or leftimg_zip
    if gtfine is None or leftimg is None:
        raise ReproError(
            "give both --gtfine and --leftimg (the official gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, "
            "or their extracted folders), or --download to fetch them with your Cityscapes account."
        )
    out = cityscapes.prepare(gtfine, leftimg, args.out, size=args.size, fmt=args.fmt, workers=args.workers,
                             resample=cityscapes.resample_filter(args.resize_filter), progress=not args.quiet)
    print(out)
    return 0


def run_synth_city(args: argparse.Namespace) -> int:
    from repro.data import synth_city

    kwargs = {}
    if args.train is not None:
        kwargs["n_train"] = args.train
    if args.val is not None:
        kwargs["n_val"] = args.val
    if args.size is not None:
        kwargs["size"] = args.size
    out = synth_city.generate(args.out, seed=args.seed, zips=args.zips, progress=not args.quiet, **kwargs)
    print(out)
    return 0
