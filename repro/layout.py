"""Where a run and a reproduction keep their files: every such path is built here, and nowhere else.

    RUN/                                a `repro train` run (repro.checkpoint: config.toml, checkpoint.pt, logs)
    RUN/G_x2y.pth, RUN/F_y2x.pth ...    its exported nets, NET_DIRECTION.pth (export_name)
    OUT/seed-S/                         `repro train --seeds`: one run per seed (seed_runs)
    OUT/reproduce.json                  what `repro reproduce` was asked (write_plan, load_plan)
    OUT/ROW/seed-K/                     one row at one seed (row_folder)
    OUT/ROW/seed-K/run/                 its training run
    OUT/ROW/seed-K/DIRECTION/           its translations, labels2photo/ or photo2labels/
    OUT/ROW/seed-K/DIRECTION.json       their scores
    OUT/ROW/seed-K/result.json          both directions' metrics and the provenance
    OUT/ROW/seed-K/local/, slurm/       the launcher's job folder (logs, job.json)
    OUT/pretrained/                     the port's pretrained generators (`--pretrained`)
    OUT/synth-city/, OUT/data/, OUT/segmenter.pt   a smoke reproduction's inputs, made there (smoke_inputs)
"""

import json
from pathlib import Path

from repro import ReproError
from repro.io import write_json

PLAN = "reproduce.json"
RESULT = "result.json"


def export_name(net: str, direction: str) -> str:
    """The file a run exports a net to, e.g. G_x2y.pth: the official port's state_dict format."""
    return f"{net}_{direction}.pth"


def seed_runs(out: Path, seeds: list[int]) -> list[Path]:
    """The run folders of `repro train --seeds`: OUT/seed-S each."""
    return [Path(out) / f"seed-{seed}" for seed in seeds]


def row_folder(out: Path, row: str, seed: int) -> Path:
    return Path(out) / row / f"seed-{seed}"


def run_folder(out: Path, row: str, seed: int) -> Path:
    return row_folder(out, row, seed) / "run"


def result_file(out: Path, row: str, seed: int) -> Path:
    return row_folder(out, row, seed) / RESULT


def result_files(out: Path) -> list[Path]:
    """Every row's result.json in a reproduction folder, sorted."""
    return sorted(Path(out).glob(f"*/seed-*/{RESULT}"))


def translations(folder: Path, direction: str) -> Path:
    """ROW/seed-K/DIRECTION/: a row's translations in one direction."""
    return Path(folder) / direction


def scores_file(folder: Path, direction: str) -> Path:
    """ROW/seed-K/DIRECTION.json: the scores of those translations."""
    return Path(folder) / f"{direction}.json"


def job_folder(out: Path, row: str, seed: int, launcher: str) -> Path:
    return row_folder(out, row, seed) / launcher


def pretrained_folder(out: Path) -> Path:
    return Path(out) / "pretrained"


def smoke_inputs(out: Path, cityscapes: Path | None, data: Path | None,
                 segmenter: Path | None) -> tuple[Path, Path, Path]:
    """A smoke reproduction's raw city, prepared data and segmenter: the ones given, else those it makes in OUT."""
    out = Path(out)
    return (Path(cityscapes) if cityscapes else out / "synth-city", Path(data) if data else out / "data",
            Path(segmenter) if segmenter else out / "segmenter.pt")


# ------------------------------------------------------------------------------ reproduce.json


def plan_file(out: Path) -> Path:
    return Path(out) / PLAN


def stored_path(path: Path, out: Path) -> str:
    """How reproduce.json records a path: relative to OUT when inside it, else absolute."""
    path, out = Path(path).resolve(), Path(out).resolve()
    return str(path.relative_to(out)) if path.is_relative_to(out) else str(path)


def write_plan(out: Path, plan: dict, paths: dict[str, Path]) -> Path:
    """OUT/reproduce.json: the plan, with `paths` (data, cityscapes, segmenter) stored relative to OUT when inside."""
    return write_json(plan_file(out), plan | {key: stored_path(path, out) for key, path in paths.items()})


def read_plan(out: Path) -> dict | None:
    """OUT/reproduce.json as written (paths as stored), None when there is none."""
    path = plan_file(out)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReproError(f"{path} is not valid JSON ({err}); run `repro reproduce` again with this --out.") from None


def load_plan(out: Path) -> dict:
    """OUT/reproduce.json with its paths (stored relative to OUT) resolved against OUT."""
    plan = read_plan(out)
    if plan is None:
        raise ReproError(f"{plan_file(out)} does not exist: {out} is not the --out folder of `repro reproduce`.")
    for key in ("data", "cityscapes", "segmenter"):
        if plan.get(key):
            path = Path(out) / plan[key]  # an absolute stored path stays itself
            if not path.exists() and Path(plan[key]).exists():
                path = Path(plan[key])  # a reproduce.json written before paths were stored relative to OUT
            plan[key] = path
    return plan
