"""`repro check RESULTS_DIR [--ranges FILE] [--rule band|interval]`: does every reproduced cell agree with
what is expected of it?

Every cell of the ranges file (default: the shipped expected/ranges_SCALE.toml of the reproduction's scale)
gets the verdict of repro.verdicts, the same one the report shows: the fixed band (`close`/`far`: our mean
over the seeds in RESULTS_DIR/ROW/seed-*/result.json inside [lo, hi]) and the 95% prediction interval over
our seeds (`consistent`/`differs`/`too few seeds`) around the reference (the paper's value at paper scale,
the measured smoke mean at smoke scale). Tables 2 and 4 read the labels -> photo headline metrics, Tables 3
and 5 the photo -> labels ones. The exit status follows --rule (default `band`): 1 listing every cell that
fails it; a cell with a range but no result is listed as missing and fails only with --require-all.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.layout import read_plan
from repro.verdicts import (METRIC_LABELS, METRICS, RULE_BAND, RULE_INTERVAL, Verdict, cell_values, default_ranges,
                            judge_cell, load_ranges, load_results, references)

RULES = {"band": RULE_BAND, "interval": RULE_INTERVAL}


@dataclass
class Cell:
    table: int
    row: str
    metric: str
    verdict: Verdict

    def fails(self, rule: str) -> bool:
        return (self.verdict.band_verdict == "far") if rule == "band" else (self.verdict.verdict == "differs")

    def judged(self, rule: str) -> bool:
        """Whether the rule could say anything (a result, and with the interval rule two seeds and a reference)."""
        return self.verdict.band_verdict is not None if rule == "band" else self.verdict.verdict in ("consistent", "differs")


def scale_of(results_dir: Path) -> tuple[str, int | None]:
    """The reproduction's scale and iterations-per-epoch override (reproduce.json; else the results' scale)."""
    plan = read_plan(results_dir)
    if plan is not None:
        return plan["scale"], plan.get("iters_per_epoch")
    scales = {r.get("scale", "smoke") for rs in load_results(results_dir).values() for r in rs}
    return (scales.pop() if len(scales) == 1 else "smoke"), None


def ranges_for(results_dir: Path, ranges=None):
    """The ranges file given, or the shipped one of the reproduction's setting."""
    if ranges is not None:
        return Path(ranges)
    scale, iters = scale_of(results_dir)
    found = default_ranges(scale, iters)
    if found is None:
        raise ReproError(f"no shipped ranges for scale {scale} with iterations per epoch {iters} (expected/ holds "
                         f"ranges_paper.toml and ranges_smoke.toml): pass --ranges FILE, or measure one with --measure.")
    return found


def check(results_dir: Path, ranges_path=None) -> list[Cell]:
    """Every cell of the ranges file, judged."""
    results = load_results(results_dir)
    scale, _ = scale_of(results_dir)
    ranges = load_ranges(ranges_for(results_dir, ranges_path))
    refs = references(scale, ranges)
    return [Cell(t, row, metric, judge_cell(results, t, row, metric, scale, ranges, refs))
            for (t, row, metric) in sorted(ranges.bands)]


def measured_ranges(results_dir: Path, command: str, k: float = 3.0, floor: float = 0.02) -> str:
    """TOML text of ranges measured from the seeds in results_dir: mean +- max(k x std, floor) (std over
    seeds, ddof 1), clipped to [0, 1], with the command and every per-seed value written next to them."""
    from repro.rows import TABLE_ROWS

    results = load_results(results_dir)
    plan = read_plan(results_dir) or {}  # only the tables the reproduction was run for
    tables = plan.get("tables", list(TABLE_ROWS))
    seeds = sorted({r["seed"] for rs in results.values() for r in rs})
    lines = [f"# Measured by: {command}",
             f"# Rule: mean +- max({k:g} x std, {floor:g}) over the seeds (std with ddof 1), clipped to [0, 1].",
             f"# Seeds: {seeds}. The per-seed values follow each range; `reference` holds the means (the value the",
             "# prediction-interval verdict compares with at this setting).", "",
             "[rule]", f"k_std = {k:g}", f"floor = {floor:g}", f"command = {json.dumps(command)}",
             f"seeds = {seeds}", ""]
    for table, rows in TABLE_ROWS.items():
        for row in rows:
            if row.key not in results or table not in tables:
                continue
            lines.append(f"[table{table}.{row.key}]")
            means = {}
            for metric in METRICS:
                values = cell_values(results[row.key], table, metric)
                mean = means[metric] = float(np.mean(values))
                half = max(k * float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, floor)
                lo, hi = max(0.0, mean - half), min(1.0, mean + half)
                lines.append(f"{metric} = [{lo:.4f}, {hi:.4f}]  # mean {mean:.4f}, per seed "
                             f"{', '.join(f'{v:.4f}' for v in values)}")
            lines += ["reference = {" + ", ".join(f"{m} = {v:.4f}" for m, v in means.items()) + "}", ""]
    return "\n".join(lines)


def cell_line(c: Cell) -> list:
    v = c.verdict
    interval = "" if v.interval is None else f"[{v.interval[0]:.4f}, {v.interval[1]:.4f}]"
    return [f"table {c.table}", c.row, METRIC_LABELS[c.metric], "" if v.mean is None else f"{v.mean:.4f}", v.n,
            "" if v.std is None else f"{v.std:.4f}", f"[{v.band[0]:.4f}, {v.band[1]:.4f}]", v.band_text,
            "" if v.reference is None else f"{v.reference:.4f}", interval, v.verdict_text]
