"""A run folder on disk: its checkpoint (everything needed to continue exactly where it stopped), the
generators exported in the official port's format, run.json, and the logs a resumed run truncates.

    RUN/config.toml     every config field, written out
    RUN/checkpoint.pt   nets, optimisers, history pools, every RNG state, the epoch's data order
    RUN/losses.jsonl    loss terms every log_every iterations (fid.jsonl: FID/KID every fid_every epochs)
    RUN/G_x2y.pth ...   nets alone, as the official port's state_dicts
    RUN/run.json        finished, device, precision, training seconds
"""

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from repro import ReproError
from repro.config import Config, config_to_toml, load_config
from repro.io import atomic_path, write_json, write_text


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
    with atomic_path(path) as tmp:  # a crash leaves the previous checkpoint intact
        torch.save(state, tmp)


def load_checkpoint(path: Path, nets, opts, pools, rng: torch.Generator, device) -> dict:
    """Restores every piece of state in place; returns the position (epoch, iteration, step, data order)."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:
        raise ReproError(f"cannot read checkpoint {path}: {err}. Delete it to start over.") from None
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


def trained_nets(run: Path, nets: dict[str, nn.Module], device) -> dict[str, nn.Module]:
    """`nets` (freshly built) with the weights of run/checkpoint.pt, on `device`, without gradients."""
    ckpt = Path(run) / "checkpoint.pt"
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ReproError(f"cannot read checkpoint {ckpt}: {err}. Retrain the run.") from None
    for name, net in nets.items():
        if name not in state["nets"]:
            raise ReproError(f"{ckpt} has no net {name!r} (it holds {sorted(state['nets'])}); "
                             f"its config.toml does not match the run; retrain it")
        net.load_state_dict(state["nets"][name])
        net.requires_grad_(False)
    return {name: net.to(device) for name, net in nets.items()}


def export(run: Path, nets: dict[str, nn.Module], exports: dict[str, str]) -> None:
    """Nets alone (e.g. G and F), in the official port's state_dict format (its models load them with load_state_dict)."""
    for name, file in exports.items():
        with atomic_path(Path(run) / file) as tmp:
            torch.save({k: v.cpu() for k, v in nets[name].state_dict().items()}, tmp)


def truncate_log(log_path: Path, step: int) -> None:
    """Drops log lines written after the checkpoint a resumed run restarts from."""
    if not log_path.exists():
        return
    lines = [l for l in log_path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= step]
    write_text(log_path, "".join(l + "\n" for l in lines))


def prepare_run_folder(cfg: Config, run: Path, resume: bool) -> None:
    """No silent overwrite, nothing to resume, or a changed config: each refused before any work."""
    ckpt = run / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise ReproError(f"{run} already holds a run; pass --resume to continue it, or choose a new --out folder")
    if resume and not ckpt.exists():
        raise ReproError(f"nothing to resume: {ckpt} does not exist")
    run.mkdir(parents=True, exist_ok=True)
    if resume and (run / "config.toml").exists():
        saved = load_config(str(run / "config.toml"))
        if asdict(saved) != asdict(cfg):
            diff = {k: (v, getattr(cfg, k)) for k, v in asdict(saved).items() if v != getattr(cfg, k)}
            raise ReproError(f"{run} was trained with a different config (saved vs now: {diff}); resume with the same one")
    write_text(run / "config.toml", config_to_toml(cfg))


def write_run_info(run: Path, cfg: Config, data: Path, device: torch.device, amp: bool, seconds: float,
                   **extra) -> None:
    """Marks the run finished in run.json, adding this session's training time to earlier sessions'."""
    info_path = run / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"train_seconds": 0.0}
    info |= {"finished": True, "name": cfg.name, "data": str(data), "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "bf16_autocast": amp, "torch": torch.__version__, "epochs": cfg.epochs, **extra}
    info["train_seconds"] += seconds
    write_json(info_path, info)


def is_finished(run: Path) -> bool:
    info = Path(run) / "run.json"
    return info.exists() and json.loads(info.read_text()).get("finished", False)
