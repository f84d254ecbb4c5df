"""The built wheel (not an editable install) carries expected/ and the report template: `repro check` run
from outside the repository, with only the installed package on the path, reads the shipped ranges."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_expected_and_repro_check_reads_it(tmp_path):
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "expected", src / "expected")
    shutil.copytree(REPO / "repro", src / "repro", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, cwd=tmp_path, capture_output=True)
    wheel = next((tmp_path / "dist").glob("repro-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("repro/expected/ranges_smoke.toml", "repro/expected/ranges_paper.toml",
                    "repro/expected/paper.toml", "repro/expected/calibration.toml", "repro/templates/report.html.j2"):
        assert shipped in names
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    assert not (site / "repro" / "expected").is_symlink() and (site / "repro" / "expected" / "ranges_smoke.toml").is_file()

    results = tmp_path / "results"  # one row, two seeds, at the shipped smoke references of CycleGAN +- 0.005
    ranges = tomllib.loads((site / "repro" / "expected" / "ranges_smoke.toml").read_text())
    reference = {direction: ranges[table]["cyclegan"]["reference"]
                 for direction, table in (("labels2photo", "table2"), ("photo2labels", "table3"))}
    for seed, offset in ((0, -0.005), (1, 0.005)):
        folder = results / "cyclegan" / f"seed-{seed}"
        folder.mkdir(parents=True)
        metrics = {direction: {m: v + offset for m, v in ref.items()} for direction, ref in reference.items()}
        (folder / "result.json").write_text(json.dumps({"row": "cyclegan", "seed": seed, "scale": "smoke",
                                                        "metrics": metrics}))
    (results / "reproduce.json").write_text(json.dumps({"scale": "smoke", "seeds": 2, "iters_per_epoch": None}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", "import repro, sys; print(repro.__file__); from repro.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "check", str(results)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    first, *rest = done.stdout.splitlines()
    assert Path(first).resolve().is_relative_to(site.resolve())  # the installed package, not the checkout
    ranges = next(line for line in rest if line.startswith("ranges: "))[len("ranges: "):]
    assert Path(ranges).resolve() == (site / "repro" / "expected" / "ranges_smoke.toml").resolve()
    assert "12 of 12 judged cells pass the band rule" in done.stdout  # Tables 2-5 x 3 metrics
