"""`repro reproduce horse2zebra` and `repro reproduce fid --dataset NAME`: the FIDs later papers cite.

For each seed: train the shipped horse2zebra config (repro/configs/horse2zebra.toml; smoke:
repro/configs/smoke/horse2zebra.toml) on NAME's trainA/trainB, translate testA -> B and testB -> A at the
config's crop size as PNG, and score each direction against the real test images of the target domain under
every FID protocol of repro.eval.fid_protocols (pytorch-fid's, clean-fid's clean resize) and KID. Then the
report (repro.fidtable): ours as mean +- std over seeds, the port's pretrained generators (`--pretrained`),
and for horse2zebra the published figures (expected/fid_published.toml) as reference rows.

    OUT/fid-reproduce.json          what was asked (dataset, scale, seeds, Inception weights)
    OUT/seed-K/run/                 the training run
    OUT/seed-K/A2B/, OUT/seed-K/B2A/ translations of testA and testB (PNG)
    OUT/seed-K/result.json          both directions' scores + config
    OUT/port_pretrained/            the port's pretrained generators' translations and result.json
    OUT/report.md, OUT/fid-table.json

Scales: `paper` needs the dataset (`repro data get NAME`, or --data DIR) and stops before any work, naming
what is missing and the estimated duration. `smoke` writes the synthetic horse2zebra archive
(repro.data.synth_pairs) into OUT/synthetic/ and fetches it through `repro data get`'s code (from --url when
given, e.g. a local server, else imported from the file), so the whole path runs on the CPU in minutes.
Other Berkeley CycleGAN datasets: `repro reproduce fid --dataset NAME` (the same config, numbers without
published references).
"""

import argparse
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repro import ReproError, train
from repro.config import Config, load_config
from repro.io import atomic_folder

DEFAULT_SEEDS = {"paper": 5, "smoke": 2}
# One epoch is max(|trainA|, |trainB|) iterations at batch 1; the counts of the Berkeley archive, for the
# estimate before the data is there (horse2zebra: 1067 horses, 1334 zebras).
TRAIN_IMAGES = {"horse2zebra": 1334}
# The port's published generators per direction (repro.pretrained.NAMES).
PRETRAINED = {"horse2zebra": {"A2B": "horse2zebra", "B2A": "zebra2horse"},
              "apple2orange": {"A2B": "apple2orange", "B2A": "orange2apple"},
              "summer2winter_yosemite": {"A2B": "summer2winter_yosemite", "B2A": "winter2summer_yosemite"}}
PLAN = "fid-reproduce.json"


@dataclass(frozen=True)
class Direction:
    key: str         # "A2B": testA translated, scored against testB
    translator: str  # the config's G ("x2y": X = trainA) or F ("y2x")
    inputs: str      # the test folder translated
    real: str        # the real test folder of the target domain


DIRECTIONS = (Direction("A2B", "x2y", "testA", "testB"), Direction("B2A", "y2x", "testB", "testA"))


@dataclass
class FIDSetup:
    dataset: str
    scale: str
    out: Path
    data: Path      # NAME/ with trainA, trainB, testA, testB
    device: str
    weights: Path   # pytorch-fid's Inception weights
    settings: dict = field(default_factory=dict)
    clean_fid_network: object = None  # clean-fid's TorchScript Inception when --clean-fid-network is given


def config_for(setup: FIDSetup, seed: int) -> Config:
    name = "horse2zebra" if setup.scale == "paper" else "smoke/horse2zebra"
    overrides = setup.settings | {"seed": seed}
    if setup.dataset != "horse2zebra":
        overrides["name"] = setup.dataset
    return load_config(name, **overrides)


def check_dataset(name: str) -> None:
    from repro.data import registry

    entry = registry.lookup(name)
    if entry.kind != "cyclegan":
        raise ReproError(f"--dataset {name} is a pix2pix archive (aligned pairs); FID reproductions take the "
                         f"unpaired CycleGAN datasets: {', '.join(n for n, e in registry.load().items() if e.kind == 'cyclegan')}.")


def missing_folders(data: Path) -> list[str]:
    return [d for d in ("trainA", "trainB", "testA", "testB") if not (Path(data) / d).is_dir()]


# ------------------------------------------------------------------------------ prerequisites


def paper_setup(args, dataset: str, seeds: int, settings: dict) -> FIDSetup:
    """Checks everything a paper-scale run needs; raises one ReproError listing every fix and the duration."""
    from repro.device import pick_device
    from repro.eval import fid
    from repro.estimate import format_duration, time_step, total_iterations

    device = str(pick_device(args.device))
    data = Path(args.data) if args.data else Path("datasets") / dataset
    problems = []
    missing = missing_folders(data)
    if missing:
        problems.append(f"the {dataset} dataset is missing ({data} has no {', '.join(missing)}). Fetch and verify it with\n"
                        f"      repro data get {dataset} --root {data.parent}\n"
                        f"    or pass --data DIR (a folder holding trainA, trainB, testA, testB)")
    weights = None
    try:
        weights = fid.weights_path(args.fid_weights)
    except ReproError as err:
        problems.append(f"the FID Inception weights are missing: "
                        f"{str(err).replace('--weights PATH (weights=PATH in Python)', '--fid-weights PATH')}")
    cfg = load_config("horse2zebra", **(settings | {"seed": 0}))
    pairs = (max(len(os.listdir(data / "trainA")), len(os.listdir(data / "trainB"))) if not missing
             else TRAIN_IMAGES.get(dataset))
    per_iter = time_step((cfg,), device, min_steps=1, min_seconds=0.0)  # one timed step after a warm-up
    if pairs:
        seconds = per_iter * total_iterations(cfg, pairs) * seeds
        text = (f"{per_iter * 1000:.0f} ms per iteration on {device} (measured now, {cfg.crop_size}x{cfg.crop_size}) x "
                f"{total_iterations(cfg, pairs):,} iterations x {seeds} seed(s) = {format_duration(seconds)} of training "
                f"(translation and scoring come on top)")
    else:
        seconds, text = None, (f"{per_iter * 1000:.0f} ms per iteration on {device} (measured now); the number of "
                               f"iterations needs the dataset's size")
    if device == "cpu" and not args.allow_cpu and seeds > 0:  # the pretrained row alone is cheap
        problems.append(f"no GPU: a paper-scale run on this CPU would take about "
                        f"{format_duration(seconds) if seconds else 'days'}. Run it on a machine with a CUDA GPU, "
                        f"or pass --allow-cpu.")
    if problems:
        raise ReproError(f"cannot start the paper-scale {dataset} FID reproduction:\n  - " + "\n  - ".join(problems) +
                         f"\n  Estimated duration on {device}: {format_duration(seconds) if seconds else 'unknown'} ({text}).")
    print(f"estimated duration: {text}", flush=True)
    return FIDSetup(dataset, "paper", Path(args.out), data, device, weights, settings)


def smoke_setup(args, dataset: str, settings: dict, progress: bool = True) -> FIDSetup:
    """The synthetic archive (OUT/synthetic/NAME.zip), fetched through the real download code into OUT/datasets
    (from --url when given, else imported from the file), verified against the archive's own sha256."""
    from repro.data import download, synth_pairs
    from repro.device import pick_device
    from repro.eval import fid
    from repro.io import sha256_file

    out = Path(args.out)
    if args.data:
        data = Path(args.data)
    else:
        archive = synth_pairs.archive(out / "synthetic" / f"{dataset}.zip", name=dataset)
        data = download.get(dataset, out / "datasets", url=args.url, from_file=None if args.url else archive,
                            sha256=sha256_file(archive), progress=progress)
    if missing_folders(data):
        raise ReproError(f"{data} has no {', '.join(missing_folders(data))}: give --data a folder holding trainA, "
                         f"trainB, testA, testB.")
    return FIDSetup(dataset, "smoke", out, data, str(pick_device(args.device)), fid.weights_path(args.fid_weights),
                    settings)


# ------------------------------------------------------------------------------ scoring


def real_features(setup: FIDSetup, model) -> dict:
    """direction -> protocol -> features of the real test images of the direction's target domain."""
    from repro.eval import fid_protocols

    return {d.key: fid_protocols.folder_features(model, setup.data / d.real, setup.device,
                                                 clean_fid_network=setup.clean_fid_network) for d in DIRECTIONS}


def score_folder(setup: FIDSetup, model, fake: Path, real: dict) -> dict:
    from repro.eval import fid_protocols

    return fid_protocols.score(fid_protocols.folder_features(model, fake, setup.device,
                                                             clean_fid_network=setup.clean_fid_network), real)


def run_seed(setup: FIDSetup, seed: int, model, real: dict, scoring: dict, progress: bool = True) -> dict:
    """Trains (or resumes, or reuses) seed K, translates both test folders and scores them; OUT/seed-K/result.json."""
    from repro.checkpoint import check_data, is_finished, run_config
    from repro.done import is_current
    from repro.io import read_json_or_empty, write_json
    from repro.reproduce.pipeline import translate

    cfg = config_for(setup, seed)
    folder = setup.out / f"seed-{seed}"
    run = folder / "run"
    if (run / "config.toml").is_file() and asdict(run_config(run)) != asdict(cfg):
        raise ReproError(f"{run} holds a run of another config (seed {seed}, --set {setup.settings}); use another "
                         f"--out, or delete {folder}.")
    started = time.time()
    if is_finished(run):
        check_data(run, setup.data, cfg)  # a finished run of other training images is refused, never reused
    else:
        resume = (run / "checkpoint.pt").is_file()
        print(f"{'resuming' if resume else 'training'} {setup.dataset} seed {seed} in {run}", flush=True)
        train.train(cfg, setup.data, run, device=setup.device, resume=resume, progress=progress)
    fresh = [translate(run, d.translator, setup.data / d.inputs, folder / d.key, setup.device, progress)
             for d in DIRECTIONS]
    done = read_json_or_empty(folder / "result.json")
    if not any(fresh) and is_current(done, {"config": asdict(cfg), "scoring": scoring}, str(folder / "result.json")):
        return done
    result = {"row": "ours", "seed": seed, "dataset": setup.dataset, "scale": setup.scale, "config": asdict(cfg),
              "scoring": scoring,
              "directions": {d.key: score_folder(setup, model, folder / d.key, real[d.key]) for d in DIRECTIONS},
              "wall_seconds": round(time.time() - started, 1)}
    write_json(folder / "result.json", result)
    return result


def run_pretrained(setup: FIDSetup, model, real: dict, scoring: dict, progress: bool = True) -> dict:
    """The official port's pretrained generators for both directions (repro.pretrained: fetched into
    OUT/pretrained/, run as the port's test.py runs them), scored by the same code; OUT/port_pretrained/result.json."""
    from repro import pretrained
    from repro.io import sha256_file, write_json

    if setup.dataset not in PRETRAINED:
        raise ReproError(f"--pretrained: the port publishes no generators for {setup.dataset} "
                         f"(it does for {', '.join(PRETRAINED)}).")
    names = PRETRAINED[setup.dataset]
    folder = setup.out / "port_pretrained"
    models, directions = {}, {}
    for d in DIRECTIONS:
        path = pretrained.get(names[d.key], setup.out / "pretrained", progress=progress)
        models[d.key] = {"name": names[d.key], "file": str(path), "sha256": sha256_file(path),
                         "url": pretrained.url_for(names[d.key])}
        out = folder / d.key
        with atomic_folder(out) as tmp:
            pretrained.translate_as_port(path, setup.data / d.inputs, tmp, setup.device, progress)
        directions[d.key] = score_folder(setup, model, out, real[d.key])
    result = {"row": "port_pretrained", "dataset": setup.dataset, "scale": setup.scale, "models": models,
              "translation": {"arch": pretrained.ARCH, "norm": pretrained.NORM, "size": pretrained.SIZE,
                              "resize_filter": pretrained.RESIZE_FILTER},
              "scoring": scoring, "directions": directions}
    write_json(folder / "result.json", result)
    return result


# ------------------------------------------------------------------------------ the command


def run(args: argparse.Namespace) -> int:
    from repro import fidtable
    from repro.config import parse_settings
    from repro.eval import fid, fid_protocols
    from repro.io import sha256_file, write_json
    from repro.layout import stored_path

    settings = parse_settings(args.set)
    if args.launcher is not None or args.pack != "off" or args.iters_per_epoch:
        raise ReproError(f"`repro reproduce {args.target}` trains its seeds one by one here: --launcher, --pack and "
                         f"--iters-per-epoch are for the Cityscapes tables (use --set iters_per_epoch=N instead).")
    if args.target == "fid" and not args.dataset:
        raise ReproError("`repro reproduce fid` needs --dataset NAME (a Berkeley CycleGAN dataset, e.g. apple2orange).")
    dataset = args.dataset or "horse2zebra"
    if args.target == "horse2zebra" and dataset != "horse2zebra":
        raise ReproError(f"`repro reproduce horse2zebra` is for horse2zebra; use `repro reproduce fid --dataset {dataset}`.")
    check_dataset(dataset)
    if (args.pretrained or args.pretrained_only) and dataset not in PRETRAINED:
        raise ReproError(f"--pretrained: the port publishes no generators for {dataset} (it does for "
                         f"{', '.join(PRETRAINED)}).")
    if args.clean_fid_network is not None and (args.clean_fid_network.name != fid_protocols.CLEAN_FID_FILE
                                               or not args.clean_fid_network.is_file()):
        fid_protocols.load_clean_fid_network(args.clean_fid_network)  # raises, naming the file expected
    args.out = Path(args.out) if args.out else Path(f"reproductions/{dataset}-fid-{args.scale}")
    seeds = args.seeds or DEFAULT_SEEDS[args.scale]
    progress = not args.quiet
    if args.scale == "paper":
        setup = paper_setup(args, dataset, seeds if not args.pretrained_only else 0, settings)
    else:
        setup = smoke_setup(args, dataset, settings, progress)
    model = fid.load_inception(setup.weights, setup.device)
    scoring = {"weights_sha256": sha256_file(setup.weights), "clean_fid_network_sha256": None}
    if args.clean_fid_network:
        setup.clean_fid_network = fid_protocols.load_clean_fid_network(args.clean_fid_network, setup.device)
        scoring["clean_fid_network_sha256"] = sha256_file(args.clean_fid_network)
    write_json(setup.out / PLAN, {
        "target": args.target, "dataset": dataset, "scale": setup.scale, "seeds": 0 if args.pretrained_only else seeds,
        "pretrained": bool(args.pretrained or args.pretrained_only), "settings": settings,
        "data": stored_path(setup.data, setup.out), "weights": {"path": str(setup.weights), "sha256": scoring["weights_sha256"]},
        "clean_fid_network": {"path": str(args.clean_fid_network), "sha256": scoring["clean_fid_network_sha256"]}
        if args.clean_fid_network else None})
    real = real_features(setup, model)
    if args.pretrained or args.pretrained_only:
        run_pretrained(setup, model, real, scoring, progress)
    for seed in range(0 if args.pretrained_only else seeds):
        run_seed(setup, seed, model, real, scoring, progress)
    path = fidtable.write_report(setup.out, ranges=args.ranges)
    print(f"wrote {path}")
    return 0
