"""`repro pretrained get NAME` (repro.pretrained)."""

import argparse
from pathlib import Path

from repro.commands.options import add_quiet, add_source, docstring
from repro.pretrained import ARCH, BASE_URL, DEFAULT_DIR, ENV, NAMES, get


def run_get(args: argparse.Namespace) -> int:
    path = get(args.name, args.dir, args.url, args.sha256, progress=not args.quiet)
    print(f"{args.name}: {path}\nTranslate with: repro translate --checkpoint {path} --arch {ARCH} --input DIR --out DIR")
    return 0


def add_commands(commands) -> None:
    group = commands.group("pretrained")
    p = group.add_parser("get", description=docstring("repro.pretrained"))
    p.add_argument("name", metavar="NAME", help=", ".join(NAMES))
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where NAME.pth goes (default {DEFAULT_DIR}/)")
    add_source(p, url=f"this file's URL instead of {BASE_URL}NAME.pth (a folder mirror: {ENV}=BASE_URL)")
    add_quiet(p)
    p.set_defaults(func=run_get)
