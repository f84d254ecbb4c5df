"""The options several commands share, each defined once: its flag, type, default and help.

Light on purpose (argparse only): every command module imports this to build its --help, and --help must not
wait for torch.
"""

import argparse
import re
from pathlib import Path

DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_name(text: str) -> str:
    if not DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: choose auto, cpu, cuda or cuda:N")
    return text


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=device_name, default="auto",
                   help="auto (CUDA when torch sees it, else the CPU), cpu, cuda or cuda:N")


def add_batch_size(p: argparse.ArgumentParser, default: int, what: str = "images per forward pass") -> None:
    p.add_argument("--batch-size", type=positive_int, default=default, help=what)


def add_workers(p: argparse.ArgumentParser, default_text: str = "0 on the CPU, 4 on CUDA") -> None:
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help=f"image-loading processes (default: {default_text})")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def size_pair(text: str) -> tuple[int, int]:
    """'256x128' -> (256, 128)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 256x128") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be at least 1")
    return w, h


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def add_set(p: argparse.ArgumentParser, scope: str = "", recorded: str = "the run's config.toml") -> None:
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help=f"override a config field{scope} (repeatable; TOML values, e.g. --set lambda_identity=0.5); "
                        f"recorded in {recorded}")


def add_iters_per_epoch(p: argparse.ArgumentParser, default_text: str) -> None:
    p.add_argument("--iters-per-epoch", type=positive_int, help=f"iterations per epoch (default: {default_text})")


FIRST_USE_SHA256 = "the file's expected sha256 (default: the one the first download recorded)"


def add_source(p: argparse.ArgumentParser, url: str, sha256: str = FIRST_USE_SHA256) -> None:
    """--url (a mirror or another host) and --sha256 (the hash to hold the download to) of a download command."""
    p.add_argument("--url", help=url)
    p.add_argument("--sha256", help=sha256)


def docstring(module: str) -> str:
    """A module's docstring, read from its source without importing it (a command's --help shows the library
    module's own description, without loading torch)."""
    import ast
    import importlib.util

    return ast.get_docstring(ast.parse(Path(importlib.util.find_spec(module).origin).read_text())) or ""
