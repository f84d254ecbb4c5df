"""`repro check RESULTS_DIR --ranges expected/FILE.toml`: is every reproduced cell inside its accepted range?

A ranges file holds `[tableN.ROW]` tables with `METRIC = [lo, hi]` (metrics: pixel_acc, class_acc, iou).
The value checked for a cell is the mean over the seeds in RESULTS_DIR/ROW/seed-*/result.json (Tables 2
and 4 read the labels -> photo headline metrics, Tables 3 and 5 the photo -> labels ones). Exits 1
listing every cell outside its range; a cell with a range but no result is listed as missing and fails
only with --require-all (a reproduction may cover fewer rows than the ranges file).
"""

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.io import write_text
from repro.rows import TABLE_DIRECTION

METRICS = ("pixel_acc", "class_acc", "iou")
METRIC_LABELS = {"pixel_acc": "per-pixel acc", "class_acc": "per-class acc", "iou": "class IoU"}


def load_results(results_dir: Path) -> dict[str, list[dict]]:
    """row key -> its result.json contents, one per seed (sorted by seed)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReproError(f"{results_dir} does not exist: give the --out folder of `repro reproduce`.")
    found: dict[str, list[dict]] = {}
    for path in sorted(results_dir.glob("*/seed-*/result.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro reproduce` again.") from None
        found.setdefault(result["row"], []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r["seed"])
    return found


def cell_values(results: list[dict], table: int, metric: str) -> list[float]:
    """One value per seed of a row's metric in a table."""
    return [r["metrics"][TABLE_DIRECTION[table]][metric] for r in results]


def load_ranges(path: Path) -> dict[tuple[int, str, str], tuple[float, float]]:
    """(table, row, metric) -> (lo, hi)."""
    path = Path(path)
    if not path.is_file():
        raise ReproError(f"ranges file {path} does not exist (the shipped ones are in expected/).")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    ranges = {}
    for name, rows in data.items():
        if not (name.startswith("table") and name[5:].isdigit()):
            continue
        for row, metrics in rows.items():
            if not isinstance(metrics, dict):
                continue
            for metric, bounds in metrics.items():
                if metric not in METRICS:
                    continue
                if not (isinstance(bounds, list) and len(bounds) == 2 and bounds[0] <= bounds[1]):
                    raise ReproError(f"{path}: [{name}.{row}] {metric} must be [lo, hi] with lo <= hi, got {bounds!r}")
                ranges[(int(name[5:]), row, metric)] = (float(bounds[0]), float(bounds[1]))
    if not ranges:
        raise ReproError(f"{path} holds no [tableN.ROW] ranges (METRIC = [lo, hi]).")
    return ranges


@dataclass
class Cell:
    table: int
    row: str
    metric: str
    lo: float
    hi: float
    values: list[float]

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def verdict(self) -> str:
        if not self.values:
            return "missing"
        if self.mean < self.lo:
            return "below"
        return "above" if self.mean > self.hi else "within"


def check(results_dir: Path, ranges_path: Path) -> list[Cell]:
    results = load_results(results_dir)
    return [Cell(t, row, metric, lo, hi, cell_values(results.get(row, []), t, metric))
            for (t, row, metric), (lo, hi) in sorted(load_ranges(ranges_path).items())]


def measured_ranges(results_dir: Path, command: str, k: float = 3.0, floor: float = 0.02) -> str:
    """TOML text of ranges measured from the seeds in results_dir: mean +- max(k x std, floor) (std over
    seeds, ddof 1), clipped to [0, 1], with the command and every per-seed value written next to them."""
    from repro.rows import TABLE_ROWS

    results = load_results(results_dir)
    plan = Path(results_dir) / "reproduce.json"  # only the tables the reproduction was run for
    tables = json.loads(plan.read_text()).get("tables", list(TABLE_ROWS)) if plan.is_file() else list(TABLE_ROWS)
    seeds = sorted({r["seed"] for rs in results.values() for r in rs})
    lines = [f"# Measured by: {command}",
             f"# Rule: mean +- max({k:g} x std, {floor:g}) over the seeds (std with ddof 1), clipped to [0, 1].",
             f"# Seeds: {seeds}. The per-seed values follow each range.", "",
             "[rule]", f"k_std = {k:g}", f"floor = {floor:g}", f"command = {json.dumps(command)}",
             f"seeds = {seeds}", ""]
    for table, rows in TABLE_ROWS.items():
        for row in rows:
            if row.key not in results or table not in tables:
                continue
            lines.append(f"[table{table}.{row.key}]")
            for metric in METRICS:
                values = cell_values(results[row.key], table, metric)
                mean = float(np.mean(values))
                half = max(k * float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, floor)
                lo, hi = max(0.0, mean - half), min(1.0, mean + half)
                lines.append(f"{metric} = [{lo:.4f}, {hi:.4f}]  # mean {mean:.4f}, per seed "
                             f"{', '.join(f'{v:.4f}' for v in values)}")
            lines.append("")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    if args.measure:
        text = measured_ranges(args.results, args.command or f"repro reproduce ... --out {args.results}")
        write_text(args.ranges, text)
        print(text)
        return 0
    cells = check(args.results, args.ranges)
    checked = [c for c in cells if c.values]
    bad = [c for c in cells if c.verdict in ("below", "above")]
    missing = [c for c in cells if not c.values]
    for c in bad:
        print(f"OUTSIDE  table {c.table} {c.row:13s} {METRIC_LABELS[c.metric]:14s} {c.mean:.4f} "
              f"(n={len(c.values)}) {c.verdict} [{c.lo:.4f}, {c.hi:.4f}]")
    for c in missing:
        print(f"MISSING  table {c.table} {c.row:13s} {METRIC_LABELS[c.metric]:14s} no result in {args.results}")
    print(f"{len(checked) - len(bad)} of {len(checked)} checked cells within their range ({args.ranges}); "
          f"{len(bad)} outside, {len(missing)} without a result.")
    if not checked:
        print(f"no cell of {args.ranges} has a result in {args.results}", file=sys.stderr)
        return 1
    return 1 if bad or (missing and args.require_all) else 0


def add_commands(commands) -> None:
    p = commands.add("check", help="check reproduced cells against accepted ranges (exit 1 if any is outside)",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="the --out folder of `repro reproduce`")
    p.add_argument("--ranges", type=Path, required=True, help="e.g. expected/ranges_smoke.toml or expected/ranges_paper.toml")
    p.add_argument("--require-all", action="store_true", help="also fail when a cell of the ranges file has no result")
    p.add_argument("--measure", action="store_true",
                   help="instead of checking, WRITE --ranges from the seeds in RESULTS (mean +- max(3 std, 0.02))")
    p.add_argument("--command", help="with --measure: the command that made RESULTS, recorded in the file")
    p.set_defaults(func=run_check)
