"""`repro check RESULTS` (repro.check): the exit status of a reproduction against accepted ranges."""

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from repro import ReproError
from repro.commands.options import docstring
from repro.check import (METRIC_LABELS, RULES, cell_line, check, comparability_line, measured_ranges, ranges_for,
                         refuse_to_overwrite, scale_of)
from repro.verdicts import REGRESSION_NOTE
from repro.io import write_text


def run_check(args: argparse.Namespace) -> int:
    if args.measure:
        if args.ranges is None:
            raise ReproError("--measure writes the ranges file named by --ranges FILE: give one.")
        refuse_to_overwrite(args.ranges, args.force)
        text = measured_ranges(args.results, args.command or f"repro reproduce ... --out {args.results}")
        write_text(args.ranges, text)
        print(text)
        return 0
    ranges = ranges_for(args.results, args.ranges)
    cells = check(args.results, ranges)
    rule = args.rule
    missing = [c for c in cells if not c.verdict.values]
    judged = [c for c in cells if c.judged(rule)]
    bad = [c for c in judged if c.fails(rule)]
    scale, _ = scale_of(args.results)
    print(f"ranges: {ranges}")
    if scale != "paper":
        print(REGRESSION_NOTE)
    print(comparability_line(args.results))
    print(f"rule for the exit status ({rule}): {RULES[rule]}")
    other = "interval" if rule == "band" else "band"
    print(f"also shown ({other}): {RULES[other]}")
    print(tabulate([["FAILS" if c.fails(rule) else "", *cell_line(c)] for c in cells if c.verdict.values],
                   headers=["", "table", "row", "metric", "mean", "n", "std", "band", "band verdict", "reference",
                            "test", "95% interval", "statistical verdict"], tablefmt="simple", disable_numparse=True))
    for c in missing:
        print(f"MISSING  table {c.table} {c.row:13s} {METRIC_LABELS[c.metric]:14s} no result in {args.results}")
    unjudged = len(cells) - len(missing) - len(judged)
    print(f"{len(judged) - len(bad)} of {len(judged)} judged cells pass the {rule} rule; {len(bad)} fail, "
          f"{len(missing)} without a result" + (f", {unjudged} not judged (too few seeds or no reference)" if unjudged else "")
          + ".")
    if not judged:
        print(f"no cell of {ranges} could be judged by the {rule} rule with the results in {args.results}", file=sys.stderr)
        return 1
    return 1 if bad or (missing and args.require_all) else 0


def add_commands(commands) -> None:
    p = commands.add("check", description=docstring("repro.check"))
    p.add_argument("results", type=Path, help="the --out folder of `repro reproduce`")
    p.add_argument("--ranges", type=Path, help="accepted ranges (default: the shipped expected/ranges_SCALE.toml of "
                                               "the reproduction's scale); with --measure, the file to write")
    p.add_argument("--rule", choices=tuple(RULES), default="band",
                   help="which verdict sets the exit status: band (the ranges file) or interval (the statistical "
                        "verdict: a t test against the reference's own seeds where the ranges file stores them, else "
                        "the 95%% prediction interval around a one-run reference, with 3+ seeds; docs/verdicts.md)")
    p.add_argument("--require-all", action="store_true", help="also fail when a cell of the ranges file has no result")
    p.add_argument("--measure", action="store_true",
                   help="instead of checking, WRITE --ranges from the seeds in RESULTS (mean +- max(3 std, 0.02))")
    p.add_argument("--command", help="with --measure: the command that made RESULTS, recorded in the file")
    p.add_argument("--force", action="store_true", help="with --measure: replace an existing --ranges file")
    p.set_defaults(func=run_check)
