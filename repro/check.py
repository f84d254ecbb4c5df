"""`repro check RESULTS_DIR [--ranges FILE] [--rule band|interval]`: does every reproduced cell agree with
what is expected of it?

Every cell of the ranges file (default: the shipped expected/ranges_SCALE.toml of the reproduction's scale)
gets the verdict of repro.verdicts, the same one the report shows: the fixed band (`close`/`far`: our mean
over the seeds in RESULTS_DIR/ROW/seed-*/result.json inside [lo, hi]) and the statistical verdict
(`consistent`/`differs`/`too few seeds`): at smoke scale a t test of our seeds against the seeds the smoke
ranges were measured from (a regression check against this project's own runs, not against the paper); at
paper scale the 95% prediction interval over our seeds (3 or more) around the paper's one-run value. Tables
2 and 4 read the labels -> photo headline metrics, Tables 3 and 5 the photo -> labels ones. The exit status
follows --rule (default `band`; `interval` is the statistical verdict): 1 listing every cell that fails it;
a cell with a range but no result is listed as missing and fails only with --require-all. The segmenter's
comparability to the paper (repro.eval.calibration) is printed too.
"""

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.layout import read_plan
from repro.results_table import tidy
from repro.verdicts import (METRIC_LABELS, METRICS, RULE_BAND, RULE_INTERVAL, Verdict, cell_values, check_scale,
                            default_ranges, judge_cell, load_expected, load_results, references)

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
        """Whether the rule could say anything (a result, and with the interval rule enough seeds and a reference)."""
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
    frame = tidy(load_results(results_dir))
    scale, _ = scale_of(results_dir)
    ranges = load_expected(ranges_for(results_dir, ranges_path), scale)
    check_scale(ranges, scale, results_dir)
    refs = references(scale, ranges)
    return [Cell(t, row, metric, judge_cell(frame, t, row, metric, scale, ranges, refs))
            for (t, row, metric) in sorted(ranges.bands)]


def measured_ranges(results_dir: Path, command: str, k: float = 3.0, floor: float = 0.02) -> str:
    """TOML text of ranges measured from the seeds in results_dir: mean +- max(k x std, floor) (std over
    seeds, ddof 1), clipped to [0, 1], with the command, the means (`reference`) and every per-seed value
    (`per_seed`, what the statistical verdict compares later runs with)."""
    from repro.rows import BOUNDS, TABLE_ROWS

    results = load_results(results_dir)
    frame = tidy(results)
    plan = read_plan(results_dir) or {}  # only the tables the reproduction was run for
    tables = plan.get("tables", list(TABLE_ROWS))
    seeds = sorted({r["seed"] for rs in results.values() for r in rs})
    lines = [f"# Measured by: {command}",
             f"# Rule: mean +- max({k:g} x std, {floor:g}) over the seeds (std with ddof 1), clipped to [0, 1].",
             f"# Seeds: {seeds}. `reference` holds the means, `per_seed` the values of each seed (the sample the",
             "# statistical verdict compares later runs with at this setting).", "",
             "[rule]", f"k_std = {k:g}", f"floor = {floor:g}", f"command = {json.dumps(command)}",
             f"seeds = {seeds}", f"scale = {json.dumps(scale_of(results_dir)[0])}", ""]
    for table, rows in TABLE_ROWS.items():
        for row in (*rows, *BOUNDS):
            if row.key not in results or table not in tables:
                continue
            lines.append(f"[table{table}.{row.key}]")
            means, per_seed = {}, {}
            for metric in METRICS:
                values = per_seed[metric] = cell_values(frame, table, row.key, metric)
                mean = means[metric] = float(np.mean(values))
                half = max(k * float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, floor)
                lo, hi = max(0.0, mean - half), min(1.0, mean + half)
                lines.append(f"{metric} = [{lo:.4f}, {hi:.4f}]  # mean {mean:.4f}, per seed "
                             f"{', '.join(f'{v:.4f}' for v in values)}")
            lines += ["reference = {" + ", ".join(f"{m} = {v:.4f}" for m, v in means.items()) + "}",
                      "per_seed = {" + ", ".join(f"{m} = [{', '.join(f'{x:.4f}' for x in v)}]"
                                                 for m, v in per_seed.items()) + "}", ""]
    return "\n".join(lines)


def cell_line(c: Cell) -> list:
    v = c.verdict
    interval = "" if v.interval is None else f"[{v.interval[0]:.4f}, {v.interval[1]:.4f}]"
    reference = "" if v.ref is None else (f"{v.reference:.4f} ({len(v.ref.seeds)} seeds)" if v.two_sample
                                          else f"{v.reference:.4f}")
    return [f"table {c.table}", c.row, METRIC_LABELS[c.metric], "" if v.mean is None else f"{v.mean:.4f}", v.n,
            "" if v.std is None else f"{v.std:.4f}", f"[{v.band[0]:.4f}, {v.band[1]:.4f}]", v.band_text,
            reference, v.test_text, interval, v.verdict_text]


def comparability_line(results_dir: Path) -> str:
    """Whether the labels -> photo cells were scored by a segmenter comparable to the paper (repro.eval.calibration)."""
    from repro.eval.calibration import describe

    calibrations = [r.get("provenance", {}).get("calibration") for rs in load_results(results_dir).values()
                    for r in rs if r.get("provenance", {}).get("calibration")]
    return "segmenter: " + (describe(calibrations[0]) if calibrations else "no calibration recorded in the results")


def refuse_to_overwrite(path: Path, force: bool) -> None:
    """--measure never writes into the package's shipped expected/ folder (every later check of that setting would
    read the new file), and replaces an existing ranges file only with --force."""
    package, shipped = Path(str(files("repro"))).resolve(), Path(str(files("repro") / "expected")).resolve()
    target = Path(path).resolve()
    if target.parent == shipped or package in target.parents:
        raise ReproError(f"--ranges {path} is inside the repro package ({shipped}): --measure never writes its shipped "
                         f"ranges. Write the measurement to a file of your own (e.g. --ranges my_ranges.toml) and "
                         f"check with it.")
    if target.exists() and not force:
        raise ReproError(f"--ranges {path} already exists: --measure would replace its ranges. Choose a new file, or "
                         f"pass --force to replace it.")
