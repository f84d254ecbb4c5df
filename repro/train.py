"""Training CycleGAN, top to bottom: build, (resume), loop over epochs and iterations, checkpoint.

X = label maps, Y = photos. G: X -> Y, F: Y -> X, D_X judges label maps, D_Y photos.
Two update orders (config `update_order`):
  sequential  the Lua code the paper used: four Adam steps per iteration, F, D_X, G, D_Y (its G_A, D_A,
              G_B, D_B with A = photos). Each generator step trains only that generator; the other one's
              outputs enter as constants, and G's step runs after F and D_X have been updated.
  joint       the PyTorch port: both generators from one summed loss, then both discriminators.
"""

import importlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from repro import ReproError
from repro.config import Config, config_to_toml, load_config
from repro.device import pick_device
from repro.io import atomic_path, write_json, write_text
from repro.data.loaders import AlignedData, UnalignedData, load_folder, to_model_range
from repro.losses import discriminator_loss, gan_loss, l1
from repro.networks import PatchDiscriminator, build_generator, init_weights, zero_conv_biases
from repro.pool import ImagePool
from repro.schedule import lr_factor

NET_NAMES = ("G", "F", "D_X", "D_Y")


def build_nets(cfg: Config) -> dict[str, nn.Module]:
    """G, F, D_X, D_Y, initialised N(0, 0.02) from the seed (in this order, so the seed fixes all four)."""
    torch.manual_seed(cfg.seed)
    gen = lambda: build_generator(cfg.generator, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)
    disc = lambda: PatchDiscriminator(3, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_padding)
    nets = {"G": gen(), "F": gen(), "D_X": disc(), "D_Y": disc()}
    for net in nets.values():
        init_weights(net)
        if cfg.zero_conv_bias:
            zero_conv_biases(net)
    return nets


class frozen:
    """Turns off parameter gradients of nets that a step uses but does not train (saves their backward)."""

    def __init__(self, *nets):
        self.params = [p for net in nets for p in net.parameters()]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


def generator_terms(gen, other, disc, src, tgt, cfg: Config, own_cycle: str, other_cycle: str):
    """The loss terms that train `gen` (src -> tgt) in its own step of the sequential order.

    own_cycle   src -> gen -> other -> src: the gradient reaches gen through `other`'s input.
    other_cycle tgt -> other -> gen -> tgt: other(tgt) is a constant input to gen.
    identity    gen(tgt) ~ tgt, weighted lambda_identity x the lambda of tgt's cycle (as both codes do).
    A term whose weight is zero is not computed at all: that is how the ablations switch terms off.
    """
    w = {"forward": cfg.lambda_forward, "backward": cfg.lambda_backward}
    terms, fake = {}, gen(src)
    if cfg.lambda_gan:
        terms["gan"] = cfg.lambda_gan * gan_loss(disc(fake), True, cfg.gan_loss)
    if w[own_cycle]:
        terms[f"cycle_{own_cycle}"] = w[own_cycle] * l1(other(fake), src)
    if w[other_cycle]:
        with torch.no_grad():
            other_fake = other(tgt)
        terms[f"cycle_{other_cycle}"] = w[other_cycle] * l1(gen(other_fake), tgt)
    if cfg.lambda_identity:
        terms["identity"] = cfg.lambda_identity * w[other_cycle] * l1(gen(tgt), tgt)
    return terms, fake


def joint_terms(nets, x, y, cfg: Config):
    """The port's generator loss: every term once, its gradient reaching both generators."""
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    terms, fake_y, fake_x = {}, G(x), F(y)
    if cfg.lambda_gan:
        terms["gan_G"] = cfg.lambda_gan * gan_loss(D_Y(fake_y), True, cfg.gan_loss)
        terms["gan_F"] = cfg.lambda_gan * gan_loss(D_X(fake_x), True, cfg.gan_loss)
    if cfg.lambda_forward:
        terms["cycle_forward"] = cfg.lambda_forward * l1(F(fake_y), x)
    if cfg.lambda_backward:
        terms["cycle_backward"] = cfg.lambda_backward * l1(G(fake_x), y)
    if cfg.lambda_identity:
        terms["identity_G"] = cfg.lambda_identity * cfg.lambda_backward * l1(G(y), y)
        terms["identity_F"] = cfg.lambda_identity * cfg.lambda_forward * l1(F(x), x)
    return terms, fake_y, fake_x


def adam(nets: dict[str, nn.Module], cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One Adam per net, with the paper's lr and betas (the loop sets the scheduled lr every epoch)."""
    return {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n, net in nets.items()}


def update(loss: torch.Tensor, names, nets: dict, opts: dict, cfg: Config) -> None:
    """Backward `loss` and step the optimisers of `names` only (others' gradients are cleared, never applied)."""
    for n in names:
        opts[n].zero_grad(set_to_none=True)
    loss.backward()
    for n in names:
        opts[n].step()
        if cfg.zero_conv_bias:
            zero_conv_biases(nets[n])


def train_step(nets, opts, pools, x, y, cfg: Config, rng: torch.Generator, autocast) -> dict[str, torch.Tensor]:
    """One iteration; returns every loss term (detached) by name."""
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    log = {}

    def step(names, loss):
        update(loss, names, nets, opts, cfg)

    def d_step(name, disc, real, fake, pool):
        with autocast():
            loss = discriminator_loss(disc(real), disc(pool.query(fake, rng)), cfg.gan_loss)
        step([name], loss)
        log[f"D_{name[-1]}"] = loss.detach()

    if cfg.update_order == "sequential":
        for name, gen, other, disc, src, tgt, own, oth, d_name, d_real in (
                ("F", F, G, D_X, y, x, "backward", "forward", "D_X", x),
                ("G", G, F, D_Y, x, y, "forward", "backward", "D_Y", y)):
            with frozen(other, disc), autocast():
                terms, fake = generator_terms(gen, other, disc, src, tgt, cfg, own, oth)
            if terms:
                step([name], sum(terms.values()))
            log |= {f"{k}_{name}": v.detach() for k, v in terms.items()}
            if cfg.lambda_gan:
                d_step(d_name, disc, d_real, fake, pools[d_name])
    else:
        with frozen(D_X, D_Y), autocast():
            terms, fake_y, fake_x = joint_terms(nets, x, y, cfg)
        if terms:
            step(["G", "F"], sum(terms.values()))
        log |= {k: v.detach() for k, v in terms.items()}
        if cfg.lambda_gan:
            d_step("D_Y", D_Y, y, fake_y, pools["D_Y"])
            d_step("D_X", D_X, x, fake_x, pools["D_X"])
    return log


# ---------------------------------------------------------------------------------------------------
# Checkpoints: everything a run needs to continue exactly where it stopped.

def save_checkpoint(path: Path, cfg, nets, opts, pools, rng, position: dict) -> None:
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


def load_checkpoint(path: Path, nets, opts, pools, rng, device) -> dict:
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
        with atomic_path(run / file) as tmp:
            torch.save({k: v.cpu() for k, v in nets[name].state_dict().items()}, tmp)


class FIDLog:
    """FID/KID of G's translations of a fixed val subset against the real val photos, every `fid_every`
    epochs, appended to RUN/fid.jsonl. Built before training starts, so missing Inception weights stop
    the run before any work."""

    def __init__(self, cfg: Config, data: Path, device, weights: Path | None):
        from repro.eval.fid import FIDScorer  # pytorch-fid is only needed when FID is asked for
        n = cfg.fid_images
        x_val, _ = load_folder(data / cfg.x_test, cfg.crop_size, cfg.resize_filter, desc="FID inputs")
        y_val, _ = load_folder(data / cfg.y_test, cfg.crop_size, cfg.resize_filter, desc="FID reference")
        self.inputs = to_model_range(x_val[:n]).to(device)
        with torch.random.fork_rng(devices=[]):  # building Inception draws random init weights: keep training's RNG
            self.scorer = FIDScorer(to_model_range(y_val[:n]), device=str(device), weights=weights)

    @torch.no_grad()
    def log(self, path: Path, G: nn.Module, epoch: int, step: int) -> None:
        fake = torch.cat([G(self.inputs[i:i + 8]) for i in range(0, len(self.inputs), 8)])
        scores = self.scorer.score(fake.float().cpu())
        with open(path, "a") as f:
            f.write(json.dumps({"step": step, "epoch": epoch, "fid": scores["fid"], "kid": scores["kid"]}) + "\n")


def truncate_log(log_path: Path, step: int) -> None:
    """Drops log lines written after the checkpoint a resumed run restarts from."""
    if not log_path.exists():
        return
    lines = [l for l in log_path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= step]
    write_text(log_path, "".join(l + "\n" for l in lines))


# ---------------------------------------------------------------------------------------------------

@dataclass
class Parts:
    """What one method trains. `step(x, y, rng)` runs one iteration on a batch of label maps x and photos y
    (both [-1, 1]) and returns its loss terms, detached, by name. `exports` maps a net's name to the file the
    loop writes its state_dict to after every epoch. CycleGAN's parts are `cyclegan_parts`; the baselines of
    Tables 2/3 (repro/baselines/) bring their own and share everything else in `train_loop`."""
    nets: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    step: Callable[[torch.Tensor, torch.Tensor, torch.Generator], dict[str, torch.Tensor]]
    pools: dict[str, ImagePool] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    labels2photo: Callable[[], nn.Module] | None = None  # the labels -> photo translation now (for FID)


def cyclegan_parts(cfg: Config, device: torch.device, amp: bool = False, channels_last: bool = False) -> Parts:
    nets = {n: net.to(device) for n, net in build_nets(cfg).items()}
    if channels_last:
        nets = {n: net.to(memory_format=torch.channels_last) for n, net in nets.items()}
    opts = adam(nets, cfg)
    pools = {"D_X": ImagePool(cfg.pool_size), "D_Y": ImagePool(cfg.pool_size)}
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def step(x, y, rng):
        if channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        return train_step(nets, opts, pools, x, y, cfg, rng, autocast)

    return Parts(nets, opts, step, pools, exports={"G": "G_x2y.pth", "F": "F_y2x.pth"}, labels2photo=lambda: nets["G"])


def train(cfg: Config, data: Path, run: Path, device: str = "auto", resume: bool = False,
          stop_after: int | None = None, amp: bool = False, channels_last: bool = False,
          progress: bool = True, fid_weights: Path | None = None) -> Path:
    """Trains (or resumes) a run in folder `run`; returns the checkpoint path."""
    if cfg.method != "cyclegan":  # a baseline of Tables 2/3: its own parts, this loop
        if amp or channels_last:
            raise ReproError(f"--amp and --channels-last are implemented for CycleGAN only, not for method {cfg.method!r}")
        baseline = importlib.import_module(f"repro.baselines.{cfg.method}")
        return train_loop(cfg, data, run, baseline.build, device, resume, stop_after, progress,
                          paired=getattr(baseline, "PAIRED", False), fid_weights=fid_weights)
    use_amp = amp and pick_device(device).type == "cuda"
    build = lambda cfg, device: cyclegan_parts(cfg, device, use_amp, channels_last)
    return train_loop(cfg, data, run, build, device, resume, stop_after, progress, fid_weights=fid_weights, amp=use_amp)


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
    (run / "config.toml").write_text(config_to_toml(cfg))


def train_loop(cfg: Config, data: Path, run: Path, build: Callable[[Config, torch.device], Parts],
               device: str = "auto", resume: bool = False, stop_after: int | None = None, progress: bool = True,
               paired: bool = False, fid_weights: Path | None = None, amp: bool = False) -> Path:
    """Trains (or resumes) the parts that `build(cfg, device)` makes from the seed, in folder `run`.

    `paired` feeds aligned (x, y) pairs (pix2pix) instead of CycleGAN's unaligned draw. With `fid_every`,
    FID/KID of labels -> photo on a fixed val subset go to RUN/fid.jsonl (Inception: `fid_weights` or the
    torch cache). `amp` is only recorded in run.json (the parts apply it)."""
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
    fid = FIDLog(cfg, data, device, fid_weights) if cfg.fid_every and parts.labels2photo else None
    save = lambda: save_checkpoint(ckpt_path, cfg, parts.nets, parts.opts, parts.pools, rng, position)
    # iters_per_epoch counts iterations (batches), so a reduced run (`--iters-per-epoch N`) shortens every row
    # alike; 0 means one pass over the larger domain, in batches (CycleGAN's max(|X|, |Y|) at batch size 1)
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
                        f"checkpoint {ckpt_path} (step {position['step']}) was not overwritten; lower lr"
                        f"{' or disable amp' if amp else ''} and resume with --resume.")
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
    write_run_info(run, cfg, data, device, amp=amp, seconds=time.time() - started)
    return ckpt_path


def write_run_info(run: Path, cfg: Config, data: Path, device, amp: bool, seconds: float) -> None:
    info_path = run / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {"train_seconds": 0.0}
    info |= {"finished": True, "name": cfg.name, "data": str(data), "device": str(device),
             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "bf16_autocast": amp, "torch": torch.__version__, "epochs": cfg.epochs}
    info["train_seconds"] += seconds
    write_json(info_path, info)


def is_finished(run: Path) -> bool:
    info = Path(run) / "run.json"
    return info.exists() and json.loads(info.read_text()).get("finished", False)


def run_train(args) -> None:
    overrides = {"seed": args.seed, "iters_per_epoch": args.iters}
    if args.epochs is not None:
        overrides |= {"epochs_constant": (args.epochs + 1) // 2, "epochs_decay": args.epochs // 2}
    cfg = load_config(args.config, **overrides)
    train(cfg, args.data, args.out, device=args.device, resume=args.resume, stop_after=args.stop_after,
          amp=args.amp, channels_last=args.channels_last, fid_weights=args.fid_weights)
    print(f"trained {cfg.name}: {args.out}/checkpoint.pt; translate with `repro translate {args.out} --direction ...`")


def add_commands(commands) -> None:
    p = commands.add("train", help="train a config: CycleGAN, an ablation or a Table 2/3 baseline (resumable)")
    p.add_argument("config", help="a TOML file or a shipped config, e.g. cityscapes/cyclegan, smoke/gan_alone")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (trainA/trainB layout)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, logs, generators")
    p.add_argument("--epochs", type=int, help="total epochs, half constant lr and half decay (default: the config's)")
    p.add_argument("--iters", type=int, help="iterations per epoch (default: the config's, else max(|X|, |Y|))")
    p.add_argument("--seed", type=int, help="seed for init, data order, augmentation and pool (default: the config's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this many total iterations")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (changes numerics; recorded in run.json)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA speed)")
    p.add_argument("--fid-weights", type=Path, help="pytorch-fid Inception weights for the config's fid_every "
                   "(default: the torch hub cache)")
    p.set_defaults(func=run_train)
