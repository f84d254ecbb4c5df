"""`repro train CONFIG --data DIR --out RUN`: one run (or `--seeds`: several packed into one step), resumable."""

from pathlib import Path

from repro.commands.options import add_device, add_iters_per_epoch, add_quiet, add_set, positive_int


def run_train(args) -> None:
    from repro.config import load_config, parse_settings
    from repro.layout import seed_runs
    from repro.train import train, train_runs

    overrides = {"seed": args.seed, "iters_per_epoch": args.iters_per_epoch}
    if args.epochs is not None:
        overrides |= {"epochs_constant": (args.epochs + 1) // 2, "epochs_decay": args.epochs // 2}
    settings = parse_settings(args.set) | {k: v for k, v in overrides.items() if v is not None}
    if args.seeds and len(set(args.seeds)) < len(args.seeds):
        from repro import ReproError
        twice = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        raise ReproError(f"--seeds {' '.join(map(str, args.seeds))} names seed(s) {twice} more than once: each seed "
                         f"trains into its own folder OUT/seed-S; give each seed once")
    if args.seeds:  # K seeds packed into one vectorised step, OUT/seed-S each
        cfgs = [load_config(args.config, **(settings | {"seed": s})) for s in args.seeds]
        runs = seed_runs(args.out, args.seeds)
        train_runs(cfgs, args.data, runs, device=args.device, resume=args.resume, stop_after=args.stop_after,
                   amp=args.amp, channels_last=args.channels_last, progress=not args.quiet, graphs=args.graphs,
                   compile=args.compile)
        print(f"trained {cfgs[0].name} at seeds {args.seeds} as one pack: {', '.join(map(str, runs))}")
        return
    cfg = load_config(args.config, **settings)
    train(cfg, args.data, args.out, device=args.device, resume=args.resume, stop_after=args.stop_after,
          amp=args.amp, channels_last=args.channels_last, progress=not args.quiet, fid_weights=args.fid_weights,
          graphs=args.graphs, compile=args.compile)
    print(f"trained {cfg.name}: {args.out}/checkpoint.pt; translate with `repro translate {args.out} --direction ...`")


def add_commands(commands) -> None:
    p = commands.add("train")
    p.add_argument("config", help="a TOML file or a shipped config, e.g. cityscapes/cyclegan, smoke/gan_alone")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (trainA/trainB layout)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, logs, generators")
    add_set(p)
    p.add_argument("--epochs", type=positive_int, help="total epochs, half constant lr and half decay (default: the config's)")
    add_iters_per_epoch(p, "the config's, else max(|X|, |Y|) / batch size")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="seed for init, data order, augmentation and pool (default: the config's)")
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="train these seeds as one pack (one vectorised step; CycleGAN and its ablations), "
                            "each in OUT/seed-SEED with its own checkpoint and log")
    add_device(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--stop-after", type=positive_int, help="stop (with a checkpoint) after this many total iterations")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (changes numerics; recorded in run.json)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (CUDA speed)")
    p.add_argument("--graphs", action="store_true", help="replay each iteration as one CUDA graph (CUDA, CycleGAN, "
                   "a --seeds pack as one graph; same math, recorded in run.json)")
    p.add_argument("--compile", action="store_true", help="torch.compile the nets (CycleGAN; float-level differences "
                   "from eager, recorded in run.json)")
    p.add_argument("--fid-weights", type=Path, help="pytorch-fid Inception weights for the config's fid_every "
                   "(default: the torch hub cache)")
    add_quiet(p)
    p.set_defaults(func=run_train)
