"""The `repro` command: each area of the package adds its own subcommands here."""

import argparse
import importlib
import sys

from repro import ReproError, __version__

# Each module defines add_commands(subparsers); every subcommand sets `func` to the function to run.
COMMAND_MODULES = [
    "repro.train",
    "repro.translate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__)
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except ReproError as err:
        print(f"repro {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"repro {args.command}: interrupted; the last checkpoint on disk is intact.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
