"""`repro reproduce table2|table3|table4|table5|all`: every row of the paper's tables, from nothing to report.

For each row and seed: train (or reuse a finished run, resume an interrupted one), translate the val set
in both directions, score both, and write OUT/ROW/seed-K/result.json with its provenance. Then the
report (repro.report) diffs every cell against the paper.

    OUT/ROW/seed-K/run/             the training run (config.toml, checkpoint.pt, losses.jsonl, run.json)
    OUT/ROW/seed-K/labels2photo/    G's translations of the val label maps (scored by the FCN, Tables 2/4)
    OUT/ROW/seed-K/photo2labels/    F's translations of the val photos (nearest palette colour, Tables 3/5)
    OUT/ROW/seed-K/result.json      both directions' metrics + provenance
    OUT/report.md, OUT/report.html, OUT/figures/

Every row is trained once and scored in both directions, so `table2` and `table3` run the same rows (and
the report shows both tables); likewise `table4` and `table5`.

`--pretrained` adds the official PyTorch port's pretrained Cityscapes generators as a row of Tables 2 and 3
(OUT/port_pretrained/seed-0/, nothing trained; `--pretrained-only` scores only that row).

Scales: `smoke` runs the shrunk configs (repro/configs/smoke) on the synthetic city, made in OUT/synth-city
with a small FCN-8s trained there (OUT/segmenter.pt); `paper` runs repro/configs/cityscapes on real
Cityscapes with the segmenter you give. Missing prerequisites stop the command before any work.
"""

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from repro import ReproError, layout, train
from repro.checkpoint import is_finished, run_config, saved_step
from repro.methods import METHODS
from repro.device import pick_device
from repro.config import Config, load_config
from repro.done import is_current
from repro.io import atomic_folder, read_json_or_empty
from repro.rows import DEFAULT_SEEDS, PRETRAINED, PRETRAINED_NOTE, ROWS, SCALES, TARGETS, Row, config_name, is_implemented

REPO_ROOT = Path(__file__).resolve().parents[1]

# The smoke segmenter: a small FCN-8s (1/16 of VGG16's widths) trained on the synthetic city's train split.
SMOKE_CITY = dict(n_train=200, n_val=50, size=(256, 128), seed=0)
SMOKE_SEGMENTER = dict(width=0.0625, iters=200, batch_size=4, optimizer="adam", lr=1e-3, seed=0, label_size=(128, 64))


@dataclass
class Setup:
    """Where everything is, resolved before any work starts."""

    scale: str
    out: Path
    data: Path        # prepared dataset (trainA/trainB/testA/testB, manifest.json)
    cityscapes: Path  # raw package root holding gtFine/val (ground truth)
    segmenter: Path
    device: str
    settings: dict = field(default_factory=dict)  # `--set FIELD=VALUE` for every row's config


def rows_for(target: str) -> list[Row]:
    """Rows of the target's tables, in the order of ROWS, each once."""
    tables = TARGETS[target]
    return [r for r in ROWS if any(t in r.tables for t in tables)]


def row_config(row: Row, scale: str, seed: int, iters_per_epoch: int | None = None, settings: dict | None = None) -> Config:
    """The row's shipped config at that scale, with `--set` settings, the seed and iterations per epoch."""
    return load_config(config_name(row, scale), **((settings or {}) | {"seed": seed, "iters_per_epoch": iters_per_epoch}))


# ------------------------------------------------------------------------------ prerequisites


def seconds_per_iteration(cfg: Config, device: str, steps: int = 2, runs: int = 1) -> float:
    """Seconds per training iteration of one run: `steps` CycleGAN iterations of cfg's sizes on random images,
    timed after one warm-up, as training will run them: `runs` > 1 packed into one step (the time divided by
    the runs), else one run, replayed as a CUDA graph on CUDA (repro.capture)."""
    device_ = torch.device(device)
    if runs > 1:
        step = METHODS["cyclegan"].build_packed([replace(cfg, seed=k) for k in range(runs)], device_).step
        rng = [torch.Generator().manual_seed(k) for k in range(runs)]
        shape = (runs, cfg.batch_size, 3, cfg.crop_size, cfg.crop_size)
    else:
        if device_.type == "cuda":
            from repro.capture import build as build_captured
            step = build_captured(cfg, device_, graphs=True).step
        else:
            step = METHODS["cyclegan"].build(cfg, device_).step
        rng = torch.Generator().manual_seed(0)
        shape = (cfg.batch_size, 3, cfg.crop_size, cfg.crop_size)
    x = torch.rand(shape, device=device) * 2 - 1
    y = torch.rand_like(x) * 2 - 1
    step(x, y, rng)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y, rng)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps / runs


def total_iterations(cfg: Config, train_pairs: int) -> int:
    return cfg.epochs * (cfg.iters_per_epoch or train_pairs // cfg.batch_size)  # as repro.train counts them


def estimate(rows: list[Row], scale: str, seeds: int, device: str, train_pairs: int,
             iters_per_epoch: int | None = None, pack: int = 1) -> tuple[float, str]:
    """(seconds, explanation): time per iteration measured here (packed as `--pack` will pack, captured on
    CUDA) x iterations x rows x seeds."""
    todo = [r for r in rows if is_implemented(r, scale)]
    if not todo:
        return 0.0, "no implemented rows"
    # Timed with the scale's CycleGAN config: the baselines' steps are of the same order (an estimate).
    cfg = load_config(f"{SCALES[scale]}/cyclegan", iters_per_epoch=iters_per_epoch)
    per_iter = seconds_per_iteration(cfg, device, runs=pack)
    iters = sum(total_iterations(row_config(r, scale, 0, iters_per_epoch), train_pairs) for r in todo)
    seconds = per_iter * iters * seeds
    how = f"{pack} runs packed" if pack > 1 else "captured as a CUDA graph" if device.startswith("cuda") else "one run"
    text = (f"{per_iter * 1000:.0f} ms per training iteration on {device} (measured now, {cfg.crop_size}x{cfg.crop_size}, "
            f"{how}) "
            f"x {iters:,} iterations over {len(todo)} row(s) x {seeds} seed(s) = {format_duration(seconds)} of training "
            f"(translation and scoring come on top)")
    return seconds, text


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def paper_setup(args, rows: list[Row]) -> Setup:
    """Checks everything a paper-scale run needs; raises one ReproError listing every fix."""
    device = str(pick_device(args.device))
    problems = []
    cityscapes, data, segmenter = args.cityscapes, args.data, args.segmenter
    if cityscapes is None or not (Path(cityscapes) / "gtFine" / "val").is_dir():
        problems.append(
            "Cityscapes is missing (--cityscapes DIR, the folder holding the extracted gtFine/ and leftImg8bit/).\n"
            "    Download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip (account needed) and extract them:\n"
            "      csDownload gtFine_trainvaltest.zip leftImg8bit_trainvaltest.zip   # from cityscapesscripts\n"
            "      unzip -q gtFine_trainvaltest.zip -d datasets/cityscapes_raw && unzip -q leftImg8bit_trainvaltest.zip -d datasets/cityscapes_raw\n"
            "    then pass --cityscapes datasets/cityscapes_raw")
    if data is None:
        problems.append("--data DIR is missing: where the prepared 256x256 dataset is (or will be) kept, e.g.\n"
                        "      --data datasets/cityscapes   (prepared from --cityscapes if it does not exist:\n"
                        "      repro data cityscapes --gtfine RAW --leftimg RAW --out datasets/cityscapes --size 256)")
    if segmenter is None or not Path(segmenter).is_file():
        problems.append(
            f"the FCN-8s segmenter is missing ({'--segmenter PT' if segmenter is None else segmenter}). Any of:\n"
            "      repro segmenter get --out segmenters/fcn8s-cityscapes.pt           # the pix2pix authors' Caffe weights\n"
            "      repro segmenter import-caffe fcn-8s-cityscapes.caffemodel segmenters/fcn8s-cityscapes.pt\n"
            "      repro segmenter train --cityscapes RAW --out segmenters/fcn8s-cityscapes.pt   # a stand-in\n"
            "    then: repro segmenter calibrate --segmenter segmenters/fcn8s-cityscapes.pt --cityscapes RAW\n"
            "    and pass --segmenter segmenters/fcn8s-cityscapes.pt")
    seeds = args.seeds or DEFAULT_SEEDS["paper"]
    pack = 1 if getattr(args, "pack", "off") == "off" else min(25, len(rows) * seeds) if args.pack == "auto" else int(args.pack)
    seconds, text = estimate(rows, "paper", seeds, device, 2975, args.iters_per_epoch, pack)
    # SLURM jobs get their GPUs on the nodes (--slurm-gpus-per-job, 1 by default at this scale), not here
    jobs_have_gpus = getattr(args, "launcher", None) == "slurm" and args.slurm_gpus_per_job != 0
    if device == "cpu" and not args.allow_cpu and seconds > 0 and not jobs_have_gpus:  # pretrained only: cheap
        problems.append(
            f"no GPU: a paper-scale run on this CPU would take about {format_duration(seconds)} (estimate below).\n"
            "    Run it on a machine with a CUDA GPU (one to three days per model there), or pass --allow-cpu.")
    if problems:
        raise ReproError("cannot start the paper-scale reproduction:\n  - " + "\n  - ".join(problems) +
                         f"\n  Estimated duration on {device}: {format_duration(seconds)} ({text}).")
    print(f"estimated duration: {text}", flush=True)
    return Setup("paper", Path(args.out), Path(data), Path(cityscapes), Path(segmenter), device)


def smoke_setup(args, progress: bool = True) -> Setup:
    """The synthetic city, its prepared data and a small calibrated segmenter in OUT (made if missing)."""
    from repro.data import cityscapes as prep
    from repro.data import synth_city

    out = Path(args.out)
    device = str(pick_device(args.device))
    city = Path(args.cityscapes) if args.cityscapes else out / "synth-city"
    if args.cityscapes is None:
        synth_city.generate(city, progress=progress, **SMOKE_CITY)
    data = Path(args.data) if args.data else out / "data"
    if not (data / "manifest.json").is_file():
        prep.prepare(city, city, data, size=128, progress=progress)
    segmenter = Path(args.segmenter) if args.segmenter else out / "segmenter.pt"
    if not segmenter.is_file():
        print(f"training the smoke segmenter {segmenter} on {city} (train split) ...", flush=True)
        from repro.eval import segmenter as seg
        seg.train(city, segmenter, device=device, workers=0, progress=progress, **SMOKE_SEGMENTER)
    calibrate(segmenter, city, device)
    return Setup("smoke", out, data, city, segmenter, device)


def calibrate(segmenter: Path, cityscapes: Path, device: str) -> dict:
    """The segmenter's calibration (real val photos at 256), computed once and kept next to it."""
    from repro.eval import calibration
    from repro.eval import segmenter as seg
    from repro.io import sha256_file, write_json

    kept = calibration.read(segmenter, sha256_file(segmenter))
    if kept is not None:
        return kept
    result = seg.calibrate(segmenter, cityscapes, device)
    write_json(calibration.calibration_file(segmenter), result)
    return result


# ------------------------------------------------------------------------------ one row, one seed


def provenance(cfg: Config | None, setup: Setup, seg_sha: str, calibration: dict, run: Path) -> dict:
    """Where a result came from; cfg is None for a row that trains nothing (the pretrained one)."""
    import numpy
    import PIL
    import torchvision

    from repro.eval.calibration import summary
    from repro.io import sha256_file

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    manifest = setup.data / "manifest.json"
    run_info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    device = torch.device(setup.device)
    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "config": asdict(cfg) if cfg else None,
        "seed": cfg.seed if cfg else 0,
        "scale": setup.scale,
        "data": str(setup.data),
        "dataset_manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        "cityscapes": str(setup.cityscapes),
        "segmenter": {"path": str(setup.segmenter), "sha256": seg_sha},
        "calibration": summary(calibration),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__},
        "device": setup.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "train_seconds": run_info.get("train_seconds"),
    }


def translate(run: Path, direction: str, inputs: Path, out: Path, device: str, progress: bool) -> bool:
    """Translates every input into `out` unless it already holds them all (written to a temp folder first).
    Returns whether it translated (scores of an earlier translation are then stale)."""
    from repro.data.loaders import list_images
    from repro.translate import generator_from_run, translate_folder

    expected = len(list_images(inputs))
    if out.is_dir() and len([p for p in out.iterdir() if p.suffix == ".png"]) == expected:
        return False
    net, size, resize_filter = generator_from_run(run, direction, device)
    with atomic_folder(out) as tmp:
        translate_folder(net, inputs, tmp, size, resize_filter, device, progress=progress)
    return True


def finished_result(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None) -> dict | None:
    """The run's result.json when it is finished with this config and segmenter (nothing to redo), else None."""
    from repro.io import sha256_file

    done = read_json_or_empty(layout.result_file(setup.out, row.key, seed))
    cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
    key = {"config": asdict(cfg), "provenance.segmenter.sha256": sha256_file(setup.segmenter)}
    return done if is_current(done, key) else None


def run_row(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None, progress: bool = True) -> dict:
    """Trains, translates and scores one row at one seed; returns (and writes) its result.json content."""
    from repro.io import sha256_file, write_json

    done = finished_result(row, seed, setup, iters_per_epoch)
    if done is not None:
        return done
    cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
    folder = layout.row_folder(setup.out, row.key, seed)
    result_path = layout.result_file(setup.out, row.key, seed)
    seg_sha = sha256_file(setup.segmenter)
    started = time.time()
    run = layout.run_folder(setup.out, row.key, seed)
    if (run / "config.toml").is_file() and asdict(run_config(run)) != asdict(cfg):
        raise ReproError(f"{run} holds a run of another config than {config_name(row, setup.scale)} with these "
                         f"overrides (seed {seed}, iters_per_epoch {iters_per_epoch}, --set {setup.settings}); use "
                         f"another --out, or delete {folder}.")
    if not is_finished(run):
        resume = (run / "checkpoint.pt").is_file()
        print(f"{'resuming' if resume else 'training'} {row.label} seed {seed} in {run}", flush=True)
        train.train(cfg, setup.data, run, device=setup.device, resume=resume, progress=progress)
    scores = {}
    for direction, inputs in (("labels2photo", cfg.x_test), ("photo2labels", cfg.y_test)):
        fresh = translate(run, direction, setup.data / inputs, layout.translations(folder, direction), setup.device,
                          progress)
        scores[direction] = score_direction(folder, direction, setup, seg_sha, fresh, progress)
    calibration = calibrate(setup.segmenter, setup.cityscapes, setup.device)
    result = {
        "row": row.key, "label": row.label, "tables": list(row.tables), "seed": seed, "scale": setup.scale,
        "config": asdict(cfg),
        **scored(scores),
        "provenance": provenance(cfg, setup, seg_sha, calibration, run),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(result_path, result)
    return result


def score_direction(folder: Path, direction: str, setup: Setup, seg_sha: str, fresh: bool, progress: bool) -> dict:
    """FOLDER/DIRECTION.json, the score of the translations in FOLDER/DIRECTION/ (the one protocol of every
    row), recomputed when the translations are new or the segmenter changed."""
    from repro.eval import labels2photo, photo2labels
    from repro.io import write_json

    path, translated = layout.scores_file(folder, direction), layout.translations(folder, direction)
    key = {"segmenter.sha256": seg_sha} if direction == "labels2photo" else {}  # photo2labels: no model involved
    if fresh or not is_current(read_json_or_empty(path), key):
        if direction == "labels2photo":
            res = labels2photo.evaluate(translated, setup.cityscapes, setup.segmenter, "pix2pix",
                                        setup.device)
        else:
            res = photo2labels.evaluate(translated, setup.cityscapes, progress=progress)
        write_json(path, res)
    return json.loads(path.read_text())


def scored(scores: dict) -> dict:
    """The metrics part of a result.json from both directions' score files."""
    l2p, p2l = scores["labels2photo"], scores["photo2labels"]
    return {
        "metrics": {
            "labels2photo": l2p["metrics"],  # the headline: pix2pix protocol (the paper's numbers came from it)
            "labels2photo_strict": l2p["other_protocols"]["strict"]["metrics"],
            "photo2labels": p2l["metrics"],
        },
        "per_class": {"labels2photo": l2p["per_class"], "photo2labels": p2l["per_class"]},
        "comparable_to_paper": l2p.get("comparable_to_paper"),
        "protocols": {"labels2photo": l2p["protocol"], "photo2labels": p2l["protocol"]},
    }


def run_pretrained(setup: Setup, progress: bool = True) -> dict:
    """The official port's pretrained Cityscapes generators as a row of Tables 2 and 3 (rows.PRETRAINED):
    fetched into OUT/pretrained/ (repro.pretrained), run on the val set as the port's test.py runs them,
    scored like every other row; OUT/port_pretrained/seed-0/result.json (one "seed": nothing is trained)."""
    from repro import pretrained
    from repro.io import sha256_file, write_json

    folder = layout.row_folder(setup.out, PRETRAINED.key, 0)
    result_path = layout.result_file(setup.out, PRETRAINED.key, 0)
    seg_sha = sha256_file(setup.segmenter)
    files = {d: pretrained.get(name, layout.pretrained_folder(setup.out), progress=progress)
             for d, name in pretrained.CITYSCAPES.items()}
    models = {d: {"name": pretrained.CITYSCAPES[d], "file": str(path), "sha256": sha256_file(path),
                  "url": pretrained.url_for(pretrained.CITYSCAPES[d])} for d, path in files.items()}
    done = read_json_or_empty(result_path)
    key = {f"models.{d}.sha256": m["sha256"] for d, m in models.items()} | {"provenance.segmenter.sha256": seg_sha}
    if is_current(done, key):
        return done
    started = time.time()
    scores = {}
    for direction, inputs in (("labels2photo", "testB"), ("photo2labels", "testA")):  # B = label maps, A = photos
        with atomic_folder(layout.translations(folder, direction)) as tmp:
            pretrained.translate_as_port(files[direction], setup.data / inputs, tmp, setup.device, progress)
        scores[direction] = score_direction(folder, direction, setup, seg_sha, True, progress)
    calibration = calibrate(setup.segmenter, setup.cityscapes, setup.device)
    result = {
        "row": PRETRAINED.key, "label": PRETRAINED.label, "tables": list(PRETRAINED.tables), "seed": 0,
        "scale": setup.scale, "config": None, "models": models,
        "translation": {"arch": pretrained.ARCH, "norm": pretrained.NORM, "size": pretrained.SIZE,
                        "resize_filter": pretrained.RESIZE_FILTER, "as": "the port's test.py (see repro.pretrained)"},
        "note": PRETRAINED_NOTE,
        **scored(scores),
        "provenance": provenance(None, setup, seg_sha, calibration, folder),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(result_path, result)
    return result


# ------------------------------------------------------------------------------ packs and jobs


def pack_size(pack: str, cfg: Config, device: str) -> int:
    """`--pack`: "off" 1, a number N, or "auto": on CUDA as many runs as 70% of the free memory holds (one run's
    peak measured by one training step), on the CPU 10 (packing saves per-operation overhead, little there)."""
    if pack == "off":
        return 1
    if pack != "auto":
        return int(pack)
    if not device.startswith("cuda"):
        return 10
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    seconds_per_iteration(cfg, device, steps=1)
    per_run = max(torch.cuda.max_memory_allocated(device) - before, 1)
    torch.cuda.empty_cache()  # the measuring step's blocks go back: the packs (or a launcher's jobs) need them
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return max(1, int(0.7 * free // per_run))


def pack_groups(runs: list[tuple[Row, int]], setup: Setup, iters_per_epoch: int | None,
                pack: str) -> list[list[tuple[Row, int]]]:
    """The runs that can share one vectorised step (repro.methods.packing: a method with packing, configs that
    differ only in seed and loss weights, the same starting point), in packs of two to `--pack` runs. Runs
    finished, alone or of other methods are in no pack: run_row trains them one by one."""
    from repro.methods.packing import PACKABLE

    groups: dict[tuple, list[tuple[Row, int]]] = {}
    for row, seed in runs:
        cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
        run = layout.run_folder(setup.out, row.key, seed)
        if METHODS[cfg.method].build_packed is None or is_finished(run) or finished_result(row, seed, setup, iters_per_epoch):
            continue
        ckpt = run / "checkpoint.pt"
        start = saved_step(ckpt) if ckpt.is_file() else None
        key = (start, tuple((k, v) for k, v in sorted(asdict(cfg).items()) if k not in PACKABLE))
        groups.setdefault(key, []).append((row, seed))
    packs = []
    for members in groups.values():
        row, seed = members[0]
        size = pack_size(pack, row_config(row, setup.scale, seed, iters_per_epoch, setup.settings), setup.device)
        packs += [members[i:i + size] for i in range(0, len(members), size) if len(members[i:i + size]) > 1]
    return packs


def train_packs(runs: list[tuple[Row, int]], setup: Setup, iters_per_epoch: int | None, pack: str,
                progress: bool = True) -> None:
    """Trains, before run_row translates and scores them, the packs of pack_groups (resuming a pack whose
    runs stopped together). Runs in no pack are left to run_row."""
    for group in pack_groups(runs, setup, iters_per_epoch, pack):
        cfgs = [row_config(row, setup.scale, seed, iters_per_epoch, setup.settings) for row, seed in group]
        folders = [layout.run_folder(setup.out, row.key, seed) for row, seed in group]
        resume = (folders[0] / "checkpoint.pt").is_file()
        print(f"{'resuming' if resume else 'training'} {len(group)} runs as one pack: "
              f"{', '.join(str(f) for f in folders)}", flush=True)
        train.train_runs(cfgs, setup.data, folders, device=setup.device, resume=resume, progress=progress)


def reproduce(target: str, setup: Setup, seeds: int, iters_per_epoch: int | None = None,
              progress: bool = True, pretrained: str | None = None, pack: str = "off") -> list[dict]:
    """Every implemented row of the target at seeds 0..seeds-1 (rows not implemented are only listed).
    OUT/reproduce.json (what was asked) is written first, so an interrupted run can still be reported.
    pretrained: "add" also scores the port's pretrained generators (Tables 2/3), "only" scores only them."""
    runs = planned_runs(target, setup, seeds, iters_per_epoch, pretrained)
    if pack != "off":
        train_packs(runs, setup, iters_per_epoch, pack, progress)
    results = [run_pretrained(setup, progress)] if pretrained and any(t in PRETRAINED.tables for t in TARGETS[target]) else []
    return results + [run_row(row, seed, setup, iters_per_epoch, progress) for row, seed in runs]


def planned_runs(target: str, setup: Setup, seeds: int, iters_per_epoch: int | None = None,
                 pretrained: str | None = None) -> list[tuple[Row, int]]:
    """Writes OUT/reproduce.json (what was asked); returns the (row, seed) runs to do, listing rows not implemented."""
    plan = {"target": target, "tables": list(TARGETS[target]), "scale": setup.scale, "seeds": seeds,
            "iters_per_epoch": iters_per_epoch, "settings": setup.settings, "pretrained": pretrained}
    layout.write_plan(setup.out, plan, {key: getattr(setup, key) for key in ("segmenter", "cityscapes", "data")})
    runs = []
    for row in (rows_for(target) if pretrained != "only" else []):
        if not is_implemented(row, setup.scale):
            print(f"{row.label}: not implemented at scale {setup.scale} (no config {config_name(row, setup.scale)}.toml)")
            continue
        runs += [(row, seed) for seed in range(seeds)]
    return runs


def run_job(runs: list[tuple[str, int]], setup: Setup, iters_per_epoch: int | None, packed: bool) -> list[dict]:
    """One launcher job (repro.launch.RunGroup): (row key, seed) runs trained (first as one pack when `packed`),
    translated and scored one after another in this process."""
    import socket

    rows = {r.key: r for r in ROWS}
    if packed:
        train_packs([(rows[k], s) for k, s in runs], setup, iters_per_epoch, str(len(runs)), progress=False)
    done = []
    for key, seed in runs:
        result = run_row(rows[key], seed, setup, iters_per_epoch, progress=False)
        done.append({"row": key, "seed": seed, "pid": os.getpid(), "host": socket.gethostname(),
                     "labels2photo": result["metrics"]["labels2photo"]})
        print(f"finished {key} seed {seed}", flush=True)
    return done


def launch_runs(runs: list[tuple[Row, int]], setup: Setup, iters_per_epoch: int | None, opts):
    """Submits the runs still to do as jobs (repro.launch, `opts` its Options) and, unless opts.wait is False, waits
    for them. Each job runs run_job."""
    from repro import launch

    todo = [(row, seed) for row, seed in runs if finished_result(row, seed, setup, iters_per_epoch) is None]
    packs = pack_groups(todo, setup, iters_per_epoch, opts.pack) if opts.pack != "off" else []
    packed = {(row.key, seed) for group in packs for row, seed in group}
    groups = [[(row.key, seed) for row, seed in group] for group in packs]  # first: the longest jobs
    groups += [[(row.key, seed)] for row, seed in todo if (row.key, seed) not in packed]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; {len(todo)} to do as {len(groups)} "
          f"{opts.launcher} job(s)" + (f", {len(packs)} of them packs of {'/'.join(str(len(g)) for g in packs)} runs"
                                       if packs else ""), flush=True)
    outcome = launch.launch(groups, setup, iters_per_epoch, opts, run_job)
    if outcome.pending:
        print(f"{len(outcome.submitted)} job(s) submitted, {len(outcome.adopted)} still running from before: "
              f"rerun this same command to collect them and write the report", flush=True)
    return outcome
