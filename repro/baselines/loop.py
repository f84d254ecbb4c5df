"""The training loop every baseline shares, with CycleGAN's guarantees.

A method hands over its `Parts` (nets, their optimisers, image pools, one training step); this loop does
the rest exactly as repro/train.py does for CycleGAN: config.toml in the run folder, the data order drawn
from a seeded generator, lr schedule, losses.jsonl, a NaN stop that keeps the last good checkpoint, an
atomic checkpoint.pt every epoch (and every `checkpoint_every` iterations) holding every RNG state, exact
resume, and run.json with finished = true at the end. The checkpoint format is CycleGAN's
(repro.train.save_checkpoint), so `repro translate` and `repro reproduce` treat every run folder alike.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from repro import ReproError
from repro.config import Config, config_to_toml, load_config
from repro.data.loaders import UnalignedData
from repro.pool import ImagePool
from repro.schedule import lr_factor
from repro.train import FIDLog, load_checkpoint, pick_device, save_checkpoint, truncate_log, write_run_info

from repro.baselines.common import AlignedData


@dataclass
class Parts:
    """What one method trains. `step(x, y, rng)` runs one iteration on a batch of label maps x and photos y
    (both [-1, 1]) and returns its loss terms, detached, by name. `exports` maps a net's name to a file the
    loop writes its state_dict to after every epoch (the official port's format, for the image-to-image nets)."""
    nets: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    step: Callable[[torch.Tensor, torch.Tensor, torch.Generator], dict[str, torch.Tensor]]
    pools: dict[str, ImagePool] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    labels2photo: Callable[[], nn.Module] | None = None  # G's translation from a snapshot of the nets (for FID)


def prepare_run_folder(cfg: Config, run: Path, resume: bool) -> None:
    """The same refusals as CycleGAN's loop: no silent overwrite, nothing to resume, a changed config."""
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
    (run / "config.toml").write_text(config_to_toml(cfg))


def export(run: Path, nets: dict[str, nn.Module], exports: dict[str, str]) -> None:
    for name, file in exports.items():
        tmp = run / (file + ".tmp")
        torch.save({k: v.cpu() for k, v in nets[name].state_dict().items()}, tmp)
        os.replace(tmp, run / file)


def train_loop(cfg: Config, data: Path, run: Path, build: Callable[[Config, torch.device], Parts],
               device: str = "auto", resume: bool = False, stop_after: int | None = None, progress: bool = True,
               paired: bool = False, fid_weights: Path | None = None) -> Path:
    """Trains (or resumes) a baseline in folder `run`; returns the checkpoint path.

    `build(cfg, device)` makes the method's Parts from the seed; `paired` feeds aligned (x, y) pairs
    (pix2pix) instead of CycleGAN's unaligned draw. With `fid_every`, FID/KID of labels -> photo on a fixed
    val subset go to RUN/fid.jsonl as in CycleGAN's loop (Inception weights: `fid_weights` or the torch cache)."""
    device = pick_device(device)
    run, data = Path(run), Path(data)
    ckpt_path, log_path = run / "checkpoint.pt", run / "losses.jsonl"
    prepare_run_folder(cfg, run, resume)
    source = AlignedData if paired else UnalignedData
    dataset = source.from_folders(data / cfg.x_train, data / cfg.y_train, cfg.load_size, cfg.crop_size, cfg.flip,
                                  cfg.resize_filter, device)
    parts = build(cfg, device)
    rng = torch.Generator().manual_seed(cfg.seed)
    position = {"epoch": 1, "iteration": 0, "step": 0, "order": None}
    if resume:
        position = load_checkpoint(ckpt_path, parts.nets, parts.opts, parts.pools, rng, device)
        truncate_log(log_path, position["step"])
        truncate_log(run / "fid.jsonl", position["step"])
    fid = None
    if cfg.fid_every and parts.labels2photo:
        with torch.random.fork_rng():  # building Inception draws random numbers; training (dropout) must not see it
            fid = FIDLog(cfg, data, device, fid_weights)
    save = lambda: save_checkpoint(ckpt_path, cfg, parts.nets, parts.opts, parts.pools, rng, position)
    # iters_per_epoch counts iterations (batches), so a reduced run (`--iters-per-epoch N`) shortens every row
    # alike; 0 means one pass over the larger domain, in batches (CycleGAN's rule when batch_size is 1)
    iters = cfg.iters_per_epoch or len(dataset) // cfg.batch_size
    if iters < 1:
        raise ReproError(f"batch_size {cfg.batch_size} is larger than the {len(dataset)} training images in {data}: "
                         f"an epoch would have no iteration; lower batch_size or set iters_per_epoch")
    bar = tqdm(total=cfg.epochs * iters, initial=position["step"], disable=not progress, unit="it",
               desc=f"train {cfg.name}", dynamic_ncols=True)
    log = open(log_path, "a")
    started = time.time()
    try:
        for epoch in range(position["epoch"], cfg.epochs + 1):
            lr = cfg.lr * lr_factor(epoch, cfg.epochs_constant, cfg.epochs_decay, cfg.lr_rule)
            for opt in parts.opts.values():
                for group in opt.param_groups:
                    group["lr"] = lr
            order = position["order"]
            if order is None:  # the epoch's data order, drawn once and kept in every checkpoint
                order = torch.cat([dataset.epoch_order(rng) for _ in range(math.ceil(iters * cfg.batch_size / len(dataset)))])
            for i in range(position["iteration"], iters):
                x, y = dataset.batch(order[i * cfg.batch_size:(i + 1) * cfg.batch_size], rng)
                values = {k: float(v) for k, v in parts.step(x, y, rng).items()}
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise ReproError(
                        f"loss {', '.join(bad)} became {values[bad[0]]} at epoch {epoch}, iteration {i + 1}. The last good "
                        f"checkpoint {ckpt_path} (step {position['step']}) was not overwritten; lower lr and resume "
                        f"with --resume.")
                step = (epoch - 1) * iters + i + 1
                position = {"epoch": epoch, "iteration": i + 1, "step": step, "order": order}
                if step % cfg.log_every == 0 or i + 1 == iters:
                    log.write(json.dumps({"step": step, "epoch": epoch, "lr": lr, **values}) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
                bar.update(1)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and i + 1 < iters:
                    save()
                if stop_after is not None and step >= stop_after:
                    save()
                    return ckpt_path
            position = {"epoch": epoch + 1, "iteration": 0, "step": epoch * iters, "order": None}
            if fid is not None and epoch % cfg.fid_every == 0:
                fid.log(run / "fid.jsonl", parts.labels2photo(), epoch, position["step"])
            save()
            export(run, parts.nets, parts.exports)
    finally:
        log.close()
        bar.close()
    write_run_info(run, cfg, data, device, amp=False, seconds=time.time() - started)
    return ckpt_path
