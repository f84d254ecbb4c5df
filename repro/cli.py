"""The `repro` command. Each area of the package registers its own subcommands here."""

import argparse
import importlib
import sys

from repro import ReproError, __version__

# Each module defines add_commands(commands: Commands); every leaf parser sets `func` (args -> int|None).
COMMAND_MODULES = [
    "repro.train",
    "repro.translate",
    "repro.data.cli",
    "repro.eval.segmenter",
    "repro.eval.labels2photo",
    "repro.eval.photo2labels",
    "repro.eval.fid",
    "repro.weights",
    "repro.pretrained",
    "repro.reproduce",
    "repro.report",
    "repro.check",
]

GROUP_HELP = {
    "data": "download, import and prepare datasets",
    "evaluate": "score translated images against Cityscapes ground truth",
    "segmenter": "get, import, train and calibrate the FCN-8s evaluator",
    "weights": "fetch VGG16, pytorch-fid's Inception and the FCN-8s caffemodel from their publishers",
    "pretrained": "fetch the official PyTorch port's published CycleGAN generators",
}


class Commands:
    """Where modules add subcommands: top level with `add`, or inside a group such as
    `repro data ...` with `group("data").add_parser(...)`, so several modules can share a group."""

    def __init__(self, subparsers):
        self.subparsers = subparsers
        self.groups = {}

    def add(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.subparsers.add_parser(name, **kwargs)

    def group(self, name: str):
        if name not in self.groups:
            parser = self.subparsers.add_parser(name, help=GROUP_HELP.get(name, ""))
            self.groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
        return self.groups[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description=__doc__)
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except ReproError as err:
        print(f"repro {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"repro {args.command}: interrupted; files already written are complete.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
