"""A run folder on disk: its checkpoint (everything needed to continue exactly where it stopped), the
generators exported in the official port's format, run.json, and the logs a resumed run truncates.

    RUN/config.toml     every config field, written out
    RUN/checkpoint.pt   nets, optimisers, history pools, every RNG state, the epoch's data order
    RUN/losses.jsonl    loss terms every log_every iterations (fid.jsonl: FID/KID every fid_every epochs)
    RUN/G_x2y.pth ...   nets alone, as the official port's state_dicts
    RUN/run.json        finished, the epochs that ran, device, precision, training seconds (docs/estimates.md)
    RUN/data.json       the dataset it trains on: --data and each training folder's image count and listing hash
    RUN/progress.json   the step reached, it/s and ETA, rewritten at log points (what the launcher shows)
    RUN/checkpoint.next.pt, .json   only while a pack saves (or after a kill in it): the new state, not yet renamed
"""

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.config import Config, config_to_toml, load_config, read_toml
from repro.done import is_current
from repro.io import (DiskFull, atomic_path, listing_sha256, load_torch_file, read_json_or_empty, remove_stale_partials,
                      write_json, write_text)

FRESH_RUN_FILES = ("losses.jsonl", "fid.jsonl", "run.json", "progress.json")  # what a run killed before its first checkpoint leaves


def run_config(run: Path) -> Config:
    """The config a run folder trained with. A config.toml written before the `pairing` field existed trained with
    the scheme now called "larger", whatever today's default is."""
    path = Path(run) / "config.toml"
    cfg = load_config(str(path))
    if "pairing" not in read_toml(path):
        cfg.pairing = "larger"
    return cfg


def state_bytes(state) -> int:
    """The bytes of the tensors in a nested state (what torch.save will need, within a few percent)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


DISK_FULL_FIX = ("The last good checkpoint was kept. Free some space there and resume with `repro train ... --resume`, "
                 "or copy the run folder to a larger disk and resume there.")
NO_CHECKPOINT_FIX = ("No checkpoint had been written yet, so there is nothing to resume: free some space there (or "
                     "choose another --out) and start the run again.")


def disk_full_fix(checkpoint: Path) -> str:
    """What to do after a full disk: resume from the run's checkpoint when there is one, else start again
    (`checkpoint` may be a pack's pending checkpoint.next.pt: the run's kept one is checkpoint.pt beside it)."""
    return DISK_FULL_FIX if (Path(checkpoint).parent / "checkpoint.pt").is_file() else NO_CHECKPOINT_FIX


def save_checkpoint(path: Path, cfg: Config, nets, opts, pools, rng: torch.Generator, position: dict) -> None:
    state = {
        "config": asdict(cfg),
        "nets": {n: net.state_dict() for n, net in nets.items()},
        "opts": {n: opt.state_dict() for n, opt in opts.items()},
        "pools": {n: pool.state_dict() for n, pool in pools.items()},
        "rng": {"data": rng.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "position": position,
    }
    try:
        with atomic_path(path, needed=state_bytes(state)) as tmp:  # a crash leaves the previous checkpoint intact
            torch.save(state, tmp)
    except DiskFull as err:
        err.fix = disk_full_fix(path)
        raise


# A pack's checkpoint is one unit (repro.methods.packing): every run first writes its new state beside its checkpoint,
# and only when all of them have landed are they renamed over the checkpoints. A record written before each run's
# new state names the step and the pack's members, so that any one member can tell whether the set is complete.
PENDING, PACK_RECORD = "checkpoint.next.pt", "checkpoint.next.json"


def save_pack_checkpoints(runs: list[Path], cfgs: list[Config], views: list, rngs: list[torch.Generator],
                          positions: list[dict]) -> None:
    """Every run's checkpoint at the same step, or none: a kill at any point leaves either every checkpoint.pt as it
    was or a complete set of new states that settle_pack_checkpoint renames into place. A failed write (a full disk)
    removes the new states written so far."""
    step = positions[0]["step"]
    try:
        for run, cfg, view, rng, position in zip(runs, cfgs, views, rngs, positions):
            members = [os.path.relpath(r.resolve(), run.resolve()) for r in runs]  # the pack may move as one tree
            write_json(run / PACK_RECORD, {"step": step, "members": members})
            save_checkpoint(run / PENDING, cfg, *view, rng, position)
    except Exception:
        for run in runs:
            (run / PENDING).unlink(missing_ok=True)
            (run / PACK_RECORD).unlink(missing_ok=True)
        raise
    for run in runs:  # the commit: every new state is complete
        os.replace(run / PENDING, run / "checkpoint.pt")
    for run in runs:
        (run / PACK_RECORD).unlink(missing_ok=True)


def save_checkpoints(runs: list[Path], cfgs: list[Config], views: list, rngs: list[torch.Generator],
                     positions: list[dict]) -> None:
    """The checkpoint of one run (save_checkpoint), or of a pack as one unit (save_pack_checkpoints)."""
    if len(runs) == 1:
        save_checkpoint(runs[0] / "checkpoint.pt", cfgs[0], *views[0], rngs[0], positions[0])
    else:
        save_pack_checkpoints(runs, cfgs, views, rngs, positions)


def settle_pack_checkpoint(run: Path) -> None:
    """Finishes a pack checkpoint that a kill interrupted among its renames (every member's new state had landed),
    or drops one interrupted before that, so that all members stand at the same step again."""
    run = Path(run)
    if not run.is_dir():
        return
    record = read_json_or_empty(run / PACK_RECORD)
    if not (run / PENDING).is_file() or not isinstance(record.get("members"), list):
        (run / PACK_RECORD).unlink(missing_ok=True)
        (run / PENDING).unlink(missing_ok=True)
        return
    step, members = record.get("step"), [(run / m).resolve() for m in record["members"]]

    def landed(member: Path) -> bool:  # its new state is complete beside its checkpoint, or already renamed
        if (member / PENDING).is_file():
            return read_json_or_empty(member / PACK_RECORD).get("step") == step
        return checkpoint_step(member / "checkpoint.pt") == step

    complete = all(landed(m) for m in members)
    for member in members:
        if (member / PENDING).is_file() and read_json_or_empty(member / PACK_RECORD).get("step") == step:
            if complete:
                os.replace(member / PENDING, member / "checkpoint.pt")
            else:
                (member / PENDING).unlink()
        if read_json_or_empty(member / PACK_RECORD).get("step") == step:
            (member / PACK_RECORD).unlink(missing_ok=True)


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint stopped at (None: no readable checkpoint)."""
    try:
        return saved_step(path)
    except Exception:  # a missing or unreadable file: no step
        return None


def load_checkpoint(path: Path, nets, opts, pools, rng: torch.Generator, device) -> dict:
    """Restores every piece of state in place; returns the position (epoch, iteration, step, data order)."""
    state = load_torch_file(path, "checkpoint", "Delete it to start over.", map_location=device)
    for n, net in nets.items():
        net.load_state_dict(state["nets"][n])
    for n, opt in opts.items():
        opt.load_state_dict(state["opts"][n])
    for n, pool in pools.items():
        pool.load_state_dict(state["pools"][n], device)
    rng.set_state(state["rng"]["data"].cpu())
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return state["position"]


def saved_step(checkpoint: Path) -> int:
    """The step a checkpoint was saved at, read without loading its tensors."""
    return load_torch_file(checkpoint, "checkpoint", "Delete it to start over.", mmap=True)["position"]["step"]


def export(run: Path, nets: dict[str, nn.Module], exports: dict[str, str]) -> None:
    """Nets alone (e.g. G and F), in the official port's state_dict format (its models load them with load_state_dict)."""
    for name, file in exports.items():
        state = {k: v.cpu() for k, v in nets[name].state_dict().items()}
        try:
            with atomic_path(Path(run) / file, needed=state_bytes(state)) as tmp:
                torch.save(state, tmp)
        except DiskFull as err:
            err.fix = "The checkpoint was written; free some space and resume with `repro train ... --resume`."
            raise


def truncate_log(log_path: Path, step: int) -> None:
    """Drops log lines written after the checkpoint a resumed run restarts from (and a last line a kill or a full
    disk cut short)."""
    if not log_path.exists():
        return
    lines = [l for l in log_path.read_text().splitlines() if (_step(l) if _step(l) is not None else step + 1) <= step]
    write_text(log_path, "".join(l + "\n" for l in lines))


def _step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def check_run_folder(cfg: Config, run: Path, resume: bool) -> None:
    """No silent overwrite, nothing to resume, or a changed config: each refused before anything is written."""
    for folder in (run, *run.parents):
        if folder.exists() and not folder.is_dir():
            raise ReproError(f"the run folder {run} cannot be made: {folder} is a file, not a folder; choose another "
                             f"--out folder (or move the file away)")
    ckpt = run / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise ReproError(f"{run} already holds a run; pass --resume to continue it, or choose a new --out folder")
    if resume and not ckpt.exists():
        raise ReproError(f"nothing to resume: {ckpt} does not exist")
    if resume and (run / "config.toml").exists():
        saved = run_config(run)
        if asdict(saved) != asdict(cfg):
            diff = {k: (v, getattr(cfg, k)) for k, v in asdict(saved).items() if v != getattr(cfg, k)}
            raise ReproError(f"{run} was trained with a different config (saved vs now: {diff}); resume with the same "
                             f"one (--set FIELD=VALUE sets a field)")


def prepare_run_folder(cfg: Config, run: Path, resume: bool) -> None:
    """The run folder with the config it trains with (checked by check_run_folder first)."""
    check_run_folder(cfg, run, resume)
    remove_stale_partials(run)  # what killed writers left (.checkpoint.pt.partial-PID): never a live process's
    run.mkdir(parents=True, exist_ok=True)
    if not resume:  # a run killed before its first checkpoint left these: a fresh run starts fresh logs
        for name in FRESH_RUN_FILES:
            (run / name).unlink(missing_ok=True)
    write_text(run / "config.toml", config_to_toml(cfg))


DATA_FILE = "data.json"


def data_manifest(data: Path, cfg: Config) -> dict:
    """What a run trains on: the dataset folder and, per training folder, its image count and one hash over the
    images' names and sizes (cheap at every start; a resume on other images changes it)."""
    from repro.data.loaders import list_images

    folders = {}
    for name in (cfg.x_train, cfg.y_train):
        files = list_images(Path(data) / name)
        folders[name] = {"images": len(files), "names_and_sizes_sha256": listing_sha256(files)}
    return {"data": str(Path(data).resolve()), "folders": folders}


def check_data(run: Path, data: Path, cfg: Config) -> dict:
    """Refuses --data when RUN/data.json records other training images (repro.done's rule on its folders), naming
    both; returns the manifest of --data. A run from before data.json is taken as it is; a dataset moved elsewhere
    unchanged is accepted."""
    manifest, path = data_manifest(data, cfg), Path(run) / DATA_FILE
    saved = read_json_or_empty(path)
    if saved and not is_current(saved, {"folders": manifest["folders"]}):
        def counts(m):
            return ", ".join(f"{k}: {v.get('images')} images" for k, v in (m.get("folders") or {}).items())
        raise ReproError(f"{run} was trained on {saved.get('data')} ({counts(saved)}), but --data {data} holds other "
                         f"images ({counts(manifest)}; {path} records names and sizes). Use --data {saved.get('data')} "
                         f"(resuming or reusing the run), or train on the new data in a new --out folder.")
    return manifest


def record_data(run: Path, data: Path, cfg: Config, resume: bool) -> None:
    """Writes RUN/data.json; on resume first refuses other images than it records (check_data)."""
    write_json(Path(run) / DATA_FILE, check_data(run, data, cfg) if resume else data_manifest(data, cfg))
TIMING_SUMS = ("setup_seconds", "warmup_seconds", "io_seconds", "step_seconds", "steps", "warmup_iterations")


def write_run_info(run: Path, cfg: Config, data: Path, device: torch.device, amp: bool, seconds: float,
                   epochs_done: int, timing: dict | None = None, **extra) -> None:
    """Marks the run finished in run.json with the epochs that ran, adding this session's training time to earlier
    sessions': train_seconds (the loop's wall time, a pack's divided by its runs) and `timing`'s parts
    (repro.train.Clock: setup, warm-up, I/O and steady-state step seconds, a pack's undivided)."""
    if epochs_done != cfg.epochs or epochs_done < 1:
        raise ReproError(f"{run}: only {epochs_done} of {cfg.epochs} epochs ran; the run is not finished")
    info_path = run / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"train_seconds": 0.0}
    info |= {"finished": True, "name": cfg.name, "data": str(data), "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "bf16_autocast": amp, "torch": torch.__version__, "epochs": cfg.epochs, "epochs_done": epochs_done, **extra}
    info["train_seconds"] += seconds
    if timing:
        for key in TIMING_SUMS:
            info[key] = round(info.get(key, 0) + timing[key], 3)
        info["seconds_per_iteration"] = round(info["step_seconds"] / info["steps"], 6) if info["steps"] else None
    write_json(info_path, info)


def is_finished(run: Path) -> bool:
    """The configured epochs all ran: run.json says finished with epochs_done equal to config.toml's epochs (at least
    one), and the checkpoint is there."""
    run = Path(run)
    info = read_json_or_empty(run / "run.json")
    if not (info and (run / "checkpoint.pt").is_file() and (run / "config.toml").is_file()):
        return False
    try:
        epochs = run_config(run).epochs
    except ReproError:
        return False
    info.setdefault("epochs_done", info.get("epochs"))  # run.json from before epochs_done: "epochs" was the config's
    return epochs >= 1 and is_current(info, {"finished": True, "epochs_done": epochs})
