"""Building a folder so that a crash never leaves a half-made one that looks complete."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def partial_folder(out: Path):
    """A hidden `.OUT.PID.*.partial` folder beside OUT to build OUT in; the caller renames it (or a folder
    inside it) into place once complete. It is removed afterwards whatever happens. Partial folders left
    by processes that died (killed mid-way) are cleared first; those of a run still going are left alone."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.partial"):
        owner = stale.name[len(out.name) + 2:].split(".")[0]
        if not (owner.isdigit() and _alive(int(owner))):
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
