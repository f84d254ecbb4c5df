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

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from repro import ReproError, layout, train
from repro.checkpoint import is_finished, run_config, saved_step, settle_pack_checkpoint
from repro.methods import METHODS
from repro.device import pick_device
from repro.config import Config, load_config, parse_settings
from repro.done import is_current
from repro.estimate import format_duration
from repro.io import atomic_folder, read_json_or_empty
from repro.rows import (CEILING, DEFAULT_SEEDS, FLOORS, PRETRAINED, PRETRAINED_NOTE, ROWS, SCALES, TARGETS, Row,
                        config_name, is_implemented, row_config)
REPO_ROOT = Path(__file__).resolve().parents[1]

# The smoke segmenter: a small FCN-8s (1/16 of VGG16's widths) trained on the synthetic city's train split.
SMOKE_CITY = dict(n_train=200, n_val=50, size=(256, 128), seed=0)
SMOKE_PREPARED_SIZE = 128  # the prepared smoke data: 128x128 pairs (each config resizes them to its load_size)
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
                labels2photo.score_frames(frames, model, device, workers=0, progress=False)
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
    """(jobs at once, torch threads per run) as the command will train: the checked job options the command put
    in args.launch_options (repro.launch.Options: --jobs and threads per job), else one run at a time at
    repro.device's thread count."""
    opts = getattr(args, "launch_options", None)
    if opts is None:
        return 1, None
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
    city, data, segmenter = layout.smoke_inputs(out, args.cityscapes, args.data, args.segmenter)
    if args.cityscapes is None:
        synth_city.generate(city, progress=progress, **SMOKE_CITY)
    if not (data / "manifest.json").is_file():
        prep.prepare(city, city, data, size=SMOKE_PREPARED_SIZE, progress=progress)
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
    net, size, resize_filter = generator_from_run(run, direction, device)
    with atomic_folder(out) as tmp:
        translate_folder(net, inputs, tmp, size, resize_filter, device, progress=progress, direction=direction,
                         source=str(run))
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
        train.train(cfg, setup.data, run, device=setup.device, resume=resume, progress=progress, graphs=setup.graphs)
    scores = {}
    for direction, inputs in (("labels2photo", cfg.x_test), ("photo2labels", cfg.y_test)):
        fresh = translate(run, direction, setup.data / inputs, layout.translations(folder, direction), setup.device,
                          progress)
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

    path, translated = layout.scores_file(folder, direction), layout.translations(folder, direction)
    key = {"segmenter.sha256": seg_sha} if direction == "labels2photo" else {}  # photo2labels: no model involved
    if fresh or not is_current(read_json_or_empty(path), key):
        if direction == "labels2photo":
            res = labels2photo.evaluate(translated, setup.cityscapes, setup.segmenter, "pix2pix",
                                        setup.device, workers=0 if setup.device == "cpu" else None, progress=progress)
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
            pretrained.translate_as_port(files[direction], setup.data / inputs, tmp, setup.device, progress, direction)
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
        run = layout.run_folder(setup.out, row.key, seed)
        if METHODS[cfg.method].build_packed is None or is_finished(run) or finished_result(row, seed, setup, iters_per_epoch):
            continue
        settle_pack_checkpoint(run)  # a pack's checkpoint a kill interrupted: finished or dropped
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


# ------------------------------------------------------------------------------ floor and ceiling rows


def run_bound(row: Row, seed: int, setup, progress: bool = True) -> dict:
    """Makes and scores one bound row's outputs at one seed; writes OUT/ROW/seed-K/result.json (reused when it
    was made the same way with the same segmenter)."""
    from repro import bounds
    from repro.io import sha256_file, write_json
    from repro.rows import ROW_BY_KEY
    from repro.translate import translate_folder

    cfg = row_config(ROW_BY_KEY[bounds.CONFIG_ROW], setup.scale, seed if row.key == bounds.UNTRAINED.key else 0,
                     settings=setup.settings)
    folder = layout.row_folder(setup.out, row.key, seed)
    result_path = layout.result_file(setup.out, row.key, seed)
    seg_sha = sha256_file(setup.segmenter)
    nets, made_by = bounds.translators(row, cfg, setup)
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("made_by") == json.loads(json.dumps(made_by)) and done["provenance"]["segmenter"]["sha256"] == seg_sha:
            return done
    started = time.time()
    scores = {}
    for direction, (net, inputs) in nets.items():
        with atomic_folder(layout.translations(folder, direction)) as tmp:
            translate_folder(net.to(setup.device), inputs, tmp, cfg.crop_size, cfg.resize_filter, setup.device,
                             progress=progress, direction=direction, source=f"{row.key} (repro.bounds)")
        scores[direction] = score_direction(folder, direction, setup, seg_sha, True, progress)
    result = {"row": row.key, "label": row.label, "tables": list(row.tables), "seed": seed, "scale": setup.scale,
              "config": None, "made_by": made_by, **scored(scores),
              "provenance": provenance(cfg, setup, seg_sha, calibrate(setup.segmenter, setup.cityscapes, setup.device),
                                       folder),
              "wall_seconds": round(time.time() - started, 1)}
    write_json(result_path, result)
    return result


def run_bounds(setup: Setup, seeds: int, progress: bool = True) -> list[dict]:
    """The floor and ceiling rows of every table (repro.bounds): nothing to train, scored like every row; the
    untrained generator at each seed, the others once (seed 0)."""
    print("scoring the floor and ceiling rows (ground truth, untrained generator, constant output)", flush=True)
    from repro import bounds

    return [run_bound(row, seed, setup, progress)
            for row in (CEILING, *FLOORS) for seed in (range(seeds) if row.key == bounds.UNTRAINED.key else (0,))]



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


REPRODUCE_DISK_FULL_FIX = ("Free some space there (or choose another --out) and run the same `repro reproduce` command "
                           "again: finished runs and scores are kept, and each unfinished run resumes from its last "
                           "checkpoint, or starts over if it had none.")


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
    running = launch.running_groups(setup, todo, opts.launcher)  # left to their jobs: nothing here reads or writes their runs
    busy = {run for group in running for run in group}
    free = [(row, seed) for row, seed in todo if (row.key, seed) not in busy]
    packs = pack_groups(free, setup, iters_per_epoch, opts.pack) if opts.pack != "off" else []
    packed = {(row.key, seed) for group in packs for row, seed in group}
    groups = running + [[(row.key, seed) for row, seed in group] for group in packs]  # first: the longest jobs
    groups += [[(row.key, seed)] for row, seed in free if (row.key, seed) not in packed]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; {len(todo)} to do as {len(groups)} "
          f"{opts.launcher} job(s)" + (f", {len(packs)} of them packs of {'/'.join(str(len(g)) for g in packs)} runs"
                                       if packs else ""), flush=True)
    outcome = launch.launch(groups, setup, iters_per_epoch, opts, run_job)
    if outcome.pending:
        print(f"{len(outcome.submitted)} job(s) submitted, {len(outcome.adopted)} still running from before: "
              f"rerun this same command to collect them and write the report", flush=True)
    return outcome
