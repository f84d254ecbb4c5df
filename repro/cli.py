"""The `repro` command: download and prepare data, train, translate, evaluate, reproduce whole tables.

The command tree is listed here, with a one-line description per command, so `repro --help` imports nothing
heavy. The module that runs a command is imported only when that command runs (or its own --help is asked
for); it fills in its arguments with `add_commands(commands)`. Exit status: 0 done, 1 a problem the message
explains (a wrong file, a missing prerequisite), 2 a usage error, 130 interrupted.
"""

import argparse
import importlib
import os
import sys

from repro import ReproError, __version__

# command (group and name) -> (module that defines it, one-line description)
COMMANDS = {
    "data get": ("repro.commands.data", "download (or import with --from), verify and extract a Berkeley dataset"),
    "data cityscapes": ("repro.commands.data", "build the CycleGAN Cityscapes layout from the official packages"),
    "data synth-city": ("repro.commands.data", "write a small synthetic Cityscapes (real palette and layout) for smoke runs"),
    "train": ("repro.commands.train", "train a config: CycleGAN, an ablation or a Table 2/3 baseline (resumable)"),
    "translate": ("repro.commands.translate", "translate a folder of images with a trained run or an official .pth"),
    "segmenter get": ("repro.commands.segmenter", "download the pix2pix authors' FCN-8s Caffe weights and import them"),
    "segmenter import-caffe": ("repro.commands.segmenter", "import fcn-8s-cityscapes.caffemodel (current or V1 layout)"),
    "segmenter train": ("repro.commands.segmenter", "train an FCN-8s on Cityscapes when the Caffe weights cannot be had"),
    "segmenter calibrate": ("repro.commands.segmenter", "score real val photos at 256x256 against the paper's ground-truth row"),
    "evaluate labels2photo": ("repro.commands.evaluate", "Tables 2/4: FCN-score of generated photos (pix2pix protocol)"),
    "evaluate photo2labels": ("repro.commands.evaluate", "Tables 3/5: generated label maps by nearest palette colour"),
    "evaluate fid": ("repro.commands.evaluate", "FID and KID between two image folders (pytorch-fid Inception)"),
    "weights get": ("repro.commands.weights", "fetch VGG16, pytorch-fid's Inception or the FCN-8s caffemodel from their publishers"),
    "pretrained get": ("repro.commands.pretrained", "fetch a CycleGAN generator the official PyTorch port published"),
    "reproduce": ("repro.commands.reproduce", "train, translate and score every row of a table, then write the report"),
    "report": ("repro.commands.report", "write OUT/report.md and report.html from a `repro reproduce` folder"),
    "check": ("repro.commands.check", "check reproduced cells against accepted ranges (exit 1 if any is outside)"),
}
ALIASES = {"fid": "evaluate fid"}  # older spelling, kept working
GROUPS = {
    "data": "download, import and prepare datasets",
    "segmenter": "get, import, train and calibrate the FCN-8s evaluator",
    "evaluate": "score translated images against Cityscapes ground truth (and FID)",
    "weights": "fetch the evaluators' and Feature loss's weights from their publishers into the torch cache",
    "pretrained": "fetch the official PyTorch port's published CycleGAN generators",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each flag's help (as pytorch-fid does), except empty ones (None, False: the help
    says what happens then); descriptions keep their line breaks."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# ------------------------------------------------------------------------------ the parser


class _Both:
    """One parser configured twice: a command and its alias get the same arguments."""

    def __init__(self, *parsers):
        self.parsers = parsers

    def __getattr__(self, name):
        def call(*args, **kwargs):
            results = [getattr(p, name)(*args, **kwargs) for p in self.parsers]
            return results[0]
        return call


class Commands:
    """What a command module (repro/commands/) sees: `add(name)` for a top-level command, `group(name).add_parser(name)`
    inside a group. Both return the parser made for the command tree, whose one-line help is COMMANDS'; a
    `description` given here replaces the tree's for the command's own --help (a longer text)."""

    def __init__(self, parsers: dict[str, argparse.ArgumentParser]):
        self.parsers = parsers

    def add(self, name: str, description: str | None = None):
        return self._parser(name, description)

    def group(self, name: str):
        commands = self

        class Group:
            def add_parser(self, sub: str, description: str | None = None):
                return commands._parser(f"{name} {sub}", description)

        return Group()

    def _parser(self, path: str, description: str | None):
        if path not in COMMANDS:
            raise KeyError(f"{path!r} is not in repro.cli.COMMANDS: add it there with its module and description")
        parsers = [self.parsers[path], *(self.parsers[a] for a, target in ALIASES.items() if target == path)]
        if description is not None:
            for parser in parsers:
                parser.description = description
        return _Both(*parsers) if len(parsers) > 1 else parsers[0]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command tree; the module of the command named in argv (if any) fills in its arguments."""
    parser = argparse.ArgumentParser(prog="repro", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    top = parser.add_subparsers(dest="repro_command", required=True, metavar="COMMAND")
    groups, parsers = {}, {}
    for path, (_, description) in COMMANDS.items():
        group, _, name = path.rpartition(" ")
        if group:
            if group not in groups:
                g = top.add_parser(group, help=GROUPS[group], description=GROUPS[group], formatter_class=HelpFormatter)
                groups[group] = g.add_subparsers(dest=f"{group}_command", required=True, metavar="COMMAND")
            where = groups[group]
        else:
            where = top
        parsers[path] = where.add_parser(name, help=description, description=description, formatter_class=HelpFormatter)
    for alias, target in ALIASES.items():
        parsers[alias] = top.add_parser(alias, help=f"the same as `repro {target}`",
                                        description=COMMANDS[target][1], formatter_class=HelpFormatter)
    chosen = chosen_command(argv if argv is not None else sys.argv[1:])
    if chosen is not None:
        importlib.import_module(COMMANDS[ALIASES.get(chosen, chosen)][0]).add_commands(Commands(parsers))
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command path named by the first words of argv ("train", "data get", "fid"), or None."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not words:
        return None
    if words[0] in GROUPS:
        path = " ".join(words)
        return path if path in COMMANDS else None
    return words[0] if words[0] in COMMANDS or words[0] in ALIASES else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except BrokenPipeError:  # `repro --help | head`
        return broken_pipe()
    command = chosen_command(argv)
    try:
        result = args.func(args)
    except BrokenPipeError:  # `repro data get --list | head`: the reader has gone, as Unix tools take it
        return broken_pipe()
    except ReproError as err:
        print(f"repro {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"repro {command}: interrupted; files already written are complete.", file=sys.stderr)
        return 130
    return int(result or 0)


def broken_pipe() -> int:
    """The reader of stdout closed the pipe: stop quietly with 128 + SIGPIPE, as `yes | head` does. stdout
    goes to /dev/null first, so Python's final flush raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
