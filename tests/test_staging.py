"""partial_folder: a crash leaves nothing that looks complete, and a second run never deletes the
folder a run still going is building."""

import os
import subprocess
import sys

import pytest

from repro.io import atomic_folder, partial_folder


def test_error_inside_leaves_nothing(tmp_path):
    out = tmp_path / "data"
    with pytest.raises(RuntimeError):
        with partial_folder(out) as tmp:
            (tmp / "half.png").write_bytes(b"x")
            raise RuntimeError("killed half way")
    assert not out.exists() and not list(tmp_path.glob(".*.partial"))


def test_only_dead_runs_partial_folders_are_cleared(tmp_path):
    out = tmp_path / "data"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".data.{dead.stdout.strip()}.abc.partial"  # that process has exited
    running = tmp_path / f".data.{os.getpid()}.xyz.partial"        # this one is alive
    stale.mkdir()
    running.mkdir()
    with partial_folder(out) as tmp:
        (tmp / "done").write_text("ok")
        os.replace(tmp, out)
    assert (out / "done").read_text() == "ok"
    assert not stale.exists() and running.exists()


def test_atomic_folder_replaces_the_folder_only_once_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            (tmp / "new.png").write_text("new")
            raise RuntimeError("killed mid-way")
    assert [p.name for p in out.iterdir()] == ["old.png"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    with atomic_folder(out) as tmp:
        (tmp / "new.png").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.png"] and [p.name for p in tmp_path.iterdir()] == ["out"]
