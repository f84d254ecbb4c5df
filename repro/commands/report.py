"""`repro report OUT` (repro.report)."""

import argparse
from pathlib import Path

from repro.commands.options import docstring


def run_report(args: argparse.Namespace) -> int:
    from repro.layout import load_plan
    from repro.report import write_report
    from repro.verdicts import default_ranges

    plan = load_plan(args.out)
    write_report(args.out, args.tables, args.ranges or default_ranges(plan["scale"], plan.get("iters_per_epoch")))
    return 0


def add_commands(commands) -> None:
    p = commands.add("report", description=docstring("repro.report"))
    p.add_argument("out", type=Path, help="the --out folder of `repro reproduce`")
    p.add_argument("--tables", type=int, nargs="+", choices=(2, 3, 4, 5),
                   help="tables to show (default: those the reproduction was run for)")
    p.add_argument("--ranges", type=Path, help="accepted ranges (default: the shipped expected/ranges_SCALE.toml)")
    p.set_defaults(func=run_report)
