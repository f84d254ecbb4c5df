"""`repro reproduce table2|table3|table4|table5|all`: every row of the paper's tables, from nothing to report.

For each row and seed: train (or reuse a finished run, resume an interrupted one), translate the val set
in both directions, score both, and write OUT/ROW/seed-K/result.json with its provenance. Then the
report (repro.report) diffs every cell against the paper.

    OUT/ROW/seed-K/run/             the training run (config.toml, checkpoint.pt, losses.jsonl, run.json)
    OUT/ROW/seed-K/labels2photo/    G's translations of the val label maps (scored by the FCN, Tables 2/4)
    OUT/ROW/seed-K/photo2labels/    F's translations of the val photos (nearest palette colour, Tables 3/5)
    OUT/ROW/seed-K/result.json      both directions' metrics + provenance
    OUT/ground_truth|untrained|constant/seed-K/   the floor and ceiling rows (repro.bounds), scored the same way
    OUT/results.csv                 every number, one tidy line each (repro.results_table)
    OUT/report.md, OUT/report.html, OUT/figures/

Every row is trained once and scored in both directions, so `table2` and `table3` run the same rows (and
the report shows both tables); likewise `table4` and `table5`.

`--bounds-only` scores only the floor and ceiling rows (repro.bounds), which every reproduction scores too.

`--pretrained` adds the official PyTorch port's pretrained Cityscapes generators as a row of Tables 2 and 3
(OUT/port_pretrained/seed-0/, nothing trained; `--pretrained-only` scores only that row).

Scales: `smoke` runs the shrunk configs (repro/configs/smoke) on the synthetic city, made in OUT/synth-city
with a small FCN-8s trained there (OUT/segmenter.pt); `paper` runs repro/configs/cityscapes on real
Cityscapes with the segmenter you give. Missing prerequisites stop the command before any work.

`horse2zebra` and `fid --dataset NAME` are the FID/KID reproductions later papers compare against
(repro.reproduce_fid, docs/fid.md); of the options above they take --scale, --seeds, --out, --data, --set,
--ranges, --device, --allow-cpu, --pretrained(-only), --quiet.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from repro import ReproError, train
from repro.checkpoint import is_finished, run_config, settle_pack_checkpoint
from repro.methods import METHODS
from repro.device import pick_device
from repro.config import Config, load_config, parse_settings
from repro.io import DiskFull
from repro.estimate import format_duration
from repro.rows import PRETRAINED, PRETRAINED_NOTE, ROWS, SCALES, Row, config_name, is_implemented

TARGETS = {"table2": (2, 3), "table3": (2, 3), "table4": (4, 5), "table5": (4, 5), "all": (2, 3, 4, 5)}
FID_TARGETS = ("horse2zebra", "fid")  # FID/KID of a CycleGAN dataset: repro.reproduce_fid
DEFAULT_SEEDS = {"paper": 5, "smoke": 2}  # the maintainers advise averaging 5-10 runs; smoke keeps the demo short
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
    graphs: str = "auto"  # `--graphs`: "auto" (CycleGAN's step captured as a CUDA graph on CUDA) or "off"


def rows_for(target: str) -> list[Row]:
    """Rows of the target's tables, in the order of ROWS, each once."""
    tables = TARGETS[target]
    return [r for r in ROWS if any(t in r.tables for t in tables)]


def row_config(row: Row, scale: str, seed: int, iters_per_epoch: int | None = None, settings: dict | None = None) -> Config:
    """The row's shipped config at that scale, with `--set` settings, the seed and iterations per epoch."""
    return load_config(config_name(row, scale), **((settings or {}) | {"seed": seed, "iters_per_epoch": iters_per_epoch}))


# ------------------------------------------------------------------------------ prerequisites


def estimate(rows: list[Row], scale: str, seeds: int, device: str, train_pairs: int,
             iters_per_epoch: int | None = None, pack: int = 1, settings: dict | None = None, graphs: str = "auto",
             jobs: int = 1, threads: int | None = None, plan_out: list | None = None) -> tuple[float, str]:
    """(seconds, explanation) of the training ahead (repro.estimate): every implemented row at seeds 0..seeds-1
    with the --set settings and --iters-per-epoch, packed as --pack packs, each kind of step timed now as
    training will run it (on `device`, `threads` torch threads on the CPU), `jobs` jobs at once."""
    from repro.estimate import plan, time_step, training_jobs

    cfgs = [row_config(r, scale, seed, iters_per_epoch, settings) for r in rows if is_implemented(r, scale)
            for seed in range(seeds)]
    if not cfgs:
        return 0.0, "no implemented rows"
    todo = training_jobs(cfgs, train_pairs, pack, lambda c: METHODS[c.method].build_packed is not None)
    cores = os.cpu_count() or 1
    contention = max(1.0, min(jobs, len(todo)) * (threads or 1) / cores) if device == "cpu" else 1.0
    result = plan(todo, lambda c: time_step(c, device, graphs, threads), slots=jobs, contention=contention)
    if plan_out is not None:  # the jobs' layout, for the evaluation added once it can be timed
        plan_out.append(result)
    return result.seconds, (f"measured now on {device}, {graphs_words(graphs, device)} (translation and scoring "
                            f"come on top):\n  " + result.text())


def evaluation_seconds(setup: Setup, cfg: Config, sample: int = 3) -> float:
    """One run's translation and scoring in both directions (what run_row does after training), timed now on
    `sample` val frames and scaled to the val set; the segmenter's load counted once. The translation is timed
    with an untrained CycleGAN generator of cfg's sizes (the baselines' generators are of the same order)."""
    import tempfile

    from repro.data.loaders import list_images
    from repro.eval import labels2photo, palette, photo2labels
    from repro.eval.fcn import load_segmenter
    from repro.eval.groundtruth import frame_id, ground_truth_files, load_train_ids
    from repro.methods.cyclegan import generator
    from repro.translate import translate_folder

    truth = ground_truth_files(setup.cityscapes, "val")
    palette.lookup_table()  # built once per process, before anything is timed
    device = torch.device(setup.device)
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        net = generator(cfg).to(device)
        start = time.perf_counter()
        model, _ = load_segmenter(setup.segmenter, device)
        load = time.perf_counter() - start
        for direction, inputs in (("labels2photo", cfg.x_test), ("photo2labels", cfg.y_test)):
            sample_in, sample_out = Path(tmp) / f"{direction}-in", Path(tmp) / direction
            sample_in.mkdir()
            files = [f for f in list_images(setup.data / inputs) if frame_id(f.name) in truth][:sample]
            for f in files:
                (sample_in / f.name).symlink_to(f.resolve())
            start = time.perf_counter()
            written = translate_folder(net, sample_in, sample_out, cfg.crop_size, cfg.resize_filter, device,
                                       progress=False)
            frames = [(frame_id(p.name), p, truth[frame_id(p.name)]) for p in written]
            if direction == "labels2photo":
                labels2photo.score_frames(frames, model, device, workers=0)
            else:
                for _, image, label in frames:
                    photo2labels.frame_confusion(photo2labels.load_rgb(image), load_train_ids(label))
            seconds += (time.perf_counter() - start) / max(1, len(files)) * len(truth)
    return seconds + load


def graphs_words(graphs: str, device: str) -> str:
    if graphs == "off":
        return "eager steps (--graphs off)"
    return "CycleGAN steps captured as CUDA graphs" if device.startswith("cuda") else "uncaptured steps (CPU)"


def planned_parallelism(args) -> tuple[int, int | None]:
    """(jobs at once, torch threads per run) as the command will train: --launcher's --jobs and threads per
    job, else one run at a time at repro.device's thread count."""
    if getattr(args, "launcher", None) is None:
        return 1, None
    from repro.launch import options_from
    opts = options_from(args)
    return opts.jobs or 10 ** 6, opts.threads


def paper_setup(args, rows: list[Row], plan_out: list | None = None) -> Setup:
    """Checks everything a paper-scale run needs; raises one ReproError listing every fix. `plan_out` receives
    the training estimate's job layout (repro.estimate.Estimate)."""
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
    seconds, text = estimate_for(args, rows, "paper", seeds, device, 2975, plan_out)
    # SLURM jobs get their GPUs on the nodes (--slurm-gpus-per-job, 1 by default at this scale), not here
    jobs_have_gpus = getattr(args, "launcher", None) == "slurm" and args.slurm_gpus_per_job != 0
    if device == "cpu" and not args.allow_cpu and seconds > 0 and not jobs_have_gpus:  # pretrained only: cheap
        problems.append(
            f"no GPU: a paper-scale run on this CPU would take about {format_duration(seconds)} (estimate below).\n"
            "    Run it on a machine with a CUDA GPU (one to three days per model there), or pass --allow-cpu.")
    if problems:
        raise ReproError("cannot start the paper-scale reproduction:\n  - " + "\n  - ".join(problems) +
                         f"\n  Estimated duration on {device}: {format_duration(seconds)}, {text}")
    print(f"estimated training time: {format_duration(seconds)}, {text}", flush=True)
    return Setup("paper", Path(args.out), Path(data), Path(cityscapes), Path(segmenter), device)


def estimate_for(args, rows: list[Row], scale: str, seeds: int, device: str, train_pairs: int,
                 plan_out: list | None = None) -> tuple[float, str]:
    """The estimate of the training this command will do (its --set, --iters-per-epoch, --pack, --graphs,
    --launcher jobs and threads)."""
    pack_arg = getattr(args, "pack", "off")
    if pack_arg == "auto" and device.startswith("cuda"):  # from the GPU's free memory, as pack_groups will
        pack = pack_size("auto", load_config(f"{SCALES[scale]}/cyclegan", **parse_settings(getattr(args, "set", None))),
                         device)
    else:
        pack = 1 if pack_arg == "off" else 10 if pack_arg == "auto" else int(pack_arg)
    jobs, threads = planned_parallelism(args)
    return estimate(rows, scale, seeds, device, train_pairs, args.iters_per_epoch, pack,
                    parse_settings(getattr(args, "set", None)), getattr(args, "graphs", "auto"), jobs, threads,
                    plan_out)


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
    calibrate(segmenter, city, device, progress)
    return Setup("smoke", out, data, city, segmenter, device)


def calibrate(segmenter: Path, cityscapes: Path, device: str, progress: bool = True) -> dict:
    """The segmenter's calibration (real val photos at 256), computed once and kept next to it."""
    from repro.eval import calibration
    from repro.eval import segmenter as seg
    from repro.io import sha256_file, write_json

    kept = calibration.read(segmenter, sha256_file(segmenter))
    if kept is not None:
        return kept
    result = seg.calibrate(segmenter, cityscapes, device, workers=0 if device == "cpu" else None, progress=progress)
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
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    net, size, resize_filter = generator_from_run(run, direction, device)
    translate_folder(net, inputs, tmp, size, resize_filter, device, progress=progress, direction=direction,
                     source=str(run))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return True


def finished_result(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None) -> dict | None:
    """The run's result.json when it is finished with this config and segmenter (nothing to redo), else None."""
    from repro.io import read_json_or_empty, sha256_file

    done = read_json_or_empty(setup.out / row.key / f"seed-{seed}" / "result.json")
    cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
    if done.get("config") == asdict(cfg) and done["provenance"]["segmenter"]["sha256"] == sha256_file(setup.segmenter):
        return done
    return None


def run_row(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None, progress: bool = True) -> dict:
    """Trains, translates and scores one row at one seed; returns (and writes) its result.json content."""
    from repro.io import sha256_file, write_json

    done = finished_result(row, seed, setup, iters_per_epoch)
    if done is not None:
        return done
    cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
    folder = setup.out / row.key / f"seed-{seed}"
    result_path = folder / "result.json"
    seg_sha = sha256_file(setup.segmenter)
    started = time.time()
    run = folder / "run"
    if (run / "config.toml").is_file() and asdict(run_config(run)) != asdict(cfg):
        raise ReproError(f"{run} holds a run of another config than {config_name(row, setup.scale)} with these "
                         f"overrides (seed {seed}, iters_per_epoch {iters_per_epoch}, --set {setup.settings}); use "
                         f"another --out, or delete {folder}.")
    if not is_finished(run):
        resume = (run / "checkpoint.pt").is_file()
        print(f"{'resuming' if resume else 'training'} {row.label} seed {seed} in {run}", flush=True)
        train.train(cfg, setup.data, run, device=setup.device, resume=resume, progress=progress, graphs=setup.graphs)
    scores = {}
    for direction, inputs in (("labels2photo", cfg.x_test), ("photo2labels", cfg.y_test)):
        fresh = translate(run, direction, setup.data / inputs, folder / direction, setup.device, progress)
        scores[direction] = score_direction(folder, direction, setup, seg_sha, fresh, progress)
    calibration = calibrate(setup.segmenter, setup.cityscapes, setup.device, progress)
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

    path = folder / f"{direction}.json"
    stale = fresh or not path.is_file() or (
        direction == "labels2photo" and json.loads(path.read_text())["segmenter"]["sha256"] != seg_sha)
    if stale:
        if direction == "labels2photo":
            res = labels2photo.evaluate(folder / direction, setup.cityscapes, setup.segmenter, "pix2pix",
                                        setup.device, workers=0 if setup.device == "cpu" else None, progress=progress)
        else:
            res = photo2labels.evaluate(folder / direction, setup.cityscapes, progress=progress)
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

    folder = setup.out / PRETRAINED.key / "seed-0"
    result_path = folder / "result.json"
    seg_sha = sha256_file(setup.segmenter)
    files = {d: pretrained.get(name, setup.out / "pretrained", progress=progress)
             for d, name in pretrained.CITYSCAPES.items()}
    models = {d: {"name": pretrained.CITYSCAPES[d], "file": str(path), "sha256": sha256_file(path),
                  "url": pretrained.url_for(pretrained.CITYSCAPES[d])} for d, path in files.items()}
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        same_models = {d: m["sha256"] for d, m in done.get("models", {}).items()} == {
            d: m["sha256"] for d, m in models.items()}
        if same_models and done["provenance"]["segmenter"]["sha256"] == seg_sha:
            return done
    started = time.time()
    scores = {}
    for direction, inputs in (("labels2photo", "testB"), ("photo2labels", "testA")):  # B = label maps, A = photos
        out = folder / direction
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        pretrained.translate_as_port(files[direction], setup.data / inputs, tmp, setup.device, progress, direction)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        scores[direction] = score_direction(folder, direction, setup, seg_sha, True, progress)
    calibration = calibrate(setup.segmenter, setup.cityscapes, setup.device, progress)
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


# ------------------------------------------------------------------------------ the command


def pack_size(pack: str, cfg: Config, device: str) -> int:
    """`--pack`: "off" 1, a number N, or "auto": on CUDA as many runs as 70% of the free memory holds (one run's
    peak measured by one training step), on the CPU 10 (packing saves per-operation overhead, little there)."""
    if pack == "off":
        return 1
    if pack != "auto":
        return int(pack)
    if not device.startswith("cuda"):
        return 10
    from repro.estimate import time_step

    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    time_step((cfg,), device, min_steps=1, min_seconds=0)
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
        run = setup.out / row.key / f"seed-{seed}" / "run"
        if METHODS[cfg.method].build_packed is None or is_finished(run) or finished_result(row, seed, setup, iters_per_epoch):
            continue
        settle_pack_checkpoint(run)  # a pack's checkpoint a kill interrupted: finished or dropped
        ckpt = run / "checkpoint.pt"
        start = torch.load(ckpt, map_location="cpu", weights_only=False)["position"]["step"] if ckpt.is_file() else None
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
        folders = [setup.out / row.key / f"seed-{seed}" / "run" for row, seed in group]
        resume = (folders[0] / "checkpoint.pt").is_file()
        print(f"{'resuming' if resume else 'training'} {len(group)} runs as one pack: "
              f"{', '.join(str(f) for f in folders)}", flush=True)
        train.train_runs(cfgs, setup.data, folders, device=setup.device, resume=resume, progress=progress,
                         graphs=setup.graphs)


def reproduce(target: str, setup: Setup, seeds: int, iters_per_epoch: int | None = None,
              progress: bool = True, pretrained: str | None = None, pack: str = "off") -> list[dict]:
    """Every implemented row of the target at seeds 0..seeds-1 (rows not implemented are only listed).
    OUT/reproduce.json (what was asked) is written first, so an interrupted run can still be reported.
    pretrained: "add" also scores the port's pretrained generators (Tables 2/3), "only" scores only them."""
    runs = planned_runs(target, setup, seeds, iters_per_epoch, pretrained)
    if pack != "off":
        train_packs(runs, setup, iters_per_epoch, pack, progress)
    results = [run_pretrained(setup, progress)] if pretrained and any(t in PRETRAINED.tables for t in TARGETS[target]) else []
    results += [run_row(row, seed, setup, iters_per_epoch, progress) for row, seed in runs]
    return results + (run_bounds(setup, seeds, progress) if pretrained != "only" else [])


def run_bounds(setup: Setup, seeds: int, progress: bool = True) -> list[dict]:
    """The floor and ceiling rows of every table (repro.bounds): nothing to train, scored like every row."""
    from repro import bounds

    print("scoring the floor and ceiling rows (ground truth, untrained generator, constant output)", flush=True)
    return bounds.run_bounds(setup, seeds, progress)


def planned_runs(target: str, setup: Setup, seeds: int, iters_per_epoch: int | None = None,
                 pretrained: str | None = None) -> list[tuple[Row, int]]:
    """Writes OUT/reproduce.json (what was asked); returns the (row, seed) runs to do, listing rows not implemented."""
    from repro.io import write_json
    from repro.verdicts import stored_path

    plan = {"target": target, "tables": list(TARGETS[target]), "scale": setup.scale, "seeds": seeds,
            "iters_per_epoch": iters_per_epoch, "settings": setup.settings, "pretrained": pretrained}
    plan |= {key: stored_path(getattr(setup, key), setup.out) for key in ("segmenter", "cityscapes", "data")}
    write_json(setup.out / "reproduce.json", plan)
    runs = []
    for row in (rows_for(target) if pretrained != "only" else []):
        if not is_implemented(row, setup.scale):
            print(f"{row.label}: not implemented at scale {setup.scale} (no config {config_name(row, setup.scale)}.toml)")
            continue
        runs += [(row, seed) for seed in range(seeds)]
    return runs


REPRODUCE_DISK_FULL_FIX = ("Free some space there (or choose another --out) and run the same `repro reproduce` command "
                           "again: finished runs and scores are kept, and each unfinished run resumes from its last "
                           "checkpoint, or starts over if it had none.")


def run_reproduce(args: argparse.Namespace) -> int:
    if args.target in FID_TARGETS:
        from repro import reproduce_fid
        return reproduce_fid.run(args)
    started = time.time()
    settings = parse_settings(args.set)  # checked before any work
    from repro.launch import check_arguments
    check_arguments(args)  # --launcher and its options, likewise
    args.out = Path(args.out) if args.out else Path(f"reproductions/{args.target}-{args.scale}")
    pretrained = "only" if args.pretrained_only else "add" if args.pretrained else None
    if pretrained and not any(t in PRETRAINED.tables for t in TARGETS[args.target]):
        raise ReproError(f"--pretrained adds a row to Tables 2 and 3; {args.target} has none of them.")
    rows = rows_for(args.target) if pretrained != "only" and not args.bounds_only else []
    seeds = args.seeds or DEFAULT_SEEDS[args.scale]
    plans = []  # the training estimate's job layout
    if args.scale == "paper":
        setup = paper_setup(args, rows, plans)
        if not (setup.data / "manifest.json").is_file():
            from repro.data import cityscapes as prep
            prep.prepare(setup.cityscapes, setup.cityscapes, setup.data, size=256)
    else:
        device = str(pick_device(args.device))
        seconds, text = estimate_for(args, rows, "smoke", seeds, device, SMOKE_CITY["n_train"], plans)
        print(f"estimated training time: {format_duration(seconds)}, {text}", flush=True)
        setup = smoke_setup(args, progress=not args.quiet)
    setup.settings, setup.graphs = settings, args.graphs
    work_started, expected = time.time(), None
    if plans and plans[0].durations:  # now that the val set and the segmenter are there: their part, timed
        per_run = evaluation_seconds(setup, row_config(rows[0], setup.scale, 0, args.iters_per_epoch, settings))
        expected = plans[0].with_evaluation(per_run)
        print(f"estimated from here: {format_duration(expected)} (training {format_duration(plans[0].seconds)}; "
              f"translation and scoring {format_duration(per_run)} per run, measured now on 3 val frames)", flush=True)
    failed = None
    if args.bounds_only:  # nothing to train: the plan (for the report) and the floor and ceiling rows
        planned_runs(args.target, setup, seeds, args.iters_per_epoch, pretrained)
        run_bounds(setup, seeds, not args.quiet)
    elif args.launcher is None:
        try:
            reproduce(args.target, setup, seeds, args.iters_per_epoch, progress=not args.quiet, pretrained=pretrained,
                      pack=args.pack)
        except DiskFull as err:  # the fix of a bare `repro train` (its --resume, its checkpoint) is not this command's
            err.fix = REPRODUCE_DISK_FULL_FIX
            raise
    else:  # every run a job (repro.launch); the pretrained row (translation and scoring only) here
        from repro import launch
        if pretrained:
            run_pretrained(setup, not args.quiet)
        runs = planned_runs(args.target, setup, seeds, args.iters_per_epoch, pretrained)
        if pretrained != "only":
            run_bounds(setup, seeds, not args.quiet)  # cheap: scored here, not as jobs
        outcome = launch.launch_reproduction(args, setup, runs)
        if outcome.pending:
            return 0  # --no-wait: a rerun of the same command collects the jobs and writes the report
        failed = outcome.error()
    from repro import report  # imported late: a long run writes its report with the current code
    from repro.verdicts import default_ranges

    ranges = args.ranges or default_ranges(args.scale, args.iters_per_epoch)
    report.write_report(setup.out, TARGETS[args.target], ranges=ranges)
    if expected is not None:
        print(f"estimated {format_duration(expected)}, measured {format_duration(time.time() - work_started)} "
              f"(training, translation and scoring; the whole command with its set-up: "
              f"{format_duration(time.time() - started)}; docs/estimates.md)", flush=True)
    if failed:
        raise failed
    return 0


def pack_option(text: str) -> str:
    if text in ("off", "auto") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: off, auto or a number of runs (1 or more)")


def add_commands(commands) -> None:
    from repro.cli import add_device, add_quiet, positive_int

    p = commands.add("reproduce")
    p.description = __doc__
    p.add_argument("target", choices=(*TARGETS, *FID_TARGETS),
                   help="table2/table3 (same rows), table4/table5 (same rows), all; horse2zebra: FID/KID against the "
                        "published figures; fid --dataset NAME: the same for another CycleGAN dataset")
    p.add_argument("--scale", choices=("paper", "smoke"), default="smoke",
                   help="paper: repro/configs/cityscapes on Cityscapes (GPU); smoke: synthetic city on the CPU")
    p.add_argument("--seeds", type=positive_int, help=f"seeds 0..N-1 per row (default by scale: {DEFAULT_SEEDS})")
    p.add_argument("--out", type=Path, help="output folder (default: reproductions/TARGET-SCALE)")
    p.add_argument("--data", type=Path, help="prepared dataset (paper: 256x256, prepared from --cityscapes if missing; "
                                             "smoke: default OUT/data)")
    p.add_argument("--cityscapes", type=Path, help="raw Cityscapes root with gtFine/ and leftImg8bit/ "
                                                   "(smoke: default OUT/synth-city, generated)")
    p.add_argument("--segmenter", type=Path, help="FCN-8s .pt (paper: required; smoke: default OUT/segmenter.pt, trained)")
    p.add_argument("--iters-per-epoch", type=positive_int, help="override every row's iterations per epoch (reduced runs)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field in every row (repeatable, TOML values); recorded in each run's "
                        "config.toml and in reproduce.json")
    p.add_argument("--ranges", type=Path, help="accepted ranges for the verdicts (default: expected/ranges_SCALE.toml; "
                                               "horse2zebra/fid: expected/ranges_fid_SCALE.toml)")
    p.add_argument("--dataset", help="fid: the Berkeley CycleGAN dataset to train and score (e.g. apple2orange)")
    p.add_argument("--url", help="horse2zebra/fid: fetch the dataset archive from this URL (a mirror) through "
                                 "`repro data get`'s verified download")
    p.add_argument("--fid-weights", type=Path, help="horse2zebra/fid: pytorch-fid's Inception weights file (default: "
                                                    "the torch hub cache, fetched once)")
    p.add_argument("--clean-fid-network", type=Path, help="horse2zebra/fid: a local inception-2015-12-05.pt (clean-fid's "
                                                          "TorchScript Inception): adds clean-fid's own clean-mode FID column")
    add_device(p)
    p.add_argument("--allow-cpu", action="store_true", help="run a paper-scale reproduction on the CPU anyway (days)")
    p.add_argument("--pretrained", action="store_true",
                   help="also score the official port's pretrained cityscapes_label2photo / cityscapes_photo2label "
                        "(downloaded into OUT/pretrained; REPRO_PRETRAINED_URL names a mirror) as a row of Tables 2/3")
    p.add_argument("--pretrained-only", action="store_true", help="score only that row (nothing is trained)")
    p.add_argument("--bounds-only", action="store_true",
                   help="score only the floor and ceiling rows (ground truth, untrained generator per seed, constant "
                        "output; nothing is trained, see repro.bounds)")
    p.add_argument("--pack", type=pack_option, default="off",
                   help="train runs that differ only in seed and loss weights (CycleGAN and its ablations) as one "
                        "vectorised step: off, a number of runs per pack, or auto (from the GPU's free memory; 10 on "
                        "the CPU; measured on this machine's device, so with --launcher slurm give N). Each run keeps "
                        "its own folder, generator, pools, log and checkpoint; results equal runs trained alone to "
                        "float tolerance. With --launcher, each pack is one job")
    p.add_argument("--graphs", choices=("auto", "off"), default="auto",
                   help="auto: CycleGAN and its ablations train with the step captured as one CUDA graph on CUDA "
                        "(packs too; uncaptured on the CPU, where it equals the eager step bit for bit); off: the "
                        "eager step. Recorded in each run.json (graphs, cuda_graphs)")
    add_quiet(p)
    from repro.launch import add_launcher_arguments
    add_launcher_arguments(p)
    p.set_defaults(func=run_reproduce)
