"""Writing files and folders so that a crash never leaves one that looks complete, reading torch files safely,
and hashing them.

Every file the project writes goes through `atomic_path`: the data lands in a hidden temporary file
beside the target (`.NAME.partial-PID`, a name no loader or evaluator picks up: hidden, and its suffix is
not an image's), and only a complete file is renamed over the target. Every folder is built in a
`partial_folder` beside it (`.NAME.PID.*.partial`) and renamed into place once complete (`atomic_folder`).
Every torch file is read by `load_torch_file` (tensors and plain values only: never code).
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from repro import ReproError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# torch.save reports a failed write without its errno (PytorchStreamWriter); these are its words for it
TORCH_WRITE_FAILED = ("file write failed", "unexpected pos")


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover


def free_space(folder: Path) -> int | None:
    """Bytes free to this user on the file system holding `folder` (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class DiskFull(ReproError):
    """The file system holding `folder` ran out of space (or quota). Carries the folder and the amounts so that
    a caller who knows more (the whole job's size) can re-raise it with a better estimate."""

    def __init__(self, folder: Path, writing: str, needed: int | None = None, free: int | None = None,
                 at_least: bool = False, fix: str = "Free some space there, or write to another disk, and run the "
                                                  "command again."):
        self.folder, self.writing, self.needed, self.free, self.at_least, self.fix = (
            Path(folder), writing, needed, free, at_least, fix)
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.needed is None:
            need = "the space needed is not known"
        else:
            need = f"{'more than ' if self.at_least else 'about '}{human_size(self.needed)} needed"
        free = "free space unknown" if self.free is None else f"{human_size(self.free)} free"
        return (f"the disk holding {self.folder} is full: {self.writing} failed ({need}, {free}). "
                f"Nothing partial was left behind. {self.fix}")

    def __reduce__(self):  # raised in worker processes: pickle the fields, not the message
        return (DiskFull, (self.folder, self.writing, self.needed, self.free, self.at_least, self.fix))


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err` (or an error it was raised from) means no space or quota was left."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull) or isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(err, RuntimeError) and any(words in str(err) for words in TORCH_WRITE_FAILED):
            return True
        err = err.__cause__ or err.__context__
    return False


def check_space(folder: Path, needed: int | None, writing: str) -> None:
    """Refuses before writing anything when `needed` bytes are known not to fit."""
    free = free_space(folder)
    if needed is not None and free is not None and needed > free:
        raise DiskFull(folder, writing, needed, free)


def temporary_name(path: Path) -> Path:
    """The temporary file `atomic_path` writes before renaming it to `path`."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Removes the temporary files of `atomic_path` in `folder` whose writer is dead (a kill leaves them, ~ the
    file's size each); a live process's, and any whose pid cannot be read, stay. Returns those removed."""
    removed = []
    for tmp in Path(folder).glob(".*.partial-*") if Path(folder).is_dir() else ():
        pid = tmp.name.rpartition(".partial-")[2]
        if pid.isdigit() and int(pid) > 0 and int(pid) != os.getpid() and not process_alive(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: Path, needed: int | None = None) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `path`, on any error it is removed, so the
    previous `path` (the last good checkpoint, say) stays intact. A full disk becomes one DiskFull naming the
    folder, the space needed (`needed` bytes when the caller knows it, else more than what was written) and
    the space free; with `needed` known, it is refused before anything is written."""
    path = Path(path)
    writing = f"writing {path.name}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(path.parent, f"creating {path.parent}", needed, free_space(path.parent)) from err
        raise
    check_space(path.parent, needed, writing)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        written = tmp.stat().st_size if tmp.is_file() else 0
        before = free_space(path.parent)
        tmp.unlink(missing_ok=True)
        if isinstance(err, DiskFull) or not is_disk_full(err):
            raise
        free = free_space(path.parent)
        if free is not None and before is not None and free <= before:
            free = before + written  # the writer (torch.save's) still holds the unlinked file open until it is freed
        if needed is None and written:
            needed, at_least = written, True  # it needed more than it could write
        else:
            at_least = False
        raise DiskFull(path.parent, writing, needed, free, at_least=at_least) from err


@contextlib.contextmanager
def partial_folder(out: Path):
    """A hidden `.OUT.PID.*.partial` folder beside OUT to build OUT in; the caller renames it (or a folder
    inside it) into place once complete. It is removed afterwards whatever happens. Partial folders left
    by processes that died (killed mid-way) are cleared first; those of a run still going are left alone."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.partial"):
        owner = stale.name[len(out.name) + 2:].split(".")[0]
        if not (owner.isdigit() and process_alive(int(owner))):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; the finished folder gets a new folder's mode
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; set it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A partial folder to build OUT in; once the block completes it replaces OUT (an earlier OUT is removed
    first), and on any error OUT is left as it was."""
    out = Path(out)
    with partial_folder(out) as tmp:
        yield tmp
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)


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


def listing_sha256(files) -> str:
    """One hash over the files' names and sizes, in the order given: cheap at every start, and changed by an image
    added, removed, renamed or resized (a run's training folders, a translation's inputs)."""
    return hashlib.sha256("".join(f"{Path(f).name}\t{Path(f).stat().st_size}\n" for f in files).encode()).hexdigest()


def sha256_files(paths) -> str:
    """One hash over names and contents, so the same images under the same names give the same hash."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def load_torch_file(path: Path, what: str, fix: str, map_location="cpu", mmap: bool = False):
    """torch.load(weights_only=True), on the CPU unless `map_location` says otherwise, with errors that say what is
    wrong with the file (never torch's advice to load it unsafely). Both torch formats are read: zip (torch >= 1.6)
    and the legacy pickle. `mmap` (zip files only): tensors are mapped, not read, until used (a checkpoint's
    position without its weights)."""
    import pickle
    import warnings
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise ReproError(f"{what} file {path} does not exist. {fix}")
    with open(path, "rb") as f:
        head = f.read(2)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # zip archive, or a pickle (legacy format)
        raise ReproError(f"{path} is not a torch file (neither a torch zip archive nor a legacy torch pickle): "
                         f"it was cut short, or it is another kind of file. {fix}")
    try:
        with warnings.catch_warnings():  # torch's note on unusual pickle protocols asks to file an issue
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err) or "Unsupported class" in str(err):
            raise ReproError(f"{path} is a torch file holding Python objects other than tensors and plain values; "
                             f"they are not loaded, because loading them could run code. {fix}") from None
        raise ReproError(f"{path} is a damaged torch file (its pickled data cannot be read). {fix}") from None
    except Exception as err:  # a zip cut short inside, a damaged record
        raise ReproError(f"{path} is a damaged torch file ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
                         f"{fix}") from None
