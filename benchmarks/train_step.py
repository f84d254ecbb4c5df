"""CycleGAN training-step speed, every variant side by side in one run on the current device.

    python benchmarks/train_step.py [--device auto] [--sizes paper,smoke] [--cases ...] [--iters 5]
                                    [--rounds 3] [--threads 1] [--amp] [--channels-last] [--json OUT]

Cases (timed in interleaved rounds, each round starting with the next case, so a busy machine and a position
in the round favour none; the median round counts):
  port-old      BASELINE. The official port's CycleGANModel.optimize_parameters as this project ran it before the
                sync-free step (commit ba1dc81): `pytorch` profile (joint order, identity 0.5) at the size's
                crop and generator, per-parameter requires_grad toggling, plain Adam, a host read (float())
                of every loss every iteration. A verbatim copy of that code is below (OLD STEP).
  paper-old     the `paper` profile (Lua order, conv-bias zeroing in a Python loop) with the same old step
  paper         the current sync-free step (repro.methods.cyclegan.build + the loop's LossWatch), paper profile
  paper-graphs  the same step replayed as one CUDA graph (repro.capture, --graphs; CUDA only)
  paper-compile torch.compile'd nets (--compile); paper-graphs-compile: both (CUDA)
  packed5, packed25  K runs in one vectorised step (METHODS["cyclegan"].build_packed), when it exists
Sizes: paper = 128x128, resnet_6blocks, ngf = ndf = 64; smoke = repro/configs/smoke/cyclegan.toml (32x32, 16).
"speed" is the baseline's seconds per iteration over the case's (aggregate over the K runs for packed cases).
Clock: on the CPU with one torch thread, process CPU time (time.process_time: what the step costs, robust to
other processes on a shared machine); otherwise wall time (--clock to choose). Peak memory (CUDA) is the case's
own allocation during its build and warm-up. bf16 (--amp) and channels_last apply to the new cases only; the
baselines stay fp32, as the port runs.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from repro.config import make_config
from repro.device import pick_device
from repro.losses import discriminator_loss, gan_loss, l1
from repro.methods import METHODS
from repro.methods.cyclegan import NET_NAMES, build_nets, generator_terms
from repro.train import LossWatch

SIZES = {
    "paper": dict(load_size=143, crop_size=128, generator="resnet_6blocks", ngf=64, ndf=64),
    "smoke": dict(load_size=36, crop_size=32, generator="resnet_6blocks", ngf=16, ndf=16),
}
CPU_CASES = ("port-old", "paper-old", "paper", "packed5", "packed25")
CUDA_CASES = ("port-old", "paper-old", "paper", "paper-graphs", "paper-graphs-compile", "packed5", "packed25")


# ---------------------------------------------------------------------------------------------------------------
# OLD STEP: the training step as it was before the sync-free step (repro at commit aea64e5: repro/pool.py,
# repro/networks.py zero_conv_biases, repro/methods/common.py adam/update/frozen, repro/methods/cyclegan.py
# generator_terms/joint_terms/train_step), copied verbatim so the baseline cannot drift with the live code.
# ---------------------------------------------------------------------------------------------------------------

class OldImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator).item() > 0.5:
                slot = int(torch.randint(self.size, (), generator=generator).item())
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)


@torch.no_grad()
def old_zero_conv_biases(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
            module.bias.zero_()


def old_adam(nets, cfg):
    return {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) for n, net in nets.items()}


def old_update(loss, names, nets, opts, cfg) -> None:
    for n in names:
        opts[n].zero_grad(set_to_none=True)
    loss.backward()
    for n in names:
        opts[n].step()
        if cfg.zero_conv_bias:
            old_zero_conv_biases(nets[n])


class frozen:
    def __init__(self, *nets):
        self.params = [p for net in nets for p in net.parameters()]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


def old_joint_terms(nets, x, y, cfg):
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


def old_train_step(nets, opts, pools, x, y, cfg, rng, autocast):
    G, F, D_X, D_Y = (nets[n] for n in NET_NAMES)
    log = {}

    def d_step(name, disc, real, fake, pool):
        with autocast():
            loss = discriminator_loss(disc(real), disc(pool.query(fake, rng)), cfg.gan_loss)
        old_update(loss, [name], nets, opts, cfg)
        log[f"D_{name[-1]}"] = loss.detach()

    if cfg.update_order == "sequential":
        for name, gen, other, disc, src, tgt, own, oth, d_name, d_real in (
                ("F", F, G, D_X, y, x, "backward", "forward", "D_X", x),
                ("G", G, F, D_Y, x, y, "forward", "backward", "D_Y", y)):
            with frozen(other, disc), autocast():
                terms, fake = generator_terms(gen, other, disc, src, tgt, cfg, own, oth)  # the same math as before
            if terms:
                old_update(sum(terms.values()), [name], nets, opts, cfg)
            log |= {f"{k}_{name}": v.detach() for k, v in terms.items()}
            if cfg.lambda_gan:
                d_step(d_name, disc, d_real, fake, pools[d_name])
    else:
        with frozen(D_X, D_Y), autocast():
            terms, fake_y, fake_x = old_joint_terms(nets, x, y, cfg)
        if terms:
            old_update(sum(terms.values()), ["G", "F"], nets, opts, cfg)
        log |= {k: v.detach() for k, v in terms.items()}
        if cfg.lambda_gan:
            d_step("D_Y", D_Y, y, fake_y, pools["D_Y"])
            d_step("D_X", D_X, x, fake_x, pools["D_X"])
    return log

# ------------------------------------------------- end of OLD STEP ---------------------------------------------


class Case:
    """One variant, built once; `run(n)` does n iterations as the training loop would, including its reads."""

    def __init__(self, name: str, size: str, device, amp: bool, channels_last: bool):
        self.name, self.device, self.k = name, device, 1
        profile = "pytorch" if name.startswith("port") else "paper"
        cfg = make_config(profile, name=f"bench-{size}", **SIZES[size])
        self.rng = torch.Generator().manual_seed(0)
        fmt = torch.channels_last if channels_last and not name.endswith("-old") else torch.contiguous_format
        image = lambda *shape: (torch.rand(*shape, device=device) * 2 - 1)
        self.x, self.y = (image(1, 3, cfg.crop_size, cfg.crop_size).contiguous(memory_format=fmt) for _ in "xy")
        if name.endswith("-old"):
            nets = {n: net.to(device) for n, net in build_nets(cfg).items()}
            opts, pools = old_adam(nets, cfg), {"D_X": OldImagePool(cfg.pool_size), "D_Y": OldImagePool(cfg.pool_size)}

            def one():  # the old loop: every loss read on the host every iteration (its NaN check)
                values = {k: float(v) for k, v in old_train_step(nets, opts, pools, self.x, self.y, cfg, self.rng,
                                                                 contextlib.nullcontext).items()}
                assert all(map(lambda v: v == v and abs(v) != float("inf"), values.values()))
            self.one = one
        elif name.startswith("packed"):
            self.k = int(name.removeprefix("packed"))
            build_packed = getattr(METHODS["cyclegan"], "build_packed", None)
            if build_packed is None:
                raise NotImplementedError("packing (METHODS['cyclegan'].build_packed) is not on this branch yet")
            cfgs = [make_config("paper", name=f"bench-{size}-{i}", seed=i, **SIZES[size]) for i in range(self.k)]
            parts = build_packed(cfgs, device)
            rngs = [torch.Generator().manual_seed(i) for i in range(self.k)]
            xs, ys = (t.expand(self.k, *t.shape).contiguous() for t in (self.x, self.y))
            watch = LossWatch()
            self.one = lambda: watch.add(1, parts.step(xs, ys, rngs))
            self.read = lambda: watch.check(1, Path("-"), 0, amp)
        else:
            if name == "paper":
                parts = METHODS["cyclegan"].build(cfg, device, amp=amp, channels_last=channels_last)
            else:
                from repro.capture import build
                parts = build(cfg, device, amp=amp, channels_last=channels_last, graphs="graphs" in name,
                              compile="compile" in name)
            watch = LossWatch()
            self.one = lambda: watch.add(1, parts.step(self.x, self.y, self.rng))
            self.read = lambda: watch.check(1, Path("-"), 0, amp)

    def run(self, n: int) -> None:
        for _ in range(n):
            self.one()
        if hasattr(self, "read"):
            self.read()  # the sync-free loop reads its losses every log_every iterations: once per round here
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def build_cases(names, size, device, args, warmup: int):
    """Builds and warms each case; its own peak memory (CUDA) measured over the build and warm-up."""
    cases, notes = {}, []
    for name in names:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        try:
            case = Case(name, size, device, args.amp, args.channels_last)
            case.run(warmup)
        except NotImplementedError as err:
            notes.append(f"{name}: not measured ({err})")
            continue
        case.peak = (torch.cuda.max_memory_allocated(device) - base) / case.k if device.type == "cuda" else None
        cases[name] = case
    return cases, notes


def measure(cases: dict, iters: int, rounds: int, clock) -> dict[str, float]:
    """Seconds per (packed) iteration: the median over rounds, each round running every case in turn."""
    times, names = {name: [] for name in cases}, list(cases)
    for r in range(rounds):  # each round starts with the next case: a position in the round favours none
        for name in names[r % len(names):] + names[:r % len(names)]:
            case = cases[name]
            start = clock()
            case.run(iters)
            times[name].append((clock() - start) / iters)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="paper,smoke", help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--cases", help=f"comma-separated (default CPU: {','.join(CPU_CASES)}; "
                                        f"CUDA: {','.join(CUDA_CASES)}); port-old is always run as the baseline")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per case first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the new cases (CUDA)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last for the new cases")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if args.amp and device.type != "cuda":
        print("--amp: bf16 autocast is CUDA-only (as in repro train); timing fp32")
        args.amp = False
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    clock_name = args.clock if args.clock != "auto" else ("cpu" if device.type == "cpu" and args.threads == 1 else "wall")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    names = args.cases.split(",") if args.cases else list(CUDA_CASES if device.type == "cuda" else CPU_CASES)
    names = ["port-old"] + [n for n in names if n != "port-old"]
    if "graphs" in ",".join(names) and device.type != "cuda":
        parser.error("the graphs cases need CUDA")
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} torch thread(s)"
    print(f"device: {label}; torch {torch.__version__}; clock: {clock_name}; amp={args.amp}; "
          f"channels_last={args.channels_last}; {args.rounds} rounds x {args.iters} iterations after {args.warmup} "
          f"warm-up, interleaved")
    results = []
    for size in args.sizes.split(","):
        skipped = [n for n in names if device.type == "cpu" and not args.cases and size == "paper" and n == "packed25"]
        cases, notes = build_cases([n for n in names if n not in skipped], size, device, args, args.warmup)
        notes += [f"{n}: not run by default on the CPU at this size (minutes per step, tens of GiB); ask with --cases"
                  for n in skipped]
        seconds = measure(cases, args.iters, args.rounds, clock)
        base = seconds["port-old"]
        rows = []
        for name, s in seconds.items():
            k = cases[name].k
            row = dict(size=size, case=name, runs=k, aggregate_it_s=k / s, per_run_it_s=1 / s, ms_per_iter=s * 1000,
                       speed_vs_port_old=base / (s / k), peak_mib_per_run=cases[name].peak and cases[name].peak / 2**20)
            results.append(row)
            rows.append([name, k, f"{k / s:.2f}", f"{1 / s:.2f}", f"{s * 1000:.0f}", f"{base / (s / k):.2f}x",
                         "-" if row["peak_mib_per_run"] is None else f"{row['peak_mib_per_run']:.0f}"])
        print(f"\n{size}: {SIZES[size]}")
        print(tabulate(rows, headers=["case", "runs", "it/s (all runs)", "it/s per run", "ms per step",
                                      "speed vs port-old", "peak MiB/run"]))
        for note in notes:
            print("  " + note)
        del cases
    if args.json:
        args.json.write_text(json.dumps({"device": label, "clock": clock_name, "amp": args.amp, "torch": torch.__version__,
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
