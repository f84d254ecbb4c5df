"""Writing files so that a crash never leaves one that looks complete, and hashing them.

Every file the project writes goes through `atomic_path`: the data lands in a hidden temporary file
beside the target (`.NAME.partial-PID`, a name no loader or evaluator picks up: hidden, and its suffix is
not an image's), and only a complete file is renamed over the target.
"""

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm


def temporary_name(path: Path) -> Path:
    """The temporary file `atomic_path` writes before renaming it to `path`."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: Path, data, indent: int = 2) -> Path:
    """JSON, atomically: a crash never leaves a truncated result that looks complete."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def read_json_or_empty(path: Path) -> dict:
    """A marker or manifest file; a damaged or missing one reads as empty (so nothing is taken as complete)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def sha256_file(path: Path, progress: bool = False) -> str:
    """The project's one file hasher."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=f"sha256 {path.name}", disable=not progress, file=sys.stderr, leave=False,
    ) as bar:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def sha256_files(paths) -> str:
    """One hash over names and contents, so the same images under the same names give the same hash."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()
