"""One row at one seed, from its config to its result.json: train (or reuse a finished run, resume an interrupted
one), translate the val set in both directions, score both, and write the result with its provenance; likewise
the floor and ceiling rows (run_bound), the port's pretrained row (run_pretrained), a pack trained first
(train_packs), and one launcher job (run_job, the work function repro.reproduce hands the launcher)."""

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import torch

from repro import ReproError, layout, train
from repro.checkpoint import check_data, is_finished, run_config
from repro.config import Config
from repro.done import is_current
from repro.io import atomic_folder, read_json_or_empty
from repro.reproduce.plan import Setup, calibrate, finished_result, manifest_sha256, pack_groups, result_key
from repro.rows import CEILING, FLOORS, PRETRAINED, PRETRAINED_NOTE, ROWS, Row, config_name, row_config

REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ one row, one seed


def provenance(cfg: Config | None, setup: Setup, seg_sha: str, calibration: dict, run: Path) -> dict:
    """Where a result came from; cfg is None for a row that trains nothing (the pretrained one)."""
    import numpy
    import PIL
    import torchvision

    from repro.eval.calibration import summary

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    run_info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    device = torch.device(setup.device)
    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "config": asdict(cfg) if cfg else None,
        "seed": cfg.seed if cfg else 0,
        "scale": setup.scale,
        "data": str(setup.data),
        "dataset_manifest_sha256": manifest_sha256(setup.data),
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
    """Translates every input into `out` (written to a temp folder first) unless its translation.json records the
    same inputs (repro.done): the run's checkpoint and the input images. Returns whether it translated (scores of
    an earlier translation are then stale)."""
    from repro import translations
    from repro.data.loaders import list_images
    from repro.io import listing_sha256, sha256_file
    from repro.translate import generator_from_run, translate_folder

    files = list_images(inputs)
    made_from = {"checkpoint_sha256": sha256_file(run / "checkpoint.pt"), "inputs_sha256": listing_sha256(files),
                 "images": len(files)}
    key = {"direction": translations.NAMES.get(direction, direction),
           **{f"made_from.{k}": v for k, v in made_from.items()}}
    if is_current(read_json_or_empty(out / translations.MANIFEST), key, str(out / translations.MANIFEST)):
        return False
    net, size, resize_filter = generator_from_run(run, direction, device)
    with atomic_folder(out) as tmp:
        translate_folder(net, inputs, tmp, size, resize_filter, device, progress=progress, direction=direction,
                         source=str(run), made_from=made_from)
    return True


def run_row(row: Row, seed: int, setup: Setup, iters_per_epoch: int | None = None, progress: bool = True) -> dict:
    """Trains, translates and scores one row at one seed; returns (and writes) its result.json content."""
    from repro.io import sha256_file, write_json

    done = finished_result(row, seed, setup, iters_per_epoch, say_stale=True)
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
    if is_finished(run):
        check_data(run, setup.data, cfg)  # a finished run of other training images is refused, never reused
    else:
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
    row), recomputed when the translations are new (`fresh`) or it records other inputs (repro.done): another
    translation record, protocol version or segmenter."""
    from repro import translations
    from repro.eval import labels2photo, photo2labels
    from repro.eval.results import PROTOCOL_VERSIONS
    from repro.io import sha256_file, write_json

    path, translated = layout.scores_file(folder, direction), layout.translations(folder, direction)
    record = translated / translations.MANIFEST
    made_from = {"translations_sha256": sha256_file(record) if record.is_file() else None}
    key = {"protocol_version": PROTOCOL_VERSIONS[direction], **{f"made_from.{k}": v for k, v in made_from.items()}}
    if direction == "labels2photo":  # photo2labels: no model involved
        key["segmenter.sha256"] = seg_sha
    if fresh or not is_current(read_json_or_empty(path), key, str(path)):
        if direction == "labels2photo":
            res = labels2photo.evaluate(translated, setup.cityscapes, setup.segmenter, "pix2pix",
                                        setup.device, workers=0 if setup.device == "cpu" else None, progress=progress)
        else:
            res = photo2labels.evaluate(translated, setup.cityscapes, progress=progress)
        write_json(path, res | {"made_from": made_from})
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
        "protocol_versions": {"labels2photo": l2p["protocol_version"], "photo2labels": p2l["protocol_version"]},
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
    key = {f"models.{d}.sha256": m["sha256"] for d, m in models.items()} | result_key(setup)
    if is_current(done, key, str(result_path)):
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


# ------------------------------------------------------------------------------ floor and ceiling rows


def run_bound(row: Row, seed: int, setup, progress: bool = True) -> dict:
    """Makes and scores one bound row's outputs at one seed; writes OUT/ROW/seed-K/result.json (reused when it
    was made the same way from the inputs of plan.result_key)."""
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
    done = read_json_or_empty(result_path)
    if is_current(done, {"made_by": json.loads(json.dumps(made_by))} | result_key(setup), str(result_path)):
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
    return [run_bound(row, seed, setup, progress) for row, seed in bound_runs(seeds)]


def scorings_without_training(seeds: int, pretrained: str | None) -> int:
    """The translations and scorings of the val set a reproduction does besides its trained runs', in the command
    itself: the floor and ceiling rows (bound_runs) and `--pretrained`'s row ("add"). The estimate counts each as
    one run's."""
    return len(bound_runs(seeds)) + (pretrained == "add")


def bound_runs(seeds: int) -> list[tuple[Row, int]]:
    """The (row, seed) scorings of run_bounds: each a translation and scoring of the val set in both directions,
    like a trained run's (the estimate counts them so)."""
    from repro import bounds

    return [(row, seed) for row in (CEILING, *FLOORS)
            for seed in (range(seeds) if row.key == bounds.UNTRAINED.key else (0,))]


# ------------------------------------------------------------------------------ packs and jobs


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


REPRODUCE_DISK_FULL_FIX = ("Free some space there (or choose another --out) and run the same `repro reproduce` command "
                           "again: finished runs and scores are kept, and each unfinished run resumes from its last "
                           "checkpoint, or starts over if it had none.")


def run_job(runs: list[tuple[str, int]], setup: Setup, iters_per_epoch: int | None, packed: bool) -> list[dict]:
    """One launcher job (repro.reproduce.launcher.RunGroup): (row key, seed) runs trained (first as one pack when
    `packed`), translated and scored one after another in this process."""
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
