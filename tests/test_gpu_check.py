"""benchmarks/gpu_check.sh's dry run (GPU_CHECK_DEVICE=cpu) with cityscapesscripts, pytorch_fid, submitit and cleanfid
unimportable, as on the GPU image: every step runs and passes, the CUDA tests are collected (and skipped here),
and OUTDIR holds the three small files that come back from a GPU machine."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("cityscapesscripts", "pytorch_fid", "submitit", "cleanfid")  # what the GPU image lacks
BLOCKER = f'''import sys
BLOCKED = {BLOCKED!r}
class Blocker:  # the GPU image lacks these (tests/test_gpu_check.py)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Blocker())
'''


def test_gpu_check_dry_run_with_the_gpu_images_missing_packages(tmp_path):
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    env = dict(os.environ, GPU_CHECK_DEVICE="cpu", GPU_CHECK_PYTHON=sys.executable, GPU_CHECK_SCRATCH=str(scratch),
               GPU_CHECK_COMPILE_LIMIT="10", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    log = done.stdout[-3000:] + done.stderr[-2000:]

    files = sorted(p.name for p in out.iterdir())
    assert files == ["logs.tar.gz", "summary.json", "summary.md"], log
    assert sum(p.stat().st_size for p in out.iterdir()) < 16 * 2 ** 20
    assert len((out / "summary.md").read_text().splitlines()) <= 25  # one screen
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"env", "steps", "cases", "sync_debug", "cuda_tests", "compile"}
    assert set(BLOCKED) <= set(summary["env"]["missing_packages"]), "the blocker did not block"
    steps = summary["steps"]
    for name in ("env", "cuda_tests", "data", "eager", "graphs", "graphs_bf16", "packed5", "packed25"):
        assert steps[name]["outcome"] == "ok", (name, steps[name], log)
    assert list(steps)[-1] == "compiled" and steps["compiled"]["limit"] <= 10  # last, with its own limit
    assert steps["compiled"]["outcome"] in ("ok", "time limit", "killed at the time limit")
    assert "skipped" in summary["cuda_tests"]["result"] and "error" not in summary["cuda_tests"]["result"]
    for name in ("eager", "packed5", "packed25"):
        case = summary["cases"][name]
        assert case["ok"] and case["it_s"] > 0, case
        assert abs(case["aggregate_it_s"] - case["runs"] * case["per_run_it_s"]) <= 0.01 * case["runs"]  # rounding
    assert summary["cases"]["packed25"]["runs"] > summary["cases"]["packed5"]["runs"] > 1
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert "logs/cuda_tests.log" in names and "results/eager.json" in names
    assert any(n.endswith("run.json") for n in names) and not any(n.endswith((".pt", ".pth", ".png")) for n in names)
    assert not list(out.rglob("*.png")) and (scratch / "data" / "trainA").is_dir()  # images in the scratch folder
    assert done.returncode == (0 if steps["compiled"]["outcome"] == "ok" else 1), log
