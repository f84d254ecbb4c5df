"""Planning a reproduction, before any run starts: where everything is (Setup, the smoke set-up made if
missing, the paper set-up checked), which (row, seed) runs to do, which are finished already, which share a pack,
and how long the training will take (repro.estimate)."""

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from repro import ReproError, layout
from repro.checkpoint import is_finished, saved_step, settle_pack_checkpoint
from repro.methods import METHODS, PACKING
from repro.device import pick_device
from repro.config import Config, load_config, parse_settings
from repro.done import is_current
from repro.estimate import format_duration, pack_chunks
from repro.io import read_json_or_empty
from repro.rows import DEFAULT_SEEDS, ROWS, SCALES, TARGETS, Row, config_name, is_implemented, row_config

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
             jobs: int = 1, threads: int | None = None, plan_out: list | None = None,
             slots: int = 1) -> tuple[float, str]:
    """(seconds, explanation) of the training ahead (repro.estimate): every implemented row at seeds 0..seeds-1
    with the --set settings and --iters-per-epoch, packed as --pack packs (spread over `slots` job slots
    as pack_groups does), each kind of step timed now as training will run it (on `device`, `threads` torch threads
    on the CPU), `jobs` jobs at once."""
    from repro.estimate import plan, time_step, training_jobs

    cfgs = [row_config(r, scale, seed, iters_per_epoch, settings) for r in rows if is_implemented(r, scale)
            for seed in range(seeds)]
    if not cfgs:
        return 0.0, "no implemented rows"
    todo = training_jobs(cfgs, train_pairs, pack, lambda c: METHODS[c.method].can(PACKING), slots)
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
    in args.launch_options (repro.reproduce.launcher.Options: --jobs and threads per job), else one run at a time at
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
                    plan_out, pack_slots(pack_arg, getattr(args, "launch_options", None)))


def pack_slots(pack: str, opts) -> int:
    """The job slots `--pack auto` spreads each pack group over (repro.estimate.pack_chunks): a launcher's --jobs
    (local: 1 unless given; SLURM without --jobs: 1, every job runs at once anyway); a number or off: 1."""
    return (getattr(opts, "jobs", None) or 1) if pack == "auto" else 1


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

    kept = calibration.read(segmenter, sha256_file(segmenter), say_stale=True)
    if kept is not None:
        return kept
    result = seg.calibrate(segmenter, cityscapes, device, workers=0 if device == "cpu" else None, progress=progress)
    write_json(calibration.calibration_file(segmenter), result)
    return result


# ------------------------------------------------------------------------------ the runs to do


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


def manifest_sha256(data: Path) -> str | None:
    """The prepared dataset's manifest.json hash (None where it has none)."""
    from repro.io import sha256_file

    manifest = Path(data) / "manifest.json"
    return sha256_file(manifest) if manifest.is_file() else None


def result_key(setup: Setup) -> dict:
    """What every scored row's result.json records of its inputs besides its own (repro.done): the segmenter, the
    prepared data's manifest and the protocol version of each direction's scoring."""
    from repro.eval.results import PROTOCOL_VERSIONS
    from repro.io import sha256_file

    return {"provenance.segmenter.sha256": sha256_file(setup.segmenter),
            "provenance.dataset_manifest_sha256": manifest_sha256(setup.data), "protocol_versions": PROTOCOL_VERSIONS}


def finished_result(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None,
                    say_stale: bool = False) -> dict | None:
    """The run's result.json when it was made from this config and the inputs of result_key (nothing to redo),
    else None. `say_stale`: say why a kept result.json is redone."""
    path = layout.result_file(setup.out, row.key, seed)
    cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
    done, key = read_json_or_empty(path), {"config": asdict(cfg)} | result_key(setup)
    return done if is_current(done, key, str(path) if say_stale else None) else None


# ------------------------------------------------------------------------------ packs


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
                pack: str, slots: int = 1) -> list[list[tuple[Row, int]]]:
    """The runs that can share one vectorised step (repro.methods.packing: a method with packing, configs that
    differ only in seed and loss weights, the same starting point), in packs of two to `--pack` runs (spread
    over `slots`, pack_slots). Runs finished, alone or of other methods are in no pack: run_row trains them one
    by one."""
    from repro.methods.packing import PACKABLE

    groups: dict[tuple, list[tuple[Row, int]]] = {}
    for row, seed in runs:
        cfg = row_config(row, setup.scale, seed, iters_per_epoch, setup.settings)
        run = layout.run_folder(setup.out, row.key, seed)
        if not METHODS[cfg.method].can(PACKING) or is_finished(run) or finished_result(row, seed, setup, iters_per_epoch):
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
        packs += [chunk for chunk in pack_chunks(members, size, slots) if len(chunk) > 1]
    return packs
